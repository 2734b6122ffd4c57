"""MCP client sessions to connectors' servers: the `mcp` SDK's client over Streamable HTTP.

Every operation opens its own session with the credential of the caller it serves, so users
of a per-user OAuth connector never share an upstream session, and a session can never carry
one user's token into another user's call. A connection error is retried once (reference
§6.5); any other failure is reported as `UpstreamError` naming the connector.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from irisgate.config.model import Connector
from irisgate.connectors.credentials import Credential
from irisgate.connectors.netguard import guarded_transport
from irisgate.connectors.safety import UnsafeAddress, UnsafeURL, UrlGuard

T = TypeVar("T")
Operation = Callable[[Client], Awaitable[T]]


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


class McpUpstreams:
    def __init__(self, guard: UrlGuard, *, timeout: float) -> None:
        self._guard = guard
        self._timeout = httpx2.Timeout(timeout, read=timeout)
        # building an SSL context costs ~7 ms; each session's client shares this one
        self._tls = httpx2.create_ssl_context(trust_env=False)

    async def run(self, connector: Connector, credential: Credential, op: Operation[T]) -> T:
        """Run `op` on a fresh session; UnsafeURL when the URL may not be reached."""
        await self._guard.check(connector.url)
        try:
            return await self._once(connector, credential, op)
        except Exception as exc:  # the SDK wraps transport errors in task groups
            leaf = _leaf(exc)
            if isinstance(leaf, UnsafeAddress):  # the name resolved elsewhere on connect
                raise UnsafeURL(str(leaf)) from None
            if not isinstance(leaf, httpx2.TransportError):
                raise self._error(connector, exc) from None
        try:  # a connection error: once more on a fresh connection
            return await self._once(connector, credential, op)
        except Exception as exc:
            raise self._error(connector, exc) from None

    async def _once(self, connector: Connector, credential: Credential, op: Operation[T]) -> T:
        guarded = None if self._guard.allow_local else guarded_transport(self._tls)
        async with httpx2.AsyncClient(
            headers=credential.headers,
            params=dict(credential.query),
            timeout=self._timeout,
            trust_env=False,
            verify=self._tls,
            transport=guarded,
        ) as http:
            transport = streamable_http_client(connector.url, http_client=http)
            async with Client(transport, cache=None) as client:
                return await op(client)

    @staticmethod
    def _error(connector: Connector, exc: BaseException) -> UpstreamError:
        leaf = _leaf(exc)
        if isinstance(leaf, MCPError):
            return ToolError(f"{connector.id}: {leaf.error.message}", leaf.error.code)
        if isinstance(leaf, httpx2.HTTPStatusError):
            status = leaf.response.status_code
            return UpstreamError(f"{connector.id}: upstream answered HTTP {status}")
        if isinstance(leaf, httpx2.TransportError):
            return UpstreamError(f"{connector.id}: upstream unreachable ({type(leaf).__name__})")
        return UpstreamError(f"{connector.id}: upstream failed ({type(leaf).__name__})")
