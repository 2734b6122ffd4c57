"""WhoIsClient against the fake tailscaled: which answer is reused for which connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from irisgate.identity import IdentityRefused
from irisgate.identity.localapi import WhoIsClient, is_tailnet_address
from irisgate.testing import FakeLocalAPI


@pytest.fixture
def localapi(tmp_path: Path) -> Iterator[FakeLocalAPI]:
    with FakeLocalAPI(tmp_path / "tailscaled.sock") as api:
        api.add_user("100.64.0.5", "alice@example.com", "Alice")
        api.add_user("100.64.0.6", "bob@example.com", "Bob")
        yield api


@pytest.fixture
async def client(localapi: FakeLocalAPI) -> AsyncIterator[WhoIsClient]:
    whois = WhoIsClient(localapi.socket_path, ttl=60)
    yield whois
    await whois.close()


async def test_a_tailnet_address_is_one_node_whatever_the_port(
    client: WhoIsClient, localapi: FakeLocalAPI
) -> None:
    assert (await client.whois(("100.64.0.5", 40001))).login_name == "alice@example.com"
    assert (await client.whois(("100.64.0.5", 40002))).login_name == "alice@example.com"
    assert localapi.whois_calls == 1
    assert localapi.requests[-1].query["addr"] == "100.64.0.5:40001"


async def test_a_reused_loopback_port_is_asked_about_again(
    client: WhoIsClient, localapi: FakeLocalAPI
) -> None:
    first = ("127.0.0.1", 50000)  # one connection's `client`, as the ASGI server builds it
    localapi.forward("127.0.0.1:50000", "100.64.0.5")
    assert (await client.whois(first)).login_name == "alice@example.com"
    assert (await client.whois(first)).login_name == "alice@example.com"
    assert localapi.whois_calls == 1  # the same connection keeps its answer
    # that connection is gone; bob's relayed connection now has the same port
    localapi.forward("127.0.0.1:50000", "100.64.0.6")
    later = ("127.0.0.1", int("50000"))  # a new tuple equal in value (a literal would be shared)
    assert (await client.whois(later)).login_name == "bob@example.com"
    assert localapi.whois_calls == 2


async def test_an_unknown_loopback_port_is_refused(
    client: WhoIsClient, localapi: FakeLocalAPI
) -> None:
    localapi.forward("127.0.0.1:50001", "100.64.0.5")
    assert (await client.whois(("127.0.0.1", 50001))).login_name == "alice@example.com"
    with pytest.raises(IdentityRefused, match=r"does not know peer 127\.0\.0\.1:"):
        await client.whois(("127.0.0.1", 50002))
    assert localapi.requests[-1].query["addr"] == "127.0.0.1:50002"


@pytest.mark.parametrize(
    ("ip", "tailnet"),
    [
        ("100.64.0.1", True),
        ("100.127.255.254", True),
        ("fd7a:115c:a1e0::5", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("100.128.0.1", False),
        ("192.168.1.10", False),
        ("not an ip", False),
    ],
)
def test_tailnet_addresses(ip: str, tailnet: bool) -> None:
    assert is_tailnet_address(ip) is tailnet


async def test_key_expiry_comes_from_tailscaled_status(
    client: WhoIsClient, localapi: FakeLocalAPI
) -> None:
    # key expiry disabled for the node: tailscaled leaves KeyExpiry out
    assert await client.key_expiry(ttl=0) is None
    expiry = datetime(2026, 12, 10, 9, 30, 15, 250000, tzinfo=UTC)
    localapi.key_expiry = expiry
    assert await client.key_expiry(ttl=0) == expiry
    assert localapi.requests[-1].path == "/localapi/v0/status"
    # the answer is reused for a while: one status request per minute at most
    asked = len(localapi.requests)
    localapi.key_expiry = None
    assert await client.key_expiry() == expiry
    assert len(localapi.requests) == asked


async def test_key_expiry_without_tailscaled_is_none(tmp_path: Path) -> None:
    whois = WhoIsClient(str(tmp_path / "no-such.sock"))
    try:
        assert await whois.key_expiry() is None
    finally:
        await whois.close()
