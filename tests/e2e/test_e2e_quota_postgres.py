"""One bucket, two irisgate instances on one PostgreSQL, 200 concurrent requests.

The database row is the authority and each instance spends a lease of it locally. Whatever
the interleaving, after both instances stop (SIGTERM) the bucket must have been debited by
exactly the sum of the recorded costs, and overspent by no more than the documented bound:
one request's estimate per instance.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import genai_prices
import httpx2
import openai
import pytest
from conftest import ALICE_IP, gateway_config
from test_e2e_postgres import _fetch, pg_url  # noqa: F401  # the throwaway-database fixture

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

CAPACITY = 1_500_000  # "$0.0015": room for about a hundred answers of the fake
REQUESTS = 200
MAX_TOKENS = 20  # the fake answers 20 tokens: the estimate covers every answer


def _config(upstream: str) -> str:
    quotas = {"shared": {"capacity": "$0.0015", "rate": "$0/day", "on_exceed": "reject"}}
    config = json.loads(gateway_config(upstream, quotas=quotas).split("\n", 1)[1])
    alice = config["grants"][0]["app"]["tailscale.com/cap/aperture"]
    alice.append({"quotas": [{"bucket": "shared"}]})
    return json.dumps(config)


@pytest.fixture
def two(
    pg_url: str,  # noqa: F811
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[IrisgateServer, IrisgateServer]]:
    assert localapi.socket_path
    config = _config(fake_llm.base_url)
    assert '"bucket": "shared"' in config
    servers = [
        IrisgateServer(
            config,
            data_dir=tmp_path_factory.mktemp(f"quota-pg-{name}"),
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


async def _burst(urls: list[str]) -> list[int]:
    """REQUESTS chat completions at once, alternating between the instances; their statuses."""
    transport = httpx2.AsyncHTTPTransport(local_address=ALICE_IP)
    limits = httpx2.Limits(max_connections=REQUESTS)
    async with httpx2.AsyncClient(transport=transport, timeout=120, limits=limits) as http:
        clients = [
            openai.AsyncOpenAI(base_url=url + "/v1", api_key="-", http_client=http, max_retries=0)
            for url in urls
        ]

        async def one(i: int) -> int:
            try:
                await clients[i % 2].chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"request {i}"}],
                    max_tokens=MAX_TOKENS,
                )
            except openai.RateLimitError as exc:
                return 429 if exc.body["type"] == "insufficient_quota" else 0  # type: ignore[index]
            return 200

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def _largest_estimate() -> int:
    """Generously above any one request's estimate: a 500-token prompt plus the output limit."""
    usage = genai_prices.Usage(input_tokens=500, output_tokens=MAX_TOKENS)
    price = genai_prices.calc_price(usage, "gpt-4o-mini", provider_id="openai").total_price
    return int(Decimal(price) * 1_000_000_000)


def test_two_instances_debit_exactly_the_recorded_costs(
    two: tuple[IrisgateServer, IrisgateServer],
    pg_url: str,  # noqa: F811
    fake_llm: FakeLLM,
) -> None:
    a, b = two
    fake_llm.first_byte_delay = 0.02  # keep requests in flight together
    statuses = asyncio.run(_burst([a.url, b.url]))
    assert statuses.count(200) + statuses.count(429) == REQUESTS
    assert statuses.count(429) > 0, "the bucket must hold"
    assert statuses[0::2].count(200) > 0, "instance A admitted requests"
    assert statuses[1::2].count(200) > 0, "instance B admitted requests"
    for server in (a, b):  # SIGTERM: spending reported, leases given back
        server.stop()
    url = pg_url
    rows: list[Any] = asyncio.run(
        _fetch(
            url,
            "SELECT count(*) AS n, COALESCE(SUM(cost_nanodollars), 0) AS cost, "
            "count(*) FILTER (WHERE status = 200) AS ok FROM requests",
        )
    )
    recorded, cost, ok = rows[0]["n"], int(rows[0]["cost"]), rows[0]["ok"]
    assert recorded == REQUESTS
    assert ok == statuses.count(200)
    [bucket] = asyncio.run(
        _fetch(url, "SELECT balance_nanodollars FROM quota_buckets WHERE name = 'shared'")
    )
    leases = asyncio.run(_fetch(url, "SELECT * FROM quota_leases"))
    assert leases == [], "a stopped instance gives its lease back"
    debited = CAPACITY - bucket["balance_nanodollars"]
    assert debited == cost, "every recorded cost was debited exactly once"
    overshoot = cost - CAPACITY
    print(f"quota burst: {ok} answered, cost {cost}, capacity {CAPACITY}, overshoot {overshoot}")
    assert overshoot <= 2 * _largest_estimate(), (cost, CAPACITY)
