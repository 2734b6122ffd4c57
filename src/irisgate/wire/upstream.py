"""The request irisgate sends upstream: URL, headers with the provider credential, body.

The incoming path (and query) is appended to the provider's `baseurl`. Client credentials
never reach the upstream in `override` and `none` auth modes; in `passthrough` the client's
own `Authorization` / `x-api-key` is forwarded and the configured key is only a fallback.
An irisgate API key (a credential header whose value holds `IRISGATE_KEY_PREFIX`) is
irisgate's own and never forwarded, in any mode (`forwardable`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from irisgate.wire.http1 import BodySource, BodyStream

#: what every irisgate API key starts with (irisgate.identity.keys owns the format)
IRISGATE_KEY_PREFIX = "irisgate_"


def forwardable(name: str, value: str) -> bool:
    """Whether a client's credential header may go upstream: not when it holds an irisgate
    key, which is for irisgate alone."""
    return IRISGATE_KEY_PREFIX not in value


#: never forwarded in either direction (RFC 9110 §7.6.1 plus framing we recompute)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
#: headers that carry a client credential
CREDENTIALS = frozenset(
    {
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "api-key",
        "cf-aig-authorization",
        "x-amz-security-token",
        # the rest of a client's own SigV4 signature: meaningless once its signature is gone
        "x-amz-date",
        "x-amz-content-sha256",
    }
)
#: secrets in captured headers are stored as this
REDACTED = "[redacted]"
SECRET_HEADERS = CREDENTIALS | {"cookie", "set-cookie", "proxy-authorization"}


class Destination(Protocol):
    """Where a request goes and how irisgate authenticates it there: a configured provider
    (`config.model.Provider`)."""

    @property
    def baseurl(self) -> str: ...
    @property
    def auth_mode(self) -> str: ...  # override, passthrough or none
    @property
    def authorization(self) -> str: ...  # the header style the key goes in
    @property
    def header_key(self) -> str: ...  # the key to send in a header; "" when none is
    @property
    def add_headers(self) -> Iterable[tuple[str, str]]: ...


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    #: an upload is sent a piece at a time (wire/upload.py): kept (`BodySource`) or as it
    #: arrives (`BodyStream`, which can be sent once)
    body: bytes | BodySource | BodyStream
    method: str = "POST"
    #: who the upstream is, for errors (`provider openai`): never the URL, whose query may
    #: carry a credential
    name: str = "upstream"


def credential_headers(style: str, key: str) -> dict[str, str]:
    """The header(s) that carry `key` for an `authorization` style."""
    if not key:
        return {}
    if style == "x-api-key":
        return {"x-api-key": key}
    if style == "x-goog-api-key":
        return {"x-goog-api-key": key}
    if style == "hec":
        return {"authorization": f"Splunk {key}"}
    if style == "cf-aig-authorization":
        return {"cf-aig-authorization": f"Bearer {key}"}
    return {"authorization": f"Bearer {key}"}


def build_headers(
    provider: Destination,
    incoming: dict[str, str],
    extra: list[tuple[str, str]],
    key: str | None = None,
) -> dict[str, str]:
    """Headers for the upstream: the client's minus hop-by-hop, identity and credentials,
    plus the provider credential (`key` when given: one of a provider's several keys) and
    the provider's and grants' `add_headers`."""
    mode = provider.auth_mode
    out: dict[str, str] = {}
    client_creds: dict[str, str] = {}
    for name, value in incoming.items():
        if name in HOP_BY_HOP or name.startswith("tailscale-"):
            continue
        if name in CREDENTIALS:
            passed = name in ("authorization", "x-api-key") and forwardable(name, value)
            if mode == "passthrough" and passed:
                client_creds[name] = value
            continue
        out[name] = value
    if mode == "passthrough" and client_creds:
        out.update(client_creds)
    elif mode != "none":
        out.update(
            credential_headers(provider.authorization, provider.header_key if key is None else key)
        )
    for name, value in (*provider.add_headers, *extra):
        out[name.lower()] = value
    return out


def upstream_url(provider: Destination, path: str, query: bytes) -> str:
    url = provider.baseurl + path
    return f"{url}?{query.decode('latin-1')}" if query else url


def redact(headers: dict[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k in SECRET_HEADERS else v) for k, v in headers.items()}
