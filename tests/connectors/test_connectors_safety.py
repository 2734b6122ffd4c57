"""The URL guard looks at the addresses a host resolves to, not at how the URL spells it, and
the connector clients apply it again to the addresses they connect to."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx2
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from irisgate.connectors.netguard import GuardedBackend, GuardedResolver, guarded_transport
from irisgate.connectors.safety import UnsafeAddress, UnsafeURL, UrlGuard


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api",
        "http://localhost/",
        "http://api.localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://2130706433/",  # 127.0.0.1 as one decimal number: only resolving reveals it
        "http://0x7f.1/",  # and in hex shorthand
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
        "http://[fe80::1]/",
        "http://0.0.0.0/",
    ],
)
async def test_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL, match="loopback or link-local"):
        await UrlGuard(allow_local=False).check(url)


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3/", "https://100.101.102.103/mcp", "http://[fd7a:115c:a1e0::1]/"]
)
async def test_private_tailnet_and_ula_addresses_are_allowed(url: str) -> None:
    await UrlGuard(allow_local=False).check(url)


async def test_the_setting_allows_local_addresses_but_not_other_schemes() -> None:
    guard = UrlGuard(allow_local=True)
    await guard.check("http://127.0.0.1:9/")
    with pytest.raises(UnsafeURL, match="is not http or https"):
        await guard.check("file:///etc/passwd")


# -- the addresses actually connected to (DNS rebinding) ------------------------------------
#
# DNS is outside irisgate, so these tests answer names with a fake resolver: the name
# `rebound.example` "resolves" to whatever the test says, as a rebinding DNS server would
# answer the connect after having answered the URL check with a harmless address.


class FakeDns(AbstractResolver):
    """aiohttp resolver answering `rebound.example` with `address`."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        assert host == "rebound.example"
        return [
            ResolveResult(
                hostname=host, host=self.address, port=port, family=socket.AF_INET, proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


def fake_lookup(address: str) -> Any:
    async def lookup(host: str, port: int) -> list[tuple[Any, ...]]:
        assert host == "rebound.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return lookup


def outbound_address() -> str:
    """This machine's address on its outbound interface (neither loopback nor link-local)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        address = str(probe.getsockname()[0])
    except OSError:
        pytest.skip("this machine has no outbound IPv4 interface to listen on")
    finally:
        probe.close()
    if address.startswith(("127.", "169.254.")):
        pytest.skip("this machine's only IPv4 address is loopback or link-local")
    return address


@asynccontextmanager
async def web_server(host: str) -> AsyncIterator[tuple[int, list[str]]]:
    """A tiny HTTP server on `host`; yields its port and the Host headers it was sent."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Host", ""))
        return web.Response(text="secret admin data")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


async def test_the_connector_proxy_client_refuses_a_name_that_rebinds_to_loopback() -> None:
    async with web_server("127.0.0.1") as (port, seen):
        url = f"http://rebound.example:{port}/"
        # without the guard the rebinding answer reaches the local server...
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=FakeDns("127.0.0.1"))
        ) as plain, plain.get(url) as response:
            assert await response.text() == "secret admin data"
        assert len(seen) == 1
        # ...with it the connection is never made, and the refusal says why
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(FakeDns("127.0.0.1")))
        ) as guarded:
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await guarded.get(url)
        assert isinstance(refused.value.os_error, UnsafeAddress)
        assert "resolves to 127.0.0.1, a loopback or link-local address" in str(
            refused.value.os_error
        )
        assert len(seen) == 1


async def test_the_connector_proxy_client_connects_to_allowed_addresses() -> None:
    address = outbound_address()
    async with web_server(address) as (port, seen):
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(FakeDns(address)))
        ) as guarded, guarded.get(f"http://rebound.example:{port}/") as response:
            assert response.status == 200
        assert seen == [f"rebound.example:{port}"]


async def test_mcp_and_oauth_clients_refuse_a_name_that_rebinds_to_loopback() -> None:
    async with web_server("127.0.0.1") as (port, seen):
        backend = GuardedBackend(lookup=fake_lookup("127.0.0.1"))
        async with httpx2.AsyncClient(transport=guarded_transport(backend=backend)) as client:
            with pytest.raises(UnsafeAddress, match=r"resolves to 127\.0\.0\.1"):
                await client.get(f"http://rebound.example:{port}/")
            with pytest.raises(UnsafeAddress, match=r"resolves to ::1"):
                await client.get(f"http://[::1]:{port}/")
        assert seen == []


async def test_mcp_and_oauth_clients_connect_to_allowed_addresses() -> None:
    address = outbound_address()
    async with web_server(address) as (port, seen):
        backend = GuardedBackend(lookup=fake_lookup(address))
        async with httpx2.AsyncClient(transport=guarded_transport(backend=backend)) as client:
            response = await client.get(f"http://rebound.example:{port}/")
        assert response.status_code == 200
        assert seen == [f"rebound.example:{port}"]
