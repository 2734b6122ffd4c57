"""`HostGuard.refusal` decisions, asked twice each (the second answer comes from what the guard
remembers per `Host` value), with a WhoIs whose answers can change."""

from __future__ import annotations

from typing import Any

import pytest

from irisgate.hosts import HostGuard
from irisgate.identity import Identity, IdentityRefused
from irisgate.settings import load_settings

SERVER = ("100.64.0.1", 8080)


class WhoIs:
    """A resolver that names the gateway's node as `node` (or knows no name when None)."""

    def __init__(self) -> None:
        self.node: str | None = "gw"
        self.asked = 0

    async def resolve(self, client: tuple[str, int] | None, headers: object) -> Identity:
        raise IdentityRefused("the host guard does not identify callers")

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        self.asked += 1
        if self.node is None:
            return frozenset()
        return frozenset({self.node, f"{self.node}.tail1.ts.net"})

    async def close(self) -> None:
        return None


def guard(identity: str = "tailscale", allowed: str | None = None) -> tuple[HostGuard, WhoIs]:
    whois = WhoIs()
    settings = load_settings(
        {"identity": identity, "allowed_hosts": allowed, "listen": "127.0.0.1:8080"},
        {},
    )
    return HostGuard(settings, whois), whois  # type: ignore[arg-type]


def scope(*hosts: bytes) -> dict[str, Any]:
    headers = [(b"accept", b"*/*"), *((b"host", h) for h in hosts)]
    return {"headers": headers, "server": SERVER}


async def twice(g: HostGuard, s: dict[str, Any]) -> str | None:
    first = await g.refusal(s)
    assert await g.refusal(s) == first
    return first


@pytest.mark.parametrize(
    "host",
    [
        b"127.0.0.1",
        b"127.0.0.1:8080",
        b"[::1]:8080",
        b"[fd7a:115c:a1e0::1]",
        b"::1",
        b"LOCALHOST:8080",
        b"app.localhost.",
        b"",
        b":8080",
        b"gw",
        b"GW.tail1.ts.net.:443",
        b"ai.corp.example",
        b"x.internal.example",
    ],
)
async def test_passes(host: bytes) -> None:
    g, _ = guard(allowed="ai.corp.example,*.internal.example")
    assert await twice(g, scope(host)) is None


@pytest.mark.parametrize(
    "host",
    [b"evil.example", b"evil.example:8080", b"gw.evil.example", b"256.1.1.1", b"[evil]", b"a:b:c"],
)
async def test_refused(host: bytes) -> None:
    g, _ = guard(allowed="ai.corp.example,*.internal.example")
    reason = await twice(g, scope(host))
    assert reason is not None and "is not a name of this gateway" in reason


async def test_no_host_header_passes_and_the_first_one_counts() -> None:
    g, _ = guard()
    assert await twice(g, scope()) is None
    assert await twice(g, scope(b"127.0.0.1", b"evil.example")) is None
    assert await twice(g, scope(b"evil.example", b"127.0.0.1")) is not None


async def test_mode_serve_checks_host_and_forwarded_host_and_any_turns_it_off() -> None:
    serve = guard("serve")[0]
    assert await twice(serve, scope(b"evil.example")) is not None
    assert await twice(serve, scope(b"gw.tail1.ts.net")) is None
    forwarded = scope(b"127.0.0.1")
    forwarded["headers"].append((b"x-forwarded-host", b"evil.example"))
    assert await twice(serve, forwarded) is not None
    assert await twice(guard(allowed="*")[0], scope(b"evil.example")) is None
    assert await twice(guard("serve", allowed="*")[0], forwarded) is None


async def test_own_names_follow_whois_not_a_remembered_verdict() -> None:
    g, whois = guard()
    whois.node = None  # WhoIs cannot name the gateway yet: its names are refused
    assert await g.refusal(scope(b"gw")) is not None
    g._names.clear()  # the failed WhoIs is retried after a while; the Host verdict is not kept
    whois.node = "gw"
    assert await g.refusal(scope(b"gw")) is None
    assert whois.asked == 2


async def test_long_and_many_hosts_keep_their_verdicts() -> None:
    g, _ = guard()
    long = b"a" * 400 + b".example"
    assert await twice(g, scope(long)) is not None
    for n in range(3000):  # more distinct values than are remembered
        assert await g.refusal(scope(b"10.0.%d.%d" % (n // 256, n % 256))) is None
        assert await g.refusal(scope(b"h%d.example" % n)) is not None
    assert await twice(g, scope(b"127.0.0.1")) is None
