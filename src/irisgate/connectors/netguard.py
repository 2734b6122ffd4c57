"""Connect only where the URL guard allows, checked on the addresses actually connected to.

`UrlGuard.check` resolves a URL's host before irisgate calls it, but the HTTP client resolves
the name again when it connects: a name whose DNS answer changes in between (DNS rebinding,
a short TTL) would slip a loopback or link-local address past the check. The clients that
reach connectors therefore resolve through these wrappers, which refuse a local address in
the very answer they connect with:

- `GuardedResolver`: an aiohttp resolver (the HTTP connector proxy).
- `GuardedBackend`: an httpcore2 network backend (MCP upstream sessions and the OAuth token
  endpoint, which use httpx2); `guarded_transport` builds an httpx2 transport on it.

A refusal is an `UnsafeAddress` (an OSError, as a failed connect is). Literal IP addresses
are checked by `UrlGuard.check` before any request; the wrappers check them too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore2
import httpx2
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from irisgate.connectors.safety import UnsafeAddress, address_refusal

#: getaddrinfo's shape: (host, port) -> [(family, type, proto, canonname, sockaddr), ...]
Lookup = Callable[[str, int], Awaitable[list[tuple[Any, ...]]]]


def _refuse_local(host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        refusal = address_refusal(host, address)
        if refusal:
            raise UnsafeAddress(refusal)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver: the inner resolver's answer, refused when any address is local."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        _refuse_local(host, (r["host"] for r in results))
        return results

    async def close(self) -> None:
        await self._inner.close()


async def _getaddrinfo(host: str, port: int) -> list[tuple[Any, ...]]:
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2 backend: resolves the host itself, refuses local answers, then connects to
    the checked addresses in order (TLS still verifies and sends the original host name)."""

    def __init__(
        self, inner: httpcore2.AsyncNetworkBackend | None = None, lookup: Lookup | None = None
    ) -> None:
        self._inner = inner if inner is not None else httpcore2.AnyIOBackend()
        self._lookup = lookup if lookup is not None else _getaddrinfo

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                infos = await self._lookup(host, port)
            except OSError as exc:
                raise httpcore2.ConnectError(f"{host} cannot be resolved: {exc}") from exc
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        _refuse_local(host, addresses)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore2.ConnectError(f"{host} resolved to no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise UnsafeAddress("connectors are reached over TCP, not unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    verify: ssl.SSLContext | bool = True, backend: GuardedBackend | None = None
) -> httpx2.AsyncHTTPTransport:
    """An httpx2 transport whose connections go through `GuardedBackend`."""
    transport = httpx2.AsyncHTTPTransport(verify=verify, trust_env=False)
    pool = transport._pool
    if not isinstance(pool, httpcore2.AsyncConnectionPool):  # pragma: no cover - guarded
        raise RuntimeError("httpx2's transport has no connection pool to guard")
    pool._network_backend = backend if backend is not None else GuardedBackend()
    return transport
