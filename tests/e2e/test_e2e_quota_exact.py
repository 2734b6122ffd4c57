"""Every cent an instance spends is debited from its bucket, whatever the interleaving.

The race reproduced here (issue 25): a request's admission leases two buckets at once. One of
them (`user-bob`) is new; the other (`shared`) waits for a row lock held by the test (when
both are leased in one transaction, as now, both wait). Meanwhile the instance's upkeep runs
its rounds. Before the fix, the upkeep took the new bucket for idle (it had never been
"used"), gave its lease back and forgot it while the admission still held it; the admission
then leased and spent on the forgotten object and that spending was never reported. The
rounds are observed, not timed: Alice's spending in another bucket is flushed by a round,
and a second flush proves a whole round passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx2
import openai
import pytest
from conftest import ALICE_IP, BOB_IP, gateway_config
from sqlalchemy.engine import make_url
from test_e2e_postgres import ADMIN_URL, _admin, _fetch

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

CAPACITY = 1_000_000_000  # $1 in every bucket


def _config(upstream: str) -> str:
    bucket = {"capacity": "$1", "rate": "$0/day"}
    config = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config["quotas"] = {"shared": bucket, "user-<user>": bucket}
    config["grants"] = [
        {
            "src": ["alice@example.com"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "admin"},
                    {"models": "**", "quotas": [{"bucket": "user-<user>"}]},
                ]
            },
        },
        {
            "src": ["bob@example.com"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "user"},
                    {"models": "**", "quotas": [{"bucket": "shared"}, {"bucket": "user-<user>"}]},
                ]
            },
        },
    ]
    return json.dumps(config)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty database for each test, dropped afterwards."""
    name = f"irisgate_exact_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def server(
    pg_url: str,
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    gw = IrisgateServer(
        _config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("quota-exact"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        database=pg_url,
    )
    with gw:
        yield gw


def _client(gw: IrisgateServer, ip: str) -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(local_address=ip), timeout=120)
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="-", http_client=http, max_retries=0)


async def _ask(client: openai.AsyncOpenAI, text: str) -> None:
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_tokens=20
    )


async def _debited(conn: asyncpg.Connection, bucket: str) -> int:
    """Capacity minus the bucket's balance (unleased money plus every lease)."""
    row = await conn.fetchrow(
        "SELECT b.balance_nanodollars + COALESCE(SUM(l.held_nanodollars), 0) AS balance "
        "FROM quota_buckets b LEFT JOIN quota_leases l ON l.bucket = b.name "
        "WHERE b.name = $1 GROUP BY b.name",
        bucket,
    )
    return 0 if row is None else CAPACITY - int(row["balance"])


async def _until(check: Any) -> None:
    """Poll a condition (an async callable returning bool) until it holds."""
    while not await check():  # noqa: ASYNC110 - the condition is in another process
        await asyncio.sleep(0.02)


async def _race(gw: IrisgateServer, url: str) -> None:
    alice, bob = _client(gw, ALICE_IP), _client(gw, BOB_IP)
    watcher = await asyncpg.connect(url)
    blocker = await asyncpg.connect(url)
    try:
        # the test's own uncommitted insert of the shared row: the instance's insert of it
        # waits for this transaction, so Bob's admission stays half done
        blocker_tx = blocker.transaction()
        await blocker_tx.start()
        now = datetime.now(UTC)
        await blocker.execute(
            "INSERT INTO quota_buckets (name, template, balance_nanodollars, "
            "capacity_nanodollars, refilled_at, updated_at) VALUES ($1, $1, $2, $2, $3, $3)",
            "shared",
            CAPACITY,
            now,
        )
        bob_request = asyncio.create_task(_ask(bob, "Bob's request"))

        async def bob_half_admitted() -> bool:
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(waiting)

        await _until(bob_half_admitted)
        # two flushes of Alice's spending: at least one whole upkeep round ran meanwhile
        for n in (1, 2):
            before = await _debited(watcher, "user-alice@example.com")
            await _ask(alice, f"Alice's request {n}")

            async def flushed(before: int = before) -> bool:
                return await _debited(watcher, "user-alice@example.com") > before

            await _until(flushed)
        assert not bob_request.done()
        await blocker_tx.rollback()
        await bob_request
    finally:
        await blocker.close()
        await watcher.close()
        await alice.close()
        await bob.close()


def test_a_bucket_leased_while_an_admission_waits_is_debited_exactly(
    server: IrisgateServer,
    pg_url: str,
) -> None:
    asyncio.run(_race(server, pg_url))
    server.stop()  # SIGTERM: every lease back, all spending reported, records written
    costs = {
        row["login_name"]: int(row["cost"])
        for row in asyncio.run(
            _fetch(
                pg_url,
                "SELECT login_name, SUM(cost_nanodollars) AS cost FROM requests "
                "GROUP BY login_name",
            )
        )
    }
    assert set(costs) == {"alice@example.com", "bob@example.com"}
    assert all(costs.values())
    debited = {
        row["name"]: CAPACITY - int(row["balance_nanodollars"])
        for row in asyncio.run(_fetch(pg_url, "SELECT * FROM quota_buckets"))
    }
    leases = asyncio.run(_fetch(pg_url, "SELECT * FROM quota_leases"))
    assert [dict(lease) for lease in leases] == [], "every lease was given back"
    assert debited == {
        "shared": costs["bob@example.com"],
        "user-bob@example.com": costs["bob@example.com"],
        "user-alice@example.com": costs["alice@example.com"],
    }


async def _spend_unreported(
    gw: IrisgateServer, url: str, while_unreported: Callable[[], Awaitable[None]]
) -> None:
    """Alice spends with a lease in hand while her lease row is locked: her spending is
    settled in the instance (and recorded) but cannot be reported; then `while_unreported()`
    runs (it may cut the database off: the test's own connections may be gone after it)."""
    alice = _client(gw, ALICE_IP)
    watcher = await asyncpg.connect(url)
    blocker = await asyncpg.connect(url)
    try:
        await _ask(alice, "leases the bucket")

        async def reported() -> bool:
            return await _debited(watcher, "user-alice@example.com") > 0

        await _until(reported)
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(  # the lease row: reports touch it, with or without the bucket's
            "SELECT * FROM quota_leases WHERE bucket = 'user-alice@example.com' FOR UPDATE"
        )
        for n in range(3):
            await _ask(alice, f"spends from the lease {n}")

        async def recorded() -> bool:
            return await watcher.fetchval("SELECT count(*) FROM requests") == 4

        await _until(recorded)

        async def flush_waits() -> bool:
            return bool(
                await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )

        await _until(flush_waits)
        await while_unreported()
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await transaction.rollback()
    finally:
        for conn in (blocker, watcher):
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.close()
        await alice.close()


def _beside(server: IrisgateServer, pg_url: str) -> IrisgateServer:
    """Another instance on the same data folder and database."""
    return IrisgateServer(
        None,
        data_dir=server.data_dir,
        identity="tailscale",
        tailscaled_socket=server.args[server.args.index("--tailscaled-socket") + 1],
        database=pg_url,
        extra_args=("--config", str(server.config_path)),
    )


def _debited_equals_recorded(pg_url: str) -> None:
    [row] = asyncio.run(
        _fetch(pg_url, "SELECT count(*) AS n, SUM(cost_nanodollars) AS cost FROM requests")
    )
    assert row["n"] == 4
    [bucket] = asyncio.run(_fetch(pg_url, "SELECT * FROM quota_buckets"))
    leases = asyncio.run(_fetch(pg_url, "SELECT * FROM quota_leases"))
    assert CAPACITY - bucket["balance_nanodollars"] == int(row["cost"]), "all spending debited"
    assert [dict(lease) for lease in leases] == [], "every lease was given back"


def test_spending_of_a_killed_instance_is_debited_by_the_next_start(
    server: IrisgateServer,
    pg_url: str,
) -> None:
    async def kill() -> None:
        assert server.process is not None
        server.process.kill()
        await asyncio.to_thread(server.process.wait)

    asyncio.run(_spend_unreported(server, pg_url, kill))
    with _beside(server, pg_url):
        pass  # starting replays the killed instance's journal; stopping reports the rest
    _debited_equals_recorded(pg_url)


def test_a_live_instance_journal_is_not_replayed_by_another_on_the_same_folder(
    server: IrisgateServer,
    pg_url: str,
) -> None:
    async def start_and_stop_another() -> None:
        def run() -> None:
            with _beside(server, pg_url):
                pass

        await asyncio.to_thread(run)

    asyncio.run(_spend_unreported(server, pg_url, start_and_stop_another))
    server.stop()  # the lock is gone: the first instance reports its own spending
    _debited_equals_recorded(pg_url)


def test_spending_of_an_instance_stopped_during_a_database_outage_is_debited_later(
    server: IrisgateServer,
    pg_url: str,
) -> None:
    name = make_url(pg_url).database

    async def outage_then_sigterm() -> None:
        await _admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await _admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        try:
            assert await asyncio.to_thread(server.stop) == 0
        finally:
            await _admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

    asyncio.run(_spend_unreported(server, pg_url, outage_then_sigterm))
    assert "quota spending could not be reported at shutdown" in server.logs()
    with _beside(server, pg_url):
        pass  # starting replays the stopped instance's journal
    _debited_equals_recorded(pg_url)
