"""OAuth dynamic client registration (RFC 7591) for MCP connectors that require it.

A connector with `auth.type: oauth2_dynamic_client_registration` names only its MCP server's
URL (and optionally `scopes`). The first time a user connects, irisgate finds the server's
authorization server as the MCP authorization spec says, registers itself there as a client,
stores that client and reuses it for every user; each user then goes through the usual
per-user authorization code flow with PKCE (`oauth.py`), with the MCP server's URL as the
RFC 8707 `resource`.

Discovery, in order:

1. Protected resource metadata (RFC 9728): the URL in the `resource_metadata` parameter of the
   `WWW-Authenticate` header of the MCP server's 401 answer to an unauthenticated request;
   else `/.well-known/oauth-protected-resource/<path>`, then
   `/.well-known/oauth-protected-resource` at the server's origin. Its first
   `authorization_servers` entry is the issuer; without metadata, the server's origin is.
2. Authorization server metadata (RFC 8414, then OpenID Connect Discovery), path-aware.
   It must list `authorization_endpoint`, `token_endpoint` and `registration_endpoint`, and
   S256 among `code_challenge_methods_supported` when it lists methods.
3. Registration: a client for the authorization code and refresh token grants with
   irisgate's callback URL as its redirect URI; confidential (`client_secret_basic`, else
   `client_secret_post`) when the server offers it, else public (`none`). The secret the
   server issues is kept encrypted and used as the server's answer says.

Every URL learned from metadata passes the URL guard before it is called, and the HTTP client
connects only to addresses the guard allows (netguard); answers are read up to 64 KiB and
redirects are not followed. The registered client is sealed with the connector key and stored
in `connector_tokens` under the empty login name (no user has that name), so it survives a
restart and is shared by instances using one database. It is registered again when the
connector's URL or irisgate's callback URL changes, or its secret has expired.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import orjson
from sqlalchemy import select

from irisgate.config.model import Connector, ConnectorAuth, Secret
from irisgate.connectors.oauth import OAuthError, scopes
from irisgate.connectors.safety import UnsafeAddress, UnsafeURL, UrlGuard
from irisgate.connectors.secretbox import InvalidToken, SecretBox
from irisgate.connectors.tokens import CLIENT_ROW
from irisgate.store.tables import conflict_insert, connector_tokens

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx2

    from irisgate.store.database import Database

DCR = "oauth2_dynamic_client_registration"
#: metadata and registration answers are read up to this many bytes
MAX_ANSWER = 64 * 1024
_RESOURCE_METADATA = re.compile(r'resource_metadata\s*=\s*"([^"]{1,2048})"')


class RegistrationError(OAuthError):
    """Discovery or registration failed; `str(exc)` says which step and why, no secrets."""


@dataclass(frozen=True, slots=True)
class Registered:
    """A client irisgate registered at a connector's authorization server."""

    url: str  # the connector URL it was registered for
    redirect_uri: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    client_id: str
    client_secret: str = ""
    auth_method: str = "none"
    secret_expires_at: float = 0.0  # 0: never

    def usable(self, url: str, redirect_uri: str | None = None) -> bool:
        if self.url != url or (redirect_uri is not None and self.redirect_uri != redirect_uri):
            return False
        return not (self.secret_expires_at and self.secret_expires_at <= time.time() + 60)

    def connector(self, connector: Connector) -> Connector:
        """`connector` as the authorization code flow sees it, with this client."""
        fields: dict[str, Any] = {
            "auth_url": self.authorization_endpoint,
            "token_url": self.token_endpoint,
            "client_id": self.client_id,
            "resource": connector.url,
            "token_auth": self.auth_method,
        }
        if "scopes" in connector.auth.fields:
            fields["scopes"] = connector.auth.fields["scopes"]
        secrets = {}
        if self.client_secret:
            secrets["client_secret"] = Secret(ref=self.client_secret, value=self.client_secret)
        return replace(connector, auth=ConnectorAuth(DCR, fields, secrets))


def _auth_method(meta: dict[str, Any]) -> str:
    """How irisgate asks to authenticate at the token endpoint: with a secret when the server
    takes one (RFC 8414's default is `client_secret_basic`), else as a public client."""
    offered = meta.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    for method in ("client_secret_basic", "client_secret_post"):
        if isinstance(offered, list) and method in offered:
            return method
    return "none"


class Registrar:
    def __init__(
        self,
        db: Callable[[], Database],
        box: SecretBox,
        guard: UrlGuard,
        http: httpx2.AsyncClient,
    ) -> None:
        self._db = db
        self._box = box
        self._guard = guard
        self._http = http
        self._clients: dict[str, Registered] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def stored(self, connector: Connector) -> Registered | None:
        """The client registered for this connector (memory, else the database), if any
        still fits its URL."""
        client = self._clients.get(connector.id)
        if client is None:
            client = await self._load(connector.id)
            if client is not None:
                self._clients[connector.id] = client
        return client if client is not None and client.usable(connector.url) else None

    async def client_for(self, connector: Connector, redirect_uri: str) -> Registered:
        """The registered client for `redirect_uri`: the stored one, else a new registration."""
        lock = self._locks.setdefault(connector.id, asyncio.Lock())
        async with lock:
            client = await self.stored(connector)
            if client is not None and client.usable(connector.url, redirect_uri):
                return client
            client = await self._register(connector, redirect_uri)
            await self._save(connector.id, client)
            self._clients[connector.id] = client
            return client

    # -- discovery and registration -----------------------------------------------------

    async def _register(self, connector: Connector, redirect_uri: str) -> Registered:
        issuer = await self._issuer(connector.url)
        meta = await self._server_metadata(issuer)
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
            value = meta.get(name)
            if not isinstance(value, str) or not value:
                raise RegistrationError(f"the authorization server {issuer} names no {name}")
            endpoints[name] = value
        methods = meta.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise RegistrationError(f"the authorization server {issuer} does not support PKCE S256")
        request: dict[str, Any] = {
            "client_name": "irisgate",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": _auth_method(meta),
        }
        if scope := scopes(connector):
            request["scope"] = scope
        status, body = await self._call(
            "registration_endpoint", endpoints["registration_endpoint"], request
        )
        if status not in (200, 201) or not isinstance(body.get("client_id"), str):
            error = str(body.get("error") or f"HTTP {status}")
            description = str(body.get("error_description") or "")[:200]
            raise RegistrationError(
                f"client registration refused: {error}"
                + (f" ({description})" if description else "")
            )
        expires = body.get("client_secret_expires_at")
        return Registered(
            url=connector.url,
            redirect_uri=redirect_uri,
            issuer=issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            client_id=body["client_id"],
            client_secret=str(body.get("client_secret") or ""),
            auth_method=str(body.get("token_endpoint_auth_method") or "none"),
            secret_expires_at=float(expires) if isinstance(expires, int | float) else 0.0,
        )

    async def _issuer(self, url: str) -> str:
        """The authorization server of the MCP server at `url` (RFC 9728, MCP spec)."""
        candidates: list[str] = []
        status, headers = await self._probe(url)
        if status == 401:
            match = _RESOURCE_METADATA.search(headers.get("www-authenticate", ""))
            if match:
                candidates.append(urljoin(url, match[1]))
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        if path:
            candidates.append(f"{origin}/.well-known/oauth-protected-resource{path}")
        candidates.append(f"{origin}/.well-known/oauth-protected-resource")
        for candidate in candidates:
            status, meta = await self._call("resource metadata", candidate)
            servers = meta.get("authorization_servers") if status == 200 else None
            if isinstance(servers, list) and servers and isinstance(servers[0], str):
                return servers[0].rstrip("/")
        return origin  # servers of the 2025-03-26 spec: the MCP server's origin is the issuer

    async def _server_metadata(self, issuer: str) -> dict[str, Any]:
        parts = urlsplit(issuer)
        origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        candidates = [
            f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
        ]
        if path:
            candidates.append(f"{origin}{path}/.well-known/openid-configuration")
        for candidate in candidates:
            status, meta = await self._call("authorization server metadata", candidate)
            if status == 200 and meta:
                return meta
        raise RegistrationError(f"no authorization server metadata found for {issuer}")

    async def _probe(self, url: str) -> tuple[int, dict[str, str]]:
        """An unauthenticated MCP request, for the server's 401 and its WWW-Authenticate."""
        import httpx2

        await self._check("connector url", url)
        initialize = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "irisgate", "version": "1"},
            },
        }
        headers = {"accept": "application/json, text/event-stream"}
        try:
            async with self._http.stream("POST", url, json=initialize, headers=headers) as answer:
                return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}
        except UnsafeAddress as exc:
            raise RegistrationError(f"connector url refused: {exc}") from None
        except httpx2.HTTPError as exc:
            raise RegistrationError(f"MCP server unreachable: {type(exc).__name__}") from None

    async def _call(
        self, what: str, url: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """GET (or POST `body` to) a URL learned from metadata; (status, JSON object or {})."""
        import httpx2

        await self._check(what, url)
        headers = {"accept": "application/json"}
        try:
            async with self._http.stream(
                "GET" if body is None else "POST", url, json=body, headers=headers
            ) as answer:
                data = bytearray()
                async for chunk in answer.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > MAX_ANSWER:
                        raise RegistrationError(f"{what} answer is larger than {MAX_ANSWER} bytes")
                status = answer.status_code
        except UnsafeAddress as exc:
            raise RegistrationError(f"{what} refused: {exc}") from None
        except httpx2.HTTPError as exc:
            raise RegistrationError(f"{what} unreachable: {type(exc).__name__}") from None
        try:
            parsed = orjson.loads(bytes(data))
        except orjson.JSONDecodeError:
            return status, {}
        return status, parsed if isinstance(parsed, dict) else {}

    async def _check(self, what: str, url: str) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistrationError(f"{what} {url[:200]!r} is not an http(s) URL")
        try:
            await self._guard.check(url)
        except UnsafeURL as exc:
            raise RegistrationError(f"{what} refused: {exc}") from None

    # -- storage ------------------------------------------------------------------------

    async def _load(self, connector_id: str) -> Registered | None:
        async with self._db().connect() as conn:
            data = (
                await conn.execute(
                    select(connector_tokens.c.data).where(
                        connector_tokens.c.login_name == CLIENT_ROW,
                        connector_tokens.c.connector_id == connector_id,
                    )
                )
            ).scalar()
        if data is None:
            return None
        try:
            return Registered(**orjson.loads(self._box.open(bytes(data))))
        except (InvalidToken, TypeError):
            return None  # another key, or an older shape: register again

    async def _save(self, connector_id: str, client: Registered) -> None:
        data = self._box.seal(orjson.dumps(asdict(client)))
        now = datetime.now(UTC)
        statement = conflict_insert(self._db().dialect, connector_tokens).values(
            login_name=CLIENT_ROW, connector_id=connector_id, data=data, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["login_name", "connector_id"], set_={"data": data, "updated_at": now}
        )
        async with self._db().begin() as conn:
            await conn.execute(statement)
