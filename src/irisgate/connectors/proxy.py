"""`ANY /v1/connectors/<id>/<path>`: HTTP connectors, proxied to `<url>/<path>`.

The caller is identified as on every other path, needs a `connectors` grant matching `<id>`
or `<id>/<path>` (the path decoded once and checked by `irisgate.connectors.paths`, then
forwarded exactly as matched), and gets the connector's credential injected (the caller's
own credential headers are dropped unless the connector has no auth of its own). The
answer streams back as it arrives through the relay core shared with LLM calls
(`irisgate.gateway.relaycore`), on an aiohttp session; this module keeps what is
connector-specific: grants, paths, credentials, the sandbox headers and the record.
Every request is recorded (who, connector, path, status, duration, sizes; bodies up to
`CAPTURE_LIMIT`).
Errors irisgate itself answers are JSON `{"error": "<message>"}`, as on the management API.
Answers never run as a page of the gateway: see `_contained`.
A request a browser sent from another site's page never gets here (`irisgate.crosssite`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from yarl import URL

from irisgate.config.model import Connector
from irisgate.connectors.credentials import Credential, Credentials, Misconfigured, NeedsAuth
from irisgate.connectors.paths import ConnectorPath, PathRefused, parse
from irisgate.connectors.recording import CallTimer, connector_record
from irisgate.connectors.safety import UnsafeAddress, UnsafeURL, UrlGuard
from irisgate.gateway.relaycore import (
    AiohttpSource,
    Forwarding,
    RelayResult,
    Unanswered,
    relay,
    watched,
)
from irisgate.gateway.tee import Tee
from irisgate.identity import Identity, IdentityRefused, SignInRequired
from irisgate.runtime import Runtime
from irisgate.snapshot import Snapshot
from irisgate.store.tables import HTTP_FORMAT
from irisgate.wire.bodylimit import BodyTooLarge, ClientGone, read_body
from irisgate.wire.upstream import CREDENTIALS, HOP_BY_HOP, forwardable, redact

PREFIX = "/v1/connectors/"
#: bodies are captured up to this size each; sizes are always recorded in full
CAPTURE_LIMIT = 1 << 20
_CONTAINMENT_HEADERS = frozenset({b"content-security-policy", b"x-content-type-options"})
_RENDER_HEADERS = _CONTAINMENT_HEADERS | {b"content-disposition"}
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xsl"})


class ProxyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _answer_kept() -> RelayResult:
    return RelayResult(Tee(CAPTURE_LIMIT, tail_limit=0))


@dataclass(slots=True)
class _Exchange:
    connector: str = ""  # its id: errors name it, never its URL (the query may hold a secret)
    refused: int = 0  # the status of irisgate's own refusal, if it refused
    refusal: str = ""
    cancelled: bool = False
    request_body: bytes = b""
    relayed: RelayResult = field(default_factory=_answer_kept)  # the upstream's answer

    @property
    def status(self) -> int:
        return self.refused or self.relayed.status

    @property
    def error(self) -> str:
        return self.refusal or self.relayed.error

    @property
    def response_body(self) -> bytes:
        if self.refused:
            return orjson.dumps({"error": self.refusal})
        return self.relayed.tee.head()


class HttpConnectorProxy:
    def __init__(
        self,
        runtime: Runtime,
        credentials: Credentials,
        guard: UrlGuard,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._runtime = runtime
        self._credentials = credentials
        self._guard = guard
        # the connector service passes a session whose resolver applies the guard to the
        # addresses it connects to; without one, the runtime's (allow_local_connectors)
        self._session = session

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        timer = CallTimer()
        runtime = self._runtime
        snapshot = runtime.snapshot
        raw: bytes = (scope.get("raw_path") or quote(scope["path"]).encode())[len(PREFIX) :]
        connector_id = raw.partition(b"/")[0].decode("latin-1")
        tool = ""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            identity = await runtime.resolver.resolve(scope.get("client"), scope["headers"])
        except SignInRequired as exc:
            await _answer(send, 401, str(exc))
            return
        except IdentityRefused as exc:
            await _answer(send, exc.status, f"access denied: {exc}")  # 401: a bad key
            return
        ex = _Exchange(connector=connector_id)
        try:
            path = _parsed(raw)
            connector_id, tool = path.connector_id, path.path
            ex.connector = connector_id  # errors name the decoded id
            connector = self._granted(snapshot, identity, path)
            ex.request_body = await _read_body(receive, scope, runtime.settings.max_connector_body)
            credential = await self._credential(connector, identity)
            url = _upstream_url(connector, path, scope.get("query_string", b""), credential)
            try:
                await self._guard.check(url)
            except UnsafeURL as exc:
                raise ProxyError(502, f"connector {connector_id}: {exc}") from None
            out = _forwarded(headers, connector)
            out.update(credential.headers)
            await self._relay(receive, send, ex, method=scope["method"], url=url, headers=out)
        except ProxyError as exc:
            ex.refused, ex.refusal = exc.status, str(exc)
            await _answer(send, exc.status, str(exc))
        finally:
            runtime.record(
                connector_record(
                    identity,
                    timer,
                    api_format=HTTP_FORMAT,
                    connector_id=connector_id,
                    method=scope["method"],
                    path=scope["path"],
                    tool=tool,
                    status=ex.status,
                    error=ex.error,
                    request_body=ex.request_body[:CAPTURE_LIMIT],
                    response_body=ex.response_body,
                    request_bytes=len(ex.request_body),
                    response_bytes=ex.relayed.tee.size,
                    request_headers=redact(headers),
                    response_headers=redact(ex.relayed.headers),
                    config_version=snapshot.version,
                    cancelled=ex.cancelled,
                )
            )

    @staticmethod
    def _granted(snapshot: Snapshot, identity: Identity, path: ConnectorPath) -> Connector:
        access = snapshot.grants.access_for(identity)
        if access.role is None:
            raise ProxyError(403, "access denied: no role granted")
        connector_id = path.connector_id
        connector = snapshot.config.connectors.get(connector_id)
        if connector is None or connector.protocol != "http":
            raise ProxyError(404, f"no HTTP connector {connector_id!r}")
        if not access.may_use_http_path(connector_id, path.path):
            raise ProxyError(
                403, f"access denied: no connectors grant for {connector_id}/{path.path}"
            )
        return connector

    async def _credential(self, connector: Connector, identity: Identity) -> Credential:
        try:
            return await self._credentials.for_call(connector, identity.login_name)
        except NeedsAuth as exc:
            raise ProxyError(401, str(exc)) from None
        except Misconfigured as exc:
            raise ProxyError(502, str(exc)) from None

    async def _relay(
        self,
        receive: Any,
        send: Any,
        ex: _Exchange,
        *,
        method: str,
        url: str,
        headers: dict[str, str],
    ) -> None:
        """Relay while watching for the client to go away; a disconnect cancels upstream."""
        session = self._session if self._session is not None else self._runtime.http
        opening = session.request(
            method,
            URL(url, encoded=True),
            data=ex.request_body or None,
            headers=headers,
            allow_redirects=False,
        )

        def gone() -> None:
            ex.cancelled = True

        try:
            await watched(
                receive,
                relay(AiohttpSource.of(opening), send, ex.relayed, FORWARDING, extra_headers=[]),
                gone,
                lambda: ex.cancelled,
            )
        except Unanswered as exc:
            if exc.timed_out:
                raise ProxyError(504, f"connector {ex.connector} did not answer in time") from None
            refused = getattr(exc.cause, "os_error", None)
            if isinstance(refused, UnsafeAddress):
                raise ProxyError(502, f"upstream refused: {refused}") from None
            raise ProxyError(502, f"upstream unreachable: {_describe(exc.cause)}") from None


def _describe(exc: BaseException) -> str:
    return type(exc).__name__


def _contained(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's headers with irisgate's containment in place of the upstream's say.

    A connector's answer comes from the gateway's origin: rendered as a page, its script could
    call `/api/` as whoever opened it. `sandbox` gives the document an opaque origin with no
    script, `nosniff` stops a browser guessing a type that renders, and what would render as
    a page is downloaded instead. The upstream's own headers on these points are replaced.
    """
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    renders = _renders_as_page(content_type.decode("latin-1"))
    dropped = _RENDER_HEADERS if renders else _CONTAINMENT_HEADERS
    out = [(k, v) for k, v in headers if k.lower() not in dropped]
    out += [(b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff")]
    if renders:
        out.append((b"content-disposition", b"attachment"))
    return out


def _renders_as_page(content_type: str) -> bool:
    """HTML, XHTML, SVG and other XML (which can carry XHTML), or no type a browser could
    trust: what a browser opens as a document that runs script."""
    mime = content_type.partition(";")[0].strip().lower()
    return not mime or mime in _PAGE_TYPES or mime.endswith(("/xml", "+xml"))


def _parsed(raw: bytes) -> ConnectorPath:
    try:
        return parse(raw)
    except PathRefused as exc:
        raise ProxyError(400, str(exc)) from None


def _upstream_url(
    connector: Connector, path: ConnectorPath, query: bytes, credential: Credential
) -> str:
    parts = [q for q in (query.decode("latin-1"),) if q]
    if credential.query:
        parts.append(urlencode(credential.query))
    url = f"{connector.url}/{path.forwarded}"
    return f"{url}?{'&'.join(parts)}" if parts else url


def _forwarded(headers: dict[str, str], connector: Connector) -> dict[str, str]:
    """The client's headers minus hop-by-hop, identity, irisgate API keys and (with connector
    auth) credentials."""
    strip_credentials = connector.auth.type != "none"
    return {
        name: value
        for name, value in headers.items()
        if name not in HOP_BY_HOP
        and not name.startswith("tailscale-")
        and not (name in CREDENTIALS and (strip_credentials or not forwardable(name, value)))
    }


async def _read_body(receive: Any, scope: dict[str, Any], limit: int) -> bytes:
    try:
        return await read_body(receive, scope["headers"], limit, "--max-connector-body")
    except BodyTooLarge as exc:
        raise ProxyError(413, str(exc)) from None
    except ClientGone:
        raise ProxyError(499, "client disconnected before its request ended") from None


async def _answer(send: Any, status: int, message: str) -> None:
    """`{"error": message}`."""
    body = orjson.dumps({"error": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:
        return


FORWARDING = Forwarding(
    hop_by_hop=frozenset(h.encode() for h in HOP_BY_HOP),
    server_set=frozenset({b"date", b"server"}),  # the ASGI server sets its own
    broken=(aiohttp.ClientError,),
    describe=_describe,
    rewrite=_contained,
)
