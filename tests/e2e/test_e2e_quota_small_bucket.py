"""A small bucket drained by concurrent requests: refused only when little of it is left.

One instance (SQLite), and four instances sharing one PostgreSQL: every instance leases
part of the bucket, and money leased to one instance cannot be spent by another. Leases are
sized by the bucket's balance and the instances sharing it, and shrink as it runs low, so
that a request is refused only once less than a third of the bucket is neither spent nor
reserved. Every caller keeps sending (round-robin over the instances) until it has been
refused; then the instances stop and the bucket must have been debited exactly the
recorded costs.

How much was unspent when the first refusal was decided is bounded from what the callers
saw: every answer that had arrived before the refused request was sent was settled by then,
and at most one request per caller was in flight besides it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from conftest import ALICE_IP, _socket_of, gateway_config
from sqlalchemy.engine import make_url
from test_e2e_postgres import ADMIN_URL, _admin, _fetch

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

CAPACITY = 12_000_000  # "$0.012": about a hundred answers of 200 gpt-4o-mini tokens
ANSWER_TOKENS = 200
CALLERS = 4  # requests in flight at once
MOST = 400  # requests in all, at most (the bucket is gone long before)


def _config(upstream: str) -> str:
    config = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config["quotas"] = {"small": {"capacity": "$0.012", "rate": "$0/day"}}
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append(
        {"quotas": [{"bucket": "small"}]}
    )
    return json.dumps(config)


class Drain:
    """What the callers saw: answers in order of arrival, and for each refusal how many
    answers had arrived before the refused request was sent."""

    def __init__(self) -> None:
        self.answered = 0
        self.refused_after: list[int] = []
        self.sent = 0


async def _drain(urls: list[str]) -> Drain:
    seen = Drain()
    transport = httpx2.AsyncHTTPTransport(local_address=ALICE_IP)
    async with httpx2.AsyncClient(transport=transport, timeout=120) as http:
        clients = [
            openai.AsyncOpenAI(base_url=u + "/v1", api_key="-", http_client=http, max_retries=0)
            for u in urls
        ]

        async def caller(n: int) -> None:
            while seen.sent < MOST:
                client = clients[(seen.sent + n) % len(clients)]
                seen.sent += 1
                before = seen.answered
                try:
                    await client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": "drain"}],
                        max_tokens=ANSWER_TOKENS,
                    )
                except openai.RateLimitError:
                    seen.refused_after.append(before)
                    return
                seen.answered += 1

        await asyncio.gather(*(caller(n) for n in range(CALLERS)))
    return seen


def _check(seen: Drain, costs: list[int], balance: int) -> None:
    assert seen.refused_after, "the bucket must run out"
    assert len(set(costs)) == 1, "every answer costs the same"
    cost = costs[0]
    assert len(costs) == seen.answered
    # When the first refusal was decided, the `settled` answers that had arrived before the
    # refused request was sent were charged (or still reserved), and each other caller had
    # at most one request in flight, which may or may not have been reserved yet.
    settled = min(seen.refused_after)
    free = CAPACITY - (settled + CALLERS - 1) * cost
    answers = f"refused with {settled} of about {CAPACITY // cost} answers charged"
    assert free < CAPACITY / 3, answers
    # What the lease sizing gives: by the time every lease is taken, what is left is mostly
    # reserved, and the unused leases hold at most a quarter of it (leases of a tenth of the
    # capacity each left 16 % unspent in a run with four instances, up to 70 % with eight)
    assert free < CAPACITY / 8, answers
    # debited exactly what was recorded
    assert CAPACITY - balance == sum(costs)


@pytest.fixture
def small_fake(fake_llm: FakeLLM) -> FakeLLM:
    fake_llm.n_chunks = ANSWER_TOKENS
    return fake_llm


def test_one_instance_refuses_a_small_bucket_only_when_little_is_left(
    small_fake: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    gw = IrisgateServer(
        _config(small_fake.base_url),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=_socket_of(localapi),
    )
    with gw:
        seen = asyncio.run(_drain([gw.url]))
        assert gw.stop() == 0
    database = f"sqlite:///{tmp_path}/irisgate.db"
    costs = [int(r["cost_nanodollars"]) for r in asyncio.run(_rows(database, "requests"))]
    [bucket] = asyncio.run(_rows(database, "quota_buckets"))
    _check(seen, costs, int(bucket["balance_nanodollars"]))


async def _rows(database: str, table: str) -> list[dict[str, object]]:
    from sqlalchemy import text

    from irisgate.store.database import open_database

    db = await open_database(database)
    try:
        async with db.connect() as conn:
            where = " WHERE status = 200" if table == "requests" else ""
            result = await conn.execute(text(f"SELECT * FROM {table}{where}"))
            return [dict(row) for row in result.mappings()]
    finally:
        await db.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"irisgate_small_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_four_instances_refuse_a_small_bucket_only_when_little_is_left(
    small_fake: FakeLLM,
    localapi: FakeLocalAPI,
    pg_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = _config(small_fake.base_url)
    servers = [
        IrisgateServer(
            config,
            data_dir=tmp_path_factory.mktemp(f"small-{n}"),
            identity="tailscale",
            tailscaled_socket=_socket_of(localapi),
            database=pg_url,
        )
        for n in range(4)
    ]
    threads = [threading.Thread(target=s.start, kwargs={"timeout": 120}) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        seen = asyncio.run(_drain([s.url for s in servers]))
        for server in servers:  # SIGTERM: leases back, spending reported, records written
            assert server.stop() == 0
    finally:
        for server in servers:
            server.stop()
    costs = [
        int(row["cost_nanodollars"])
        for row in asyncio.run(_fetch(pg_url, "SELECT * FROM requests WHERE status = 200"))
    ]
    [bucket] = asyncio.run(_fetch(pg_url, "SELECT * FROM quota_buckets"))
    assert asyncio.run(_fetch(pg_url, "SELECT * FROM quota_leases")) == []
    _check(seen, costs, int(bucket["balance_nanodollars"]))
