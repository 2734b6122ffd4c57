"""The rollup fold: partial rollup rows merged into their key's shard 0, exactly, while two
instances' batch writers keep adding to the same keys; and the background worker's round.

Each backend (SQLite and PostgreSQL) runs it. On PostgreSQL the writers really spread the
keys over shards (the test holds shard 0 while they write, as another transaction would);
SQLite writes shard 0 only, so there the partial rows are the ones a database copied from
PostgreSQL would bring, added by the test.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from store_records import make_record, new_spool

from irisgate.store import reports
from irisgate.store.database import Database, open_database
from irisgate.store.queries import daily_usage
from irisgate.store.tables import sessions, usage_agent_daily, usage_daily
from irisgate.telemetry.folding import RollupFold, fold
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.shards import LOCK_CLASS
from irisgate.telemetry.writer import BatchWriter
from irisgate.usage.agents import agent_name
from irisgate.usage.tokens import Usage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
#: a partial row in shard 7 the test adds to one key of each rollup (amounts below)
SEEDED = (3, 700, 9_000)  # requests, total_tokens, cost
AGENT = agent_name("openai-python/3.51.0")


def records(start: int, count: int) -> list[RequestRecord]:
    """Records over 4 users, 6 sessions, 3 days and 2 agents."""
    return [
        make_record(
            n,
            started_at=T0 + timedelta(days=n % 3, seconds=n),
            login_name=f"user{n % 4}@example.com",
            session_id=f"sess_{n % 6}",
            user_agent="claude-cli/2.0.1" if n % 2 else "openai-python/3.51.0",
            usage=Usage(input_tokens=100 + n, output_tokens=n % 50),
            cost_nanodollars=1_000 * (n + 1),
            tool_calls=n % 3,  # rows in tool_use_daily too
        )
        for n in range(start, start + count)
    ]


Totals = dict[str, dict[Any, tuple[Any, ...]]]


def expected(written: list[RequestRecord]) -> Totals:
    daily: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
    agents: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_session: dict[Any, list[Any]] = {}
    for r in written:
        day = r.started_at.date().isoformat()
        for sums in (daily[(day, r.login_name, r.model)], agents[agent_name(r.user_agent)]):
            sums[0] += 1
            sums[1] += r.usage.total_tokens
            sums[2] += r.cost_nanodollars or 0
        key = (r.login_name, r.session_id)
        row = by_session.setdefault(key, [0, 0, 0, r.started_at, r.started_at])
        row[0] += 1
        row[1] += r.usage.total_tokens
        row[2] += r.cost_nanodollars or 0
        row[3], row[4] = min(row[3], r.started_at), max(row[4], r.started_at)
    # the seeded partial rows: user0's first day, the agent of even records, sess_0 of user0
    for sums in (daily[(T0.date().isoformat(), "user0@example.com", "gpt-4o")], agents[AGENT]):
        for i, amount in enumerate(SEEDED):
            sums[i] += amount
    seeded = by_session[("user0@example.com", "sess_0")]
    for i, amount in enumerate(SEEDED):
        seeded[i] += amount
    return {
        "daily": {k: tuple(v) for k, v in daily.items()},
        "agents": {k: tuple(v) for k, v in agents.items()},
        "sessions": {k: (*v[:3], _iso(v[3]), _iso(v[4])) for k, v in by_session.items()},
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def read(db: Database) -> Totals:
    """What the dashboard's readers show."""
    daily = await daily_usage(db, since=date(2025, 1, 1), until=date(2026, 1, 1))
    filters = reports.Filters(since=date(2025, 1, 1), until=date(2026, 1, 1))
    agents = await reports.by_agent(db, filters)
    listed, _ = await reports.list_sessions(
        db, login_name=None, since=None, until=None, offset=0, limit=1000
    )
    sums = ("requests", "total_tokens", "cost_nanodollars")
    return {
        "daily": {
            (r["day"], r["login_name"], r["model"]): tuple(r[s] for s in sums) for r in daily
        },
        "agents": {r["agent"]: tuple(r[s] for s in sums) for r in agents},
        "sessions": {
            (r["login_name"], r["session_id"]): (
                *(r[s] for s in sums),
                r["first_at"],
                r["last_at"],
            )
            for r in listed
        },
    }


ROLLUPS = ("usage_daily", "usage_agent_daily", "sessions")
#: the dashboard's rollups keyed by day besides usage_daily and usage_agent_daily
DAY_ROLLUPS = ("tool_use_daily", "usage_facets_daily")


async def shards(db: Database, tables: tuple[str, ...] = ROLLUPS) -> dict[str, list[int]]:
    out = {}
    async with db.connect() as conn:
        for table in tables:
            query = f"SELECT DISTINCT shard FROM {table} ORDER BY shard"
            out[table] = list((await conn.execute(text(query))).scalars())
    return out


async def day_rollup_sums(db: Database) -> dict[str, dict[tuple[Any, ...], int]]:
    """Per key of tool_use_daily (calls) and usage_facets_daily (requests), over all shards."""
    queries = {
        "tool_use_daily": "SELECT day, login_name, session_id, kind, connector, tool, model,"
        " SUM(calls) FROM tool_use_daily GROUP BY day, login_name, session_id, kind,"
        " connector, tool, model",
        "usage_facets_daily": "SELECT day, login_name, model, provider, agent, status, header,"
        " value, SUM(requests) FROM usage_facets_daily GROUP BY day, login_name, model,"
        " provider, agent, status, header, value",
    }
    out: dict[str, dict[tuple[Any, ...], int]] = {}
    async with db.connect() as conn:
        for table, query in queries.items():
            rows = (await conn.execute(text(query))).all()
            out[table] = {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in rows}
    return out


async def seed_partial_rows(db: Database) -> None:
    """A partial row in shard 7 of one key of each rollup."""
    requests, tokens, cost = SEEDED
    sums = {"requests": requests, "total_tokens": tokens, "cost_nanodollars": cost, "shard": 7}
    user = "user0@example.com"
    async with db.begin() as conn:
        await conn.execute(
            insert(usage_daily).values(
                day=T0.date(), login_name=user, model="gpt-4o", provider="openai", **sums
            )
        )
        await conn.execute(
            insert(usage_agent_daily).values(day=T0.date(), login_name=user, agent=AGENT, **sums)
        )
        await conn.execute(
            insert(sessions).values(
                login_name=user,
                session_id="sess_0",
                agent=AGENT,
                first_at=T0 + timedelta(seconds=30),
                last_at=T0 + timedelta(seconds=40),
                **sums,
            )
        )


async def test_folding_keeps_every_total_while_two_instances_keep_writing(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    other = await open_database(db_url, migrate=False)  # a second instance, same database
    writers = [
        BatchWriter(db, new_spool(tmp_path / "a"), max_batch=40),
        BatchWriter(other, new_spool(tmp_path / "b"), max_batch=40),
    ]
    written: list[RequestRecord] = []
    try:
        for writer in writers:
            writer.start()

        async def write(start: int, count: int) -> None:
            batch = records(start, count)
            written.extend(batch)
            for n, record in enumerate(batch):
                writers[n % 2].submit(record)
            deadline = asyncio.get_running_loop().time() + 60
            while any(w.queue_depth for w in writers):  # stored, both instances
                assert asyncio.get_running_loop().time() < deadline, "records not stored"
                await asyncio.sleep(0.01)

        # Phase 1: on PostgreSQL another transaction holds shard 0, so both instances'
        # writers add to partial rows (shards 1, 2, ...) of every key
        async with db.connect() as holder:
            if db.dialect == "postgresql":
                await holder.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0)"))
            await write(0, 240)
            await holder.rollback()
        await seed_partial_rows(db)
        before = await shards(db)
        assert all(7 in found for found in before.values())
        if db.dialect == "postgresql":
            assert all(0 not in found and 1 in found for found in before.values()), before
            spread = await shards(db, DAY_ROLLUPS)
            assert all(0 not in found and 1 in found for found in spread.values()), spread
        assert await read(db) == expected(written)

        # Phase 2: both instances keep writing the same keys while both fold, over and over
        done = asyncio.Event()
        folded: list[int] = []

        async def keep_folding(on: Database) -> None:
            while not done.is_set():
                folded.append(await fold(on, days_before=FAR.date(), sessions_before=FAR))
                await asyncio.sleep(0)

        folders = [asyncio.create_task(keep_folding(on)) for on in (db, other)]
        for round_ in range(6):
            await write(240 + 60 * round_, 60)
        done.set()
        await asyncio.gather(*folders)
        assert sum(folded) > 0
        assert await read(db) == expected(written)

        # once the writers are quiet, three rounds (each folds up to 15 of the 31 shards
        # besides shard 0, where the last one ended) leave one row per key: shard 0
        for writer in writers:
            await writer.drain_and_stop()
        unfolded = await day_rollup_sums(db)
        assert sum(unfolded["tool_use_daily"].values()) == sum(r.tool_calls for r in written)
        assert sum(unfolded["usage_facets_daily"].values()) == len(written)
        for _ in range(3):
            await fold(other, days_before=FAR.date(), sessions_before=FAR)
        assert await shards(db, ROLLUPS + DAY_ROLLUPS) == {
            "usage_daily": [0],
            "usage_agent_daily": [0],
            "sessions": [0],
            "tool_use_daily": [0],
            "usage_facets_daily": [0],
        }
        assert await read(other) == expected(written)
        assert await day_rollup_sums(other) == unfolded
    finally:
        for writer in writers:
            await writer.drain_and_stop()
        await other.close()


async def test_rounds_fold_past_days_and_quiet_sessions_only(db: Database) -> None:
    await seed_partial_rows(db)  # day T0, a session last written at T0 + 40 s
    worker = RollupFold(db)

    async def three_rounds(now: datetime) -> int:
        """Keys folded by three rounds: together they reach every shard."""
        return sum([await worker.fold_once(now) for _ in range(3)])

    # the same day, 5 minutes after the session's last request: nothing is due
    assert await three_rounds(T0 + timedelta(minutes=5)) == 0
    assert await shards(db) == {
        "usage_daily": [7],
        "usage_agent_daily": [7],
        "sessions": [7],
    }
    # 11 minutes later the session is quiet; its day is still today
    assert await three_rounds(T0 + timedelta(minutes=11)) == 1
    assert await shards(db) == {
        "usage_daily": [7],
        "usage_agent_daily": [7],
        "sessions": [0],
    }
    # the next day both daily rollups fold
    assert await three_rounds(T0 + timedelta(days=1)) == 2
    assert await shards(db) == {
        "usage_daily": [0],
        "usage_agent_daily": [0],
        "sessions": [0],
    }
    assert worker.folded_total == 3
    listed, _ = await reports.list_sessions(
        db, login_name=None, since=None, until=None, offset=0, limit=10
    )
    assert [(r["requests"], r["first_at"], r["last_at"]) for r in listed] == [
        (3, "2025-03-01T12:00:30.000Z", "2025-03-01T12:00:40.000Z")
    ]
