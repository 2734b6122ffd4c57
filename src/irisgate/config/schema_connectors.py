"""Validation of `connectors.servers` and the deprecated `mcp` section (reference §6.1-6.2).

Following Aperture, two problems only warn at load time so an existing file keeps loading: a
connector without `url`, and a `url` that points at loopback or link-local addresses (the
request path refuses those). Saving through the API refuses both (`save_errors`), the second
unless local connectors are allowed. Everything else wrong is an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from irisgate.config.model import ConfigIssue, Connector, ConnectorAuth, Secret
from irisgate.config.reader import Section, not_one_of
from irisgate.config.schema_sections import warn_unresolved
from irisgate.config.secrets import CONNECTOR_SECRET_FIELDS

_MISSING_URL = "is missing: the connector is unusable until it has one"
_LOCAL_URL = "points at a loopback or link-local address"
_CONNECTOR_ID = re.compile(r"[a-zA-Z][a-zA-Z0-9]*")
PROTOCOLS: dict[str, Literal["mcp", "http"]] = {"mcp": "mcp", "http": "http"}
_CONNECTOR_KEYS = (
    "protocol",
    "url",
    "description",
    "context",
    "provider",
    "auth",
    "labels",
    "transport",
)
#: `transport` of an MCP connector (the legacy SSE one is chosen, never guessed)
TRANSPORTS: dict[str, Literal["streamable_http", "sse"]] = {
    "streamable_http": "streamable_http",
    "sse": "sse",
}


@dataclass(frozen=True, slots=True)
class AuthType:
    """Fields one `auth.type` requires (`one_of` groups: any one member suffices)."""

    required: tuple[str, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    optional: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()  # fields that must be http(s) URLs when present


AUTH_TYPES: dict[str, AuthType] = {
    "none": AuthType(),
    "bearer_token": AuthType(one_of=(("token", "secret"),)),
    "api_key": AuthType(required=("name", "in"), one_of=(("secret", "key"),)),
    "basic": AuthType(required=("username", "password")),
    "oauth2_client_credentials": AuthType(
        required=("token_url", "client_id", "client_secret"),
        optional=("scopes",),
        urls=("token_url",),
    ),
    "oauth2_authorization_code": AuthType(
        required=("token_url", "client_id"),
        one_of=(("auth_url", "authorization_url"),),
        optional=("client_secret", "scopes"),
        urls=("auth_url", "authorization_url", "token_url"),
    ),
    "oauth2_dynamic_client_registration": AuthType(optional=("scopes",)),
}
#: Other spellings of an auth type, normalised to the key of AUTH_TYPES.
AUTH_TYPE_ALIASES: dict[str, str] = {"oauth2_dcr": "oauth2_dynamic_client_registration"}
API_KEY_PLACES: tuple[str, ...] = ("header", "query")


def read_connectors(root: Section, env: Mapping[str, str]) -> dict[str, Connector]:
    """`connectors.servers`: id -> Connector; invalid connectors are logged and left out."""
    section = root.child("connectors")
    if section is None:
        return {}
    section.check_keys(("servers",))
    servers = section.child("servers")
    if servers is None:
        return {}
    connectors: dict[str, Connector] = {}
    for connector_id, value in servers.items():
        if not _CONNECTOR_ID.fullmatch(connector_id):
            servers.error(
                connector_id,
                "connector id must start with a letter and hold only letters and digits"
                " (it prefixes tool names)",
            )
            continue
        connector_section = Section.of(root.log, servers.at(connector_id), value)
        if connector_section is None:
            continue
        connector = _connector(connector_id, connector_section, env)
        if connector is not None:
            connectors[connector_id] = connector
    return connectors


def _connector(connector_id: str, section: Section, env: Mapping[str, str]) -> Connector | None:
    errors_before = len(section.log.errors)
    section.check_keys(_CONNECTOR_KEYS)
    if not section.has("protocol"):
        section.error("protocol", "is required (mcp or http)")
    protocol = PROTOCOLS.get(section.choice("protocol", PROTOCOLS, ""))
    url = _url(section, protocol)
    section.texts("labels")
    auth = _auth(section.child("auth"), env)
    description = section.text("description", "")
    context = section.text("context", "")
    provider = section.text("provider", "") or "Custom"
    transport = TRANSPORTS.get(section.choice("transport", TRANSPORTS, "streamable_http"))
    if section.has("transport") and protocol == "http":
        section.error("transport", "is for mcp connectors only")
    if len(section.log.errors) > errors_before or protocol is None or auth is None:
        return None
    return Connector(
        id=connector_id,
        protocol=protocol,
        url=url,
        description=description,
        context=context,
        provider=provider,
        auth=auth,
        transport=transport or "streamable_http",
    )


def _url(section: Section, protocol: str | None) -> str:
    """The connector URL ("" when missing, with a warning); HTTP base URLs lose a trailing /."""
    if not section.has("url"):
        section.warn("url", _MISSING_URL)
        return ""
    url = section.url("url")
    if url is None:
        return ""
    if _is_local_host(url):
        section.warn(
            "url",
            f'"{url}" {_LOCAL_URL}; requests to it are refused'
            " unless IRISGATE_ALLOW_LOCAL_CONNECTORS is true",
        )
    return url.rstrip("/") if protocol == "http" else url


def save_errors(warnings: list[ConfigIssue], *, allow_local: bool) -> list[ConfigIssue]:
    """The load-time connector URL warnings that make a save through the API fail."""
    return [
        replace(issue, severity="error")
        for issue in warnings
        if issue.path.startswith("connectors.servers.")
        and issue.path.endswith(".url")
        and (_MISSING_URL in issue.message or (_LOCAL_URL in issue.message and not allow_local))
    ]


def _is_local_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_link_local or address.is_unspecified


def _auth(section: Section | None, env: Mapping[str, str]) -> ConnectorAuth | None:
    """`auth`; absent means type "none". None (logged) when the object is invalid."""
    if section is None:
        return ConnectorAuth(type="none")
    errors_before = len(section.log.errors)
    written = section.required_text("type", f"one of: {', '.join(AUTH_TYPES)}")
    auth_type = AUTH_TYPE_ALIASES.get(written or "", written or "")
    spec = AUTH_TYPES.get(auth_type)
    if written is not None and spec is None:
        section.error("type", not_one_of(written, AUTH_TYPES))
    if spec is None:
        return None
    _check_auth_fields(section, spec)
    secrets = _auth_secrets(section, env)
    fields: dict[str, Any] = {
        k: v for k, v in section.data.items() if k != "type" and k not in CONNECTOR_SECRET_FIELDS
    }
    if len(section.log.errors) > errors_before:
        return None
    return ConnectorAuth(type=auth_type, fields=fields, secrets=secrets)


def _check_auth_fields(section: Section, spec: AuthType) -> None:
    known = ("type", *spec.required, *(f for group in spec.one_of for f in group), *spec.optional)
    section.check_keys(known)
    for key in spec.required:
        section.required_text(key)
    for group in spec.one_of:
        present = [key for key in group if section.has(key)]
        if not present:
            section.error(group[0], f"is required (or {', '.join(group[1:])})")
        for key in present:
            section.required_text(key)
    for key in spec.urls:
        if section.has(key):
            section.url(key)
    if "scopes" in spec.optional:
        section.texts("scopes")
    place = section.data.get("in")
    if "in" in spec.required and isinstance(place, str) and place and place not in API_KEY_PLACES:
        section.error("in", not_one_of(place, API_KEY_PLACES))


def _auth_secrets(section: Section, env: Mapping[str, str]) -> dict[str, Secret]:
    secrets: dict[str, Secret] = {}
    for key in CONNECTOR_SECRET_FIELDS:
        if section.has(key) and isinstance(section.data[key], str):
            secrets[key] = section.secret(key, env)
            warn_unresolved(section, key, secrets[key])
    return secrets


def check_deprecated_mcp(root: Section) -> None:
    """The deprecated `mcp` section is kept in raw only; check its URLs are strings."""
    section = root.child("mcp")
    if section is None:
        return
    root.warn("mcp", "is deprecated and not used by irisgate; move servers to connectors.servers")
    servers = section.child("servers")
    for name, value in servers.items() if servers is not None else ():
        server = Section.of(root.log, ("mcp", "servers", name), value)
        if server is not None:
            server.text("url", "")
