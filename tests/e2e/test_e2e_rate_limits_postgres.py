"""Rate limits across two irisgate instances on one PostgreSQL.

Each instance counts in memory and reports its counts in the background; the other adds
them to its own. Once an instance has read the other's report, a limit holds exactly across
both: what one instance admitted is refused on the other. Requests are held in flight by the
fake's stream gate; every wait is for a condition (what an instance's API reports).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from conftest import ALICE_IP, gateway_config, http_from, openai_client
from test_e2e_postgres import _fetch, pg_url  # noqa: F401  # the throwaway-database fixture

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

MESSAGES = [{"role": "user", "content": "hello there"}]
LIMIT = 20
BURST = 30


def _config(upstream: str) -> str:
    rate_limits = {
        "rph:<user>": {"requests": LIMIT, "per": "hour"},
        "conc:<user>": {"concurrent": 2},
    }
    config = json.loads(gateway_config(upstream, rate_limits=rate_limits).split("\n", 1)[1])
    alice = config["grants"][0]["app"]["tailscale.com/cap/aperture"]
    alice.append({"models": "openai/gpt-4o-mini", "rate_limits": ["rph:<user>"]})
    alice.append({"models": "openai/gpt-5-mini", "rate_limits": ["conc:<user>"]})
    return json.dumps(config)


@pytest.fixture(scope="module")
def two(
    pg_url: str,  # noqa: F811
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[IrisgateServer, IrisgateServer]]:
    assert localapi.socket_path
    config = _config(fake_llm.base_url)
    servers = [
        IrisgateServer(
            config,
            data_dir=tmp_path_factory.mktemp(f"rate-pg-{name}"),
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
            database=pg_url,
        )
        for name in ("a", "b")
    ]
    servers[0].start()  # first: the config import, then B finds it
    servers[1].start()
    try:
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def _status(gw: IrisgateServer) -> dict[str, Any]:
    resp = http_from(ALICE_IP, gw.url).get("/api/rate-limits")
    assert resp.status_code == 200, resp.text
    status: dict[str, Any] = resp.json()
    return status


def _use(gw: IrisgateServer, name: str, key: str = "used") -> int:
    entries = {e["name"]: e for e in _status(gw)["rate_limits"]}
    return int(entries[name][key])


def _in_flight(gw: IrisgateServer) -> int:
    return _use(gw, "conc:alice@example.com", "in_flight")


async def _burst(url: str, n: int) -> list[int | openai.RateLimitError]:
    transport = httpx2.AsyncHTTPTransport(local_address=ALICE_IP)
    limits = httpx2.Limits(max_connections=n)
    async with httpx2.AsyncClient(transport=transport, timeout=60, limits=limits) as http:
        client = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key="-", http_client=http, max_retries=0
        )

        async def one() -> int | openai.RateLimitError:
            try:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            except openai.RateLimitError as exc:
                return exc
            return 200

        return await asyncio.gather(*(one() for _ in range(n)))


def test_what_one_instance_admitted_is_refused_on_the_other(
    two: tuple[IrisgateServer, IrisgateServer], fake_llm: FakeLLM
) -> None:
    a, b = two
    assert fake_llm.wait_for(lambda: _status(a)["instances"] == 2 == _status(b)["instances"])
    fake_llm.first_byte_delay = 0.02  # keep the burst in flight together
    on_a = asyncio.run(_burst(a.url, BURST))
    admitted_a = on_a.count(200)
    # a limit new to every instance admits this instance's share until its first sync, and
    # never more than the limit on one instance
    assert LIMIT // 2 <= admitted_a <= LIMIT
    # `used` is rounded: A's requests still count whole if the hour turned meanwhile
    assert fake_llm.wait_for(lambda: _use(b, "rph:alice@example.com") == admitted_a)
    on_b = asyncio.run(_burst(b.url, BURST))
    assert on_b.count(200) == LIMIT - admitted_a, "B admits only what A left"
    refused = [r for r in on_b if isinstance(r, openai.RateLimitError)]
    assert len(refused) == BURST - (LIMIT - admitted_a)
    message = refused[0].message
    assert 'rate limit "rph:alice@example.com" reached' in message
    assert f"{LIMIT} requests per hour; {LIMIT} requests used in the last hour" in message
    assert int(refused[0].response.headers["retry-after"]) >= 1
    assert len(fake_llm.requests) == LIMIT
    assert fake_llm.wait_for(lambda: _use(a, "rph:alice@example.com") == LIMIT)


def test_requests_in_flight_count_on_every_instance(
    two: tuple[IrisgateServer, IrisgateServer], fake_llm: FakeLLM
) -> None:
    a, b = two
    gate = threading.Event()
    fake_llm.stream_gate = gate
    streams = []
    try:
        for gw in (a, b):
            stream = openai_client(gw).chat.completions.create(
                model="gpt-5-mini", messages=MESSAGES, stream=True
            )
            next(iter(stream))  # admitted, and held upstream after its first event
            streams.append(stream)
        for gw in (a, b):  # each instance learns of the other's request in flight
            assert fake_llm.wait_for(lambda gw=gw: _in_flight(gw) == 2)
            with pytest.raises(openai.RateLimitError) as refused:
                openai_client(gw).chat.completions.create(model="gpt-5-mini", messages=MESSAGES)
            assert 'rate limit "conc:alice@example.com" reached' in refused.value.message
    finally:
        gate.set()
    for stream in streams:
        assert list(stream) is not None
    for gw in (a, b):
        assert fake_llm.wait_for(lambda gw=gw: _in_flight(gw) == 0)
    answer = openai_client(b).chat.completions.create(model="gpt-5-mini", messages=MESSAGES)
    assert answer.choices


def test_a_stopped_instance_leaves_no_rows(
    two: tuple[IrisgateServer, IrisgateServer],
    pg_url: str,  # noqa: F811
) -> None:
    a, b = two
    rows = asyncio.run(_fetch(pg_url, "SELECT count(*) AS n FROM rate_limit_use"))
    assert rows[0]["n"] > 0
    a.stop()
    b.stop()
    rows = asyncio.run(_fetch(pg_url, "SELECT count(*) AS n FROM rate_limit_use"))
    assert rows[0]["n"] == 0
