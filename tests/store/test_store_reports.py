"""The dashboard's rollups (agents, sessions) as the batch writer keeps them, and the report
queries over them, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from store_records import T0, make_record, new_spool

from irisgate.store import queries, reports
from irisgate.store.database import Database
from irisgate.store.reports import Filters
from irisgate.store.tables import sessions, usage_agent_daily, usage_daily
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.shards import ShardPicker
from irisgate.telemetry.spool import Spool
from irisgate.telemetry.writer import BatchWriter
from irisgate.usage.tokens import Usage

DAY = T0.date()


async def _write(db: Database, records: list[RequestRecord]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        await _store_in(db, records, new_spool(Path(folder)))


async def _store_in(db: Database, records: list[RequestRecord], spool: Spool) -> None:
    writer = BatchWriter(db, spool)
    writer.start()
    for record in records:
        writer.submit(record)
    assert await writer.drain_and_stop() == 0


async def test_sessions_and_agents_sum_across_batches(db: Database) -> None:
    first = [
        make_record(0, session_id="s1", user_agent="claude-cli/2.0.1 (external, cli)"),
        make_record(5, session_id="s1", user_agent="claude-cli/2.0.1 (external, cli)"),
        make_record(7, session_id="s2", login_name="bob@example.com", user_agent="curl/8.5.0"),
    ]
    await _write(db, first)
    # a later batch extends s1 backwards and forwards in time
    later = [
        make_record(-30, session_id="s1", user_agent="claude-cli/2.0.2"),
        make_record(60, session_id="s1", user_agent="claude-cli/2.0.2", status=500),
    ]
    await _write(db, later)
    async with db.connect() as conn:
        rows = {
            (r["login_name"], r["session_id"]): r
            for r in (await conn.execute(select(sessions))).mappings().all()
        }
    s1 = rows[("alice@example.com", "s1")]
    assert s1["requests"] == 4 and s1["error_requests"] == 1
    assert s1["first_at"] == T0 - timedelta(seconds=30)
    assert s1["last_at"] == T0 + timedelta(seconds=60)
    assert s1["agent"] == "claude-cli"
    assert s1["input_tokens"] == 100 + 105 + 70 + 160
    assert rows[("bob@example.com", "s2")]["agent"] == "curl"

    window = Filters(DAY - timedelta(days=1), DAY + timedelta(days=1))
    agents = {r["agent"]: r for r in await reports.by_agent(db, window)}
    assert agents["claude-cli"]["requests"] == 4
    assert agents["curl"]["requests"] == 1
    listed, total = await reports.list_sessions(
        db, login_name="alice@example.com", since=None, until=None, offset=0, limit=10
    )
    assert total == 1 and listed[0]["session_id"] == "s1"


async def test_a_writer_never_waits_for_rollup_rows_another_instance_holds(
    db: Database, spool: Spool
) -> None:
    """Another instance is in the middle of its batch: it has added to the same day, user,
    model, agent and session as our record and not committed yet. Our writer stores its
    batch meanwhile (into another shard of those rollup rows), and once both are committed
    every report sums the two."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing to wait for")
    other = {"requests": 2, "input_tokens": 40, "total_tokens": 50, "cost_nanodollars": 9}
    mine = make_record(0, session_id="s1", user_agent="curl/8.5.0")
    async with db.begin() as conn:  # the other instance's transaction
        shard = await ShardPicker().take(conn)
        day = {"day": DAY, "login_name": "alice@example.com", "shard": shard}
        await conn.execute(
            usage_daily.insert().values(**day, model="gpt-4o", provider="openai", **other)
        )
        await conn.execute(usage_agent_daily.insert().values(**day, agent="curl", **other))
        await conn.execute(
            sessions.insert().values(
                login_name="alice@example.com",
                session_id="s1",
                shard=shard,
                agent="curl",
                first_at=T0 - timedelta(minutes=5),
                last_at=T0 + timedelta(minutes=5),
                **other,
            )
        )
        writer = BatchWriter(db, spool)
        writer.start()
        writer.submit(mine)
        for _ in range(3000):  # a writer waiting on those rows would never get there
            if writer.written_total:
                break
            await asyncio.sleep(0.01)
        assert writer.written_total == 1
    assert await writer.drain_and_stop() == 0

    window = Filters(DAY, DAY + timedelta(days=1))
    daily = await queries.daily_usage(db, since=window.since, until=window.until)
    assert [(r["requests"], r["input_tokens"], r["cost_nanodollars"]) for r in daily] == [
        (3, 40 + 100, 9 + 1_000)
    ]
    total = await reports.totals(db, window)
    assert (total["requests"], total["active_users"]) == (3, 1)
    assert [(r["agent"], r["requests"]) for r in await reports.by_agent(db, window)] == [
        ("curl", 3)
    ]
    listed, count = await reports.list_sessions(
        db, login_name=None, since=T0 + timedelta(minutes=1), until=None, offset=0, limit=10
    )
    assert count == 1
    session = listed[0]
    assert (session["session_id"], session["requests"], session["total_tokens"]) == (
        "s1",
        3,
        50 + 110,
    )
    assert session["first_at"] == "2025-03-01T11:55:00.000Z"
    assert session["last_at"] == "2025-03-01T12:05:00.000Z"
    assert await reports.count_recent_sessions(db, "alice@example.com", T0) == 1
    # before `until` only when all its rows are
    _, early = await reports.list_sessions(
        db, login_name=None, since=None, until=T0 + timedelta(minutes=1), offset=0, limit=10
    )
    assert early == 0
    async with db.connect() as conn:
        shards = (await conn.execute(select(sessions.c.shard))).scalars().all()
    assert len(set(shards)) == 2


async def test_totals_users_and_active_users(db: Database) -> None:
    records = [
        make_record(i, login_name=f"u{i % 3}@example.com", usage=Usage(input_tokens=10))
        for i in range(6)
    ]
    records.append(make_record(99, login_name="u9@example.com", started_at=T0 + timedelta(days=3)))
    await _write(db, records)
    window = Filters(DAY, DAY + timedelta(days=4))
    totals = await reports.totals(db, window)
    assert totals["active_users"] == 4 and totals["requests"] == 7
    # plain ints on every backend (PostgreSQL's SUM is NUMERIC), so the API can send JSON
    assert all(type(totals[name]) is int for name in reports.TOKEN_SUMS)
    per_user = await reports.by_column(db, window, "login_name")
    assert {r["login_name"]: r["requests"] for r in per_user}["u0@example.com"] == 2
    summed, days, models = await reports.summary(db, window)
    assert [d["day"] for d in days] == [(DAY + timedelta(days=i)).isoformat() for i in range(4)]
    assert [d["requests"] for d in days] == [6, 0, 0, 1]
    assert summed == totals
    assert [(m["model"], m["requests"]) for m in models] == [("gpt-4o", 7)]
    active, _periods = await reports.active_users(db, window)
    assert [(a["daily"], a["weekly"]) for a in active] == [(3, 3), (0, 3), (0, 3), (1, 4)]
    assert isinstance(active[0]["day"], str) and date.fromisoformat(active[0]["day"]) == DAY
