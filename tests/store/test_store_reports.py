"""The dashboard's rollups (agents, sessions) as the batch writer keeps them, and the report
queries over them, on SQLite and PostgreSQL."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from store_records import T0, make_record, new_spool

from irisgate.store import reports
from irisgate.store.database import Database
from irisgate.store.reports import Filters
from irisgate.store.tables import sessions
from irisgate.telemetry.record import RequestRecord
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
    active = await reports.active_users(db, window)
    assert [(a["daily"], a["weekly"]) for a in active] == [(3, 3), (0, 3), (0, 3), (1, 4)]
    assert isinstance(active[0]["day"], str) and date.fromisoformat(active[0]["day"]) == DAY
