"""MCP client sessions to connectors' servers: the `mcp` SDK's client over Streamable HTTP,
or over the legacy SSE transport (2024-11-05) for a connector with `transport: "sse"`: one
long GET event stream per session whose `endpoint` event names where requests are POSTed.

Sessions are kept open and reused, one per connector (its URL) and credential: opening one
costs two extra HTTP round trips (initialize, initialized) and a new HTTP client, so a call
on an open session is one round trip. The credential is part of the key, so users of a
per-user OAuth connector never share an upstream session, and a session can never carry one
user's token into another user's call (a refreshed token opens a new session). A session
unused for `IDLE_SECONDS` is closed, and at most `MAX_SESSIONS` are kept (the least recently
used idle one goes first). Concurrent calls share an open session (JSON-RPC ids keep them
apart); the first callers of a new key share its opening.

A connection error is retried once on a fresh session (reference §6.5), and so is a reused
session the server has forgotten ("Session terminated", HTTP 404); a failed session is
closed. Any other failure is reported as `UpstreamError` naming the connector.

Answers are bounded by `max_answer` (`--max-connector-answer`): a JSON answer by its length
(`answerlimit`), an SSE answer event by event (the SDK's `max_sse_event_size`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_REQUEST

from irisgate.config.model import Connector
from irisgate.connectors.answerlimit import LimitedTransport
from irisgate.connectors.credentials import Credential
from irisgate.connectors.netguard import guarded_transport
from irisgate.connectors.safety import UnsafeAddress, UnsafeURL, UrlGuard

T = TypeVar("T")
Operation = Callable[[Client], Awaitable[T]]
#: an upstream session unused this long is closed
IDLE_SECONDS = 120.0
#: open upstream sessions kept at most (per process)
MAX_SESSIONS = 256
Key = tuple[str, str, str]


class UpstreamError(Exception):
    """The connector's MCP server failed; `str(exc)` is safe to show."""


class ToolError(UpstreamError):
    """The upstream answered the call with a JSON-RPC error (kept with its code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, as the SDK's task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@dataclass(eq=False)
class _Session:
    client: Client
    task: asyncio.Task[None]  # holds the SDK's client context open until `closing` is set
    closing: asyncio.Event
    used_at: float = field(default_factory=time.monotonic)
    busy: int = 0


def _key(connector: Connector, credential: Credential) -> Key:
    secret = repr((sorted(credential.headers.items()), credential.query)).encode()
    return (
        connector.id,
        f"{connector.transport} {connector.url}",
        hashlib.sha256(secret).hexdigest(),
    )


def _connection_lost(exc: BaseException) -> bool:
    """The connection failed: the transport's error, or the SDK's report of it."""
    if isinstance(exc, MCPError):
        return exc.error.code == CONNECTION_CLOSED
    return isinstance(exc, httpx2.TransportError)


def _forgotten(exc: BaseException) -> bool:
    """The server no longer knows the session (it answered 404 to the session id)."""
    return (
        isinstance(exc, MCPError)
        and exc.error.code == INVALID_REQUEST
        and exc.error.message == "Session terminated"
    )


class McpUpstreams:
    def __init__(self, guard: UrlGuard, *, timeout: float, max_answer: int) -> None:
        self._guard = guard
        self._max_answer = max_answer
        self._timeout = httpx2.Timeout(timeout, read=timeout)
        # building an SSL context costs ~7 ms; each session's client shares this one
        self._tls = httpx2.create_ssl_context(trust_env=False)
        self._sessions: dict[Key, _Session] = {}
        self._opening: dict[Key, asyncio.Future[_Session]] = {}
        self._closed = False

    async def run(self, connector: Connector, credential: Credential, op: Operation[T]) -> T:
        """Run `op` on this connector's session for `credential`; UnsafeURL when the URL may
        not be reached, UpstreamError (ToolError) when the upstream fails."""
        await self._guard.check(connector.url)
        key = _key(connector, credential)
        reused = key in self._sessions
        try:
            return await self._on(key, connector, credential, op)
        except Exception as exc:  # the SDK wraps transport errors in task groups
            leaf = _leaf(exc)
            if not (_connection_lost(leaf) or (reused and _forgotten(leaf))):
                raise self._failure(connector, exc) from None
        try:  # once more, on a fresh session
            return await self._on(key, connector, credential, op)
        except Exception as exc:
            raise self._failure(connector, exc) from None

    async def _on(
        self, key: Key, connector: Connector, credential: Credential, op: Operation[T]
    ) -> T:
        session = await self._session(key, connector, credential)
        session.busy += 1
        try:
            return await op(session.client)
        except Exception as exc:
            leaf = _leaf(exc)
            if not isinstance(leaf, MCPError) or _connection_lost(leaf) or _forgotten(leaf):
                self._discard(key, session)  # the session is broken: the next call opens anew
            raise
        finally:
            session.busy -= 1
            session.used_at = time.monotonic()

    async def _session(self, key: Key, connector: Connector, credential: Credential) -> _Session:
        session = self._sessions.get(key)
        if session is not None and not session.task.done():
            return session
        if session is not None:
            self._discard(key, session)
        opening = self._opening.get(key)
        if opening is None:
            self._close_idle()
            opening = asyncio.get_running_loop().create_future()
            self._opening[key] = opening
            try:
                session = await self._open(connector, credential)
            except BaseException as exc:
                opening.set_exception(exc)
                opening.exception()  # retrieved: waiters re-raise it, nobody else must
                raise
            finally:
                del self._opening[key]
            if self._closed:
                session.closing.set()
                raise UpstreamError(f"{connector.id}: connectors are shutting down")
            self._sessions[key] = session
            opening.set_result(session)
            return session
        return await asyncio.shield(opening)

    async def _open(self, connector: Connector, credential: Credential) -> _Session:
        """Start a task that opens a session and holds it until told to close."""
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        closing = asyncio.Event()
        inner = (
            httpx2.AsyncHTTPTransport(verify=self._tls, trust_env=False)
            if self._guard.allow_local
            else guarded_transport(self._tls)
        )
        limited = LimitedTransport(inner, self._max_answer)
        # asked uncompressed: the limit counts the bytes that arrive, not what they inflate to
        base_headers = {**credential.headers, "accept-encoding": "identity"}

        def http_client(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(
                headers=base_headers,
                params=dict(credential.query),
                timeout=timeout or self._timeout,  # the legacy stream's read timeout is its own
                trust_env=False,
                transport=limited,
            )

        async def hold() -> None:
            try:
                if connector.transport == "sse":  # legacy: GET the stream, POST to its endpoint
                    legacy = sse_client(
                        connector.url,
                        timeout=self._timeout.connect or 30.0,
                        sse_read_timeout=IDLE_SECONDS * 2,  # the server's pings keep it open
                        httpx_client_factory=http_client,
                    )
                    async with Client(legacy, cache=None) as client:
                        ready.set_result(client)
                        await closing.wait()
                    return
                async with http_client() as http:
                    transport = streamable_http_client(
                        connector.url, http_client=http, max_sse_event_size=self._max_answer
                    )
                    async with Client(transport, cache=None) as client:
                        ready.set_result(client)
                        await closing.wait()
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                elif not isinstance(exc, asyncio.CancelledError | Exception):
                    raise

        task = asyncio.get_running_loop().create_task(hold(), name=f"mcp-upstream-{connector.id}")
        try:
            client = await asyncio.shield(ready)
        except BaseException:
            closing.set()
            task.cancel()
            raise
        return _Session(client, task, closing)

    def _discard(self, key: Key, session: _Session) -> None:
        if self._sessions.get(key) is session:
            del self._sessions[key]
        session.closing.set()

    def _close_idle(self) -> None:
        """Close sessions idle too long, and the least recently used idle ones over the cap."""
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if session.busy == 0 and now - session.used_at > IDLE_SECONDS:
                self._discard(key, session)
        idle = sorted((s.used_at, k) for k, s in self._sessions.items() if s.busy == 0)
        for _, key in idle[: max(0, len(self._sessions) + 1 - MAX_SESSIONS)]:
            self._discard(key, self._sessions[key])

    async def close(self) -> None:
        """Close every session (at shutdown)."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.closing.set()
        for session in sessions:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(session.task, 5)

    @staticmethod
    def _failure(connector: Connector, exc: BaseException) -> UnsafeURL | UpstreamError:
        """What `run` raises for `exc`: UnsafeURL when the name resolved, on connect, to an
        address connectors may not reach; else the UpstreamError naming the connector."""
        leaf = _leaf(exc)
        if isinstance(leaf, UnsafeAddress):
            return UnsafeURL(str(leaf))
        if isinstance(leaf, MCPError):
            return ToolError(f"{connector.id}: {leaf.error.message}", leaf.error.code)
        if isinstance(leaf, httpx2.HTTPStatusError):
            status = leaf.response.status_code
            return UpstreamError(f"{connector.id}: upstream answered HTTP {status}")
        if isinstance(leaf, httpx2.TransportError):
            return UpstreamError(f"{connector.id}: upstream unreachable ({type(leaf).__name__})")
        return UpstreamError(f"{connector.id}: upstream failed ({type(leaf).__name__})")
