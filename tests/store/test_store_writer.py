"""The batch writer: records, captures and daily rollups stored; nothing lost across a
database outage or at shutdown; a refused record skipped alone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine, make_url
from store_postgres import ADMIN_URL
from store_records import make_record, new_spool

from irisgate.store.database import Database, open_database
from irisgate.store.queries import daily_usage, response_origin
from irisgate.store.tables import (
    ROLLUP_SUM_COLUMNS,
    USAGE_FIELDS,
    captures,
    requests,
    responses,
)
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.spool import Spool
from irisgate.telemetry.writer import BatchWriter, WriterStoppedError
from irisgate.usage.tokens import Usage

FAST_RETRY: dict[str, float] = {"retry_initial_s": 0.02, "retry_max_s": 0.1}


async def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def varied_records(count: int) -> list[RequestRecord]:
    logins = ["alice@example.com", "bob@example.com", "tag:ci,tag:prod"]
    models = [("gpt-4o", "openai"), ("claude-sonnet-4-5", "anthropic"), ("gpt-4o", "azure")]
    records = []
    for n in range(count):
        model, provider = models[n % 3]
        records.append(
            make_record(
                n,
                started_at=datetime(2025, 3, 1, tzinfo=UTC) + timedelta(minutes=37 * n),
                login_name=logins[(n // 3) % 3],
                model=model,
                provider=provider,
                tags=("tag:ci", "tag:prod") if n % 9 == 0 else (),
                status=500 if n % 11 == 0 else 200,
                error="upstream timed out" if n % 13 == 0 else "",
                cost_nanodollars=None if n % 7 == 0 else 1_000 * n,
                usage=Usage(
                    input_tokens=100 + n,
                    output_tokens=n % 50,
                    cache_read_tokens=n % 5,
                    cache_write_5m_tokens=n % 3,
                    cache_write_1h_tokens=n % 2,
                    reasoning_tokens=n % 4,
                    image_input_tokens=n % 6,
                    image_output_tokens=n % 8,
                    web_search_count=n % 2,
                ),
            )
        )
    return records


Rollups = dict[tuple[str, str, str, str], dict[str, int]]


def expected_rollups(records: list[RequestRecord]) -> Rollups:
    sums: Rollups = defaultdict(lambda: dict.fromkeys(ROLLUP_SUM_COLUMNS, 0))
    for r in records:
        day = r.started_at.astimezone(UTC).date().isoformat()
        row = sums[(day, r.login_name, r.model, r.provider)]
        row["requests"] += 1
        for name in USAGE_FIELDS:
            row[name] += getattr(r.usage, name)
        row["total_tokens"] += r.usage.total_tokens
        row["cost_nanodollars"] += r.cost_nanodollars or 0
        row["unpriced_requests"] += r.cost_nanodollars is None
        row["error_requests"] += r.status >= 400 or bool(r.error)
        row["priced_tokens"] += r.usage.total_tokens if r.cost_nanodollars is not None else 0
    return dict(sums)


async def stored_rollups(db: Database) -> Rollups:
    rows = await daily_usage(db, since=date(2000, 1, 1), until=date(2100, 1, 1))
    return {
        (row["day"], row["login_name"], row["model"], row["provider"]): {
            name: row[name] for name in ROLLUP_SUM_COLUMNS
        }
        for row in rows
    }


async def count(db: Database, table: Any) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def stored_ids(db: Database) -> list[str]:
    async with db.connect() as conn:
        rows = await conn.execute(select(requests.c.request_id).order_by(requests.c.id))
        return [row[0] for row in rows]


async def test_stores_records_captures_and_daily_rollups(db: Database, spool: Spool) -> None:
    records = varied_records(1234)
    writer = BatchWriter(db, spool, max_batch=97)
    writer.start()
    for record in records:
        writer.submit(record)
    assert await writer.drain_and_stop() == 0

    assert writer.written_total == 1234
    assert writer.queue_depth == 0
    assert await count(db, requests) == 1234
    assert await count(db, captures) == 1234
    assert await stored_rollups(db) == expected_rollups(records)

    wanted = records[9].request_id
    async with db.connect() as conn:
        query = select(requests).where(requests.c.request_id == wanted)
        row = (await conn.execute(query)).mappings().one()
        query = select(captures).where(captures.c.request_id == wanted)
        capture = (await conn.execute(query)).mappings().one()
    assert row["tags"] == "tag:ci,tag:prod"
    assert row["total_tokens"] == records[9].usage.total_tokens
    assert row["started_at"] == records[9].started_at
    assert row["ttfb_ms"] == 30.25
    assert orjson.loads(capture["response_headers"]) == records[9].response_headers
    assert bytes(capture["request_body"]) == records[9].request_body


async def test_records_that_are_not_usage_stay_out_of_the_rollup(
    db: Database, tmp_path: Path
) -> None:
    """Connector calls are stored with their sizes but never counted as LLM usage, alone in
    a batch or mixed with LLM requests."""
    tool_call = make_record(
        1,
        api_format="mcp",
        model="search",
        provider="github",
        counts_as_usage=False,
        request_bytes=321,
        response_bytes=4567,
    )
    llm = make_record(2)
    for batch in ([tool_call], [replace(tool_call, request_id="req_3"), llm]):
        writer = BatchWriter(db, new_spool(tmp_path / "spool"))
        for record in batch:
            writer.submit(record)
        assert await writer.drain_and_stop() == 0
    assert await count(db, requests) == 3
    assert await stored_rollups(db) == expected_rollups([llm])
    async with db.connect() as conn:
        query = select(requests).where(requests.c.request_id == tool_call.request_id)
        row = (await conn.execute(query)).mappings().one()
    assert (row["request_bytes"], row["response_bytes"]) == (321, 4567)


async def test_rollup_day_is_the_utc_date(db: Database, spool: Spool) -> None:
    eastern = timezone(timedelta(hours=-5))
    late_evening = make_record(1, started_at=datetime(2025, 3, 1, 23, 30, tzinfo=eastern))
    writer = BatchWriter(db, spool)
    writer.submit(late_evening)
    await writer.drain_and_stop()
    rows = await daily_usage(db, since=date(2025, 3, 1), until=date(2025, 3, 3))
    assert [row["day"] for row in rows] == ["2025-03-02"]


async def test_drain_and_stop_writes_everything_queued(db: Database, spool: Spool) -> None:
    records = varied_records(2500)
    writer = BatchWriter(db, spool, max_batch=500)
    for record in records[:2000]:
        writer.submit(record)  # queued before the task even runs
    writer.start()
    drain = asyncio.create_task(writer.drain_and_stop(timeout=60))
    await asyncio.sleep(0)
    for record in records[2000:]:
        writer.submit(record)  # still accepted while draining
    assert await drain == 0
    assert writer.written_total == 2500
    assert await count(db, requests) == 2500
    assert await stored_rollups(db) == expected_rollups(records)
    with pytest.raises(WriterStoppedError):
        writer.submit(make_record(99_999))


async def test_linger_gathers_a_trickle_of_records_into_few_transactions(
    db: Database, spool: Spool
) -> None:
    # a linger longer than any test: only a full batch, or stopping, ends it
    writer = BatchWriter(db, spool, linger_s=3600, max_batch=20)
    writer.start()
    for number in range(20):  # one request's record every 10 ms
        writer.submit(make_record(number))
        await asyncio.sleep(0.01)
    await eventually(lambda: writer.written_total == 20)
    assert writer.batches_total == 1
    assert await count(db, requests) == 20
    writer.submit(make_record(101))
    # stopping cuts the linger short: everything stored, rather than given up after 60 s
    assert await writer.drain_and_stop(timeout=60) == 0
    assert await count(db, requests) == 21


async def test_a_full_queue_spills_to_the_spool_and_loses_nothing(
    db: Database, spool: Spool
) -> None:
    writer = BatchWriter(db, spool, max_queue=3, max_batch=2)
    for n in range(8):
        writer.submit(make_record(n))  # never blocks: 5 of them live only in the spool now
    assert writer.queue_depth == 3
    assert writer.spooled == 8  # the segment they share is read back whole
    writer.start()
    await eventually(lambda: writer.spooled == 0)
    assert await writer.drain_and_stop() == 0
    assert await stored_ids(db) == [make_record(n).request_id for n in range(8)]
    assert list(spool.folder.iterdir()) == []


async def test_a_refused_record_is_skipped_alone(db: Database, spool: Spool) -> None:
    writer = BatchWriter(db, spool, **FAST_RETRY)
    writer.start()
    first = make_record(1)
    writer.submit(first)
    await eventually(lambda: writer.written_total == 1)

    duplicate_of_stored = make_record(1, login_name="mallory@example.com")
    batch = [
        make_record(2),
        duplicate_of_stored,
        make_record(3),
        make_record(3, model="duplicate-within-batch"),
        make_record(4),
    ]
    for record in batch:
        writer.submit(record)
    assert await writer.drain_and_stop() == 0

    assert writer.skipped_total == 2
    assert writer.written_total == 4
    assert await stored_ids(db) == [make_record(n).request_id for n in (1, 2, 3, 4)]
    stored = [first, batch[0], batch[2], batch[4]]
    assert await stored_rollups(db) == expected_rollups(stored)


async def test_malformed_record_is_skipped_alone(db: Database, spool: Spool) -> None:
    writer = BatchWriter(db, spool, **FAST_RETRY)
    huge = make_record(2, usage=Usage(input_tokens=2**70))  # beyond BIGINT
    broken = make_record(3)
    broken.usage = None  # type: ignore[assignment]
    for record in (make_record(1), huge, broken, make_record(4)):
        writer.submit(record)
    writer.start()
    assert await writer.drain_and_stop(timeout=20) == 0
    assert writer.skipped_total == 2
    assert await stored_ids(db) == [make_record(n).request_id for n in (1, 4)]


async def test_nul_characters_do_not_lose_the_record(db: Database, spool: Spool) -> None:
    writer = BatchWriter(db, spool, **FAST_RETRY)
    odd = make_record(1, user_agent="curl\x00/8", login_name="eve\x00@example.com")
    writer.submit(odd)
    writer.submit(make_record(2))
    assert await writer.drain_and_stop(timeout=20) == 0
    assert writer.written_total == 2
    assert writer.skipped_total == 0


def unusual_records() -> list[RequestRecord]:
    """Records with every value the column types convert: naive and non-UTC timestamps, a
    timestamp without microseconds, ints for floats, 1/0 for booleans, None floats, NUL
    and non-UTF-8 bytes in bodies, raw answers kept (`save_raws`) or not."""
    zones = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30)), None]
    return [
        make_record(
            n,
            started_at=datetime(2025, 3, 1, 23, 30, 15, 0 if n % 5 == 0 else 1 + n, zones[n % 4]),
            stream=[True, False, 1, 0][n % 4],
            cancelled=n % 3 == 0,
            usage_estimated=n % 2 == 1,
            duration_ms=[120.5, 7, 0, 1e300][n % 4],
            ttfb_ms=None if n % 2 else 3,
            upstream_ms=None if n % 3 else 2.5,
            tags=("tag:a", "tag:b") if n % 2 else (),
            status=500 if n % 6 == 0 else 200,
            cost_nanodollars=None if n % 7 == 0 else n,
            request_body=b"\x00\xff" * n,
            response_headers={"x-n": str(n)},
            response_raw=None if n % 2 else b"\x1f\x8b\x00" * n,
            response_raw_encoding="" if n % 4 else "gzip",
            key_id=f"key_{n:016x}" if n % 3 else "",
            key_name="ci runner" if n % 3 else "",
            attempts=[{"provider": "p", "key": n, "status": 503, "error": "é", "ms": 1.5}]
            if n % 3 == 1
            else [],
            upstream_format="anthropic_messages" if n % 5 == 2 else "",
            upstream_request_body=b"\x00up" * n if n % 5 == 2 else b"",
            upstream_response_body=b"{}" if n % 5 == 2 else b"",
        )
        for n in range(12)
    ]


def core_request_row(r: RequestRecord) -> dict[str, Any]:
    """What a `requests` row holds for `r`, as SQLAlchemy Core is given it."""
    row: dict[str, Any] = {
        name: getattr(r, name)
        for name in (
            "request_id", "started_at", "login_name", "display_name", "node_id",
            "node_name", "method", "path", "api_format", "api_type", "model", "provider",
            "stream", "status", "error", "cancelled", "duration_ms", "ttfb_ms",
            "upstream_ms", "cost_nanodollars", "cost_basis", "session_id", "user_agent",
            "config_version", "tool_calls", "request_bytes", "response_bytes",
            "usage_estimated", "key_id", "key_name", "upstream_format", "kind", "unit",
            "units",
        )
    }  # fmt: skip
    row |= {name: getattr(r.usage, name) for name in USAGE_FIELDS}
    row["tags"] = ",".join(r.tags)
    row["total_tokens"] = r.usage.input_tokens + r.usage.output_tokens
    row["attempts"] = orjson.dumps(r.attempts).decode() if r.attempts else None
    return row


def core_capture_row(r: RequestRecord) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "request_headers": orjson.dumps(r.request_headers).decode(),
        "response_headers": orjson.dumps(r.response_headers).decode(),
        "request_body": r.request_body,
        "response_body": r.response_body,
        "response_raw": r.response_raw,
        "response_raw_encoding": None if r.response_raw is None else r.response_raw_encoding,
        "upstream_request_body": r.upstream_request_body if r.upstream_format else None,
        "upstream_response_body": r.upstream_response_body if r.upstream_format else None,
    }


async def test_sends_the_statements_and_values_sqlalchemy_core_would(
    db: Database, spool: Spool
) -> None:
    """The writer runs pre-compiled SQL on rows it converts itself: what reaches the driver
    must be exactly what SQLAlchemy Core sends for the same rows (the column types'
    conversions included)."""
    records = unusual_records()
    sent: list[tuple[str, list[tuple[Any, ...]]]] = []

    def unwrap(value: Any) -> tuple[type, Any]:  # types too: 1 == True == 1.0
        value = bytes(value) if isinstance(value, memoryview) else value
        return type(value), value

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        if statement.startswith(("INSERT INTO requests ", "INSERT INTO captures ")):
            # Core adds RETURNING on PostgreSQL; the writer has no use for the ids. On SQLite
            # Core wraps bytes in memoryview (sqlite3.Binary); the stored BLOB is the same.
            statement = statement.removesuffix(" RETURNING requests.id")
            rows = parameters if many else [parameters]
            sent.append((statement, [tuple(map(unwrap, row)) for row in rows]))

    # on every engine: on SQLite the writer runs its transactions on engines of its own
    event.listen(Engine, "before_cursor_execute", capture)
    try:
        async with db.connect() as conn:
            await conn.begin()
            await conn.execute(requests.insert(), [core_request_row(r) for r in records])
            await conn.execute(captures.insert(), [core_capture_row(r) for r in records])
            await conn.rollback()
        by_core = list(sent)
        sent.clear()
        writer = BatchWriter(db, spool)
        for record in records:
            writer.submit(record)
        assert await writer.drain_and_stop() == 0
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    assert len(by_core) == 2
    assert sent == by_core
    assert writer.written_total == len(records)
    async with db.connect() as conn:
        stored = (await conn.execute(select(requests).order_by(requests.c.id))).mappings().all()
    for row, record in zip(stored, records, strict=True):
        started = record.started_at
        assert row["started_at"] == (started if started.tzinfo else started.replace(tzinfo=UTC))
        assert row["stream"] is bool(record.stream)
        assert row["duration_ms"] == record.duration_ms
    assert await stored_rollups(db) == expected_rollups(records)


async def test_values_the_column_types_refuse_skip_only_their_record(
    db: Database, spool: Spool
) -> None:
    writer = BatchWriter(db, spool, **FAST_RETRY)
    refused = [
        make_record(2, stream=2),
        make_record(3, cancelled="yes"),
        make_record(4, duration_ms="fast"),
        make_record(5, ttfb_ms=10**400),  # beyond a float
    ]
    for record in (make_record(1), *refused, make_record(6)):
        writer.submit(record)
    assert await writer.drain_and_stop(timeout=20) == 0
    assert writer.skipped_total == 4
    assert writer.written_total == 2
    assert await stored_ids(db) == [make_record(n).request_id for n in (1, 6)]
    assert await stored_rollups(db) == expected_rollups([make_record(1), make_record(6)])


class Outage:
    """Makes the database unwritable, then writable again.

    Both backends: `requests` is renamed away (every write fails at the statement). On
    PostgreSQL also, for a while, the database refuses connections and the writer's open
    connections are killed (every write fails at connect)."""

    def __init__(self, db: Database, db_url: str) -> None:
        self.db = db
        self.pg_url = db_url if db.dialect == "postgresql" else None

    async def _sql(self, statement: str, *, url: str | None = None) -> None:
        if self.pg_url is None:
            async with self.db.begin() as conn:
                await conn.execute(text(statement))
            return
        conn = await asyncpg.connect(url or self.pg_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def start(self) -> None:
        await self._sql("ALTER TABLE requests RENAME TO requests_offline")

    async def refuse_connections(self) -> None:
        assert self.pg_url is not None
        name = make_url(self.pg_url).database
        await self._sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', url=ADMIN_URL)
        await self._sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
            url=ADMIN_URL,
        )

    async def accept_connections(self) -> None:
        assert self.pg_url is not None
        name = make_url(self.pg_url).database
        await self._sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true', url=ADMIN_URL)

    async def end(self) -> None:
        await self._sql("ALTER TABLE requests_offline RENAME TO requests")


async def test_an_outage_delays_records_but_loses_none(
    db: Database, db_url: str, spool: Spool
) -> None:
    records = varied_records(60)
    writer = BatchWriter(db, spool, max_batch=25, **FAST_RETRY)
    writer.start()
    for record in records[:10]:
        writer.submit(record)
    await eventually(lambda: writer.written_total == 10)

    outage = Outage(db, db_url)
    await outage.start()
    for record in records[10:]:
        writer.submit(record)
    await eventually(lambda: writer.failed_batches_total >= 3)
    if db.dialect == "postgresql":
        await outage.refuse_connections()
        failed = writer.failed_batches_total
        await eventually(lambda: writer.failed_batches_total >= failed + 3)
        await outage.accept_connections()
    assert writer.written_total == 10
    assert writer.queue_depth == 0  # nothing held in memory during the outage
    assert writer.spooled >= 50
    await outage.end()

    await eventually(lambda: writer.spooled == 0)
    assert await writer.drain_and_stop() == 0
    assert writer.skipped_total == 0
    assert await stored_ids(db) == [r.request_id for r in records]
    assert await count(db, captures) == 60
    assert await stored_rollups(db) == expected_rollups(records)


async def test_stopping_during_an_outage_leaves_the_records_in_the_spool(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    writer = BatchWriter(db, new_spool(tmp_path / "spool"), max_queue=5, **FAST_RETRY)
    writer.start()
    outage = Outage(db, db_url)
    await outage.start()
    try:
        for n in range(5):
            writer.submit(make_record(n))
        await eventually(lambda: writer.failed_batches_total >= 1)
        for n in range(5, 10):
            writer.submit(make_record(n))
        assert await writer.drain_and_stop(timeout=30) == 10
    finally:
        await outage.end()
    assert writer.written_total == 0
    with pytest.raises(WriterStoppedError):
        writer.submit(make_record(11))
    # the next process with this data folder stores them, each once
    later = BatchWriter(db, new_spool(tmp_path / "spool"))
    assert later.spooled == 10
    later.start()
    await eventually(lambda: later.spooled == 0)
    assert await later.drain_and_stop() == 0
    assert await stored_ids(db) == [make_record(n).request_id for n in range(10)]


async def test_created_responses_are_stored_with_their_creator(db: Database, spool: Spool) -> None:
    """A record that created an OpenAI response stores its id → provider, model, login; an id
    recorded twice keeps its first creator and costs no record."""
    first = make_record(1, response_id="resp_abc", provider="openai", model="gpt-4o-mini")
    again = make_record(2, response_id="resp_abc", provider="other", login_name="eve@x")
    plain = make_record(3)
    writer = BatchWriter(db, spool)
    for record in (first, again, plain):
        writer.submit(record)
    assert await writer.drain_and_stop() == 0
    assert writer.written_total == 3 and writer.skipped_total == 0
    assert await response_origin(db, "resp_abc") == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "login_name": first.login_name,
        "request_id": first.request_id,
    }
    assert await response_origin(db, "resp_missing") is None
    async with db.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(responses))).scalar() == 1


# -- SQLite: the transaction in a thread of its own, at idle priority while keeping up ------

SCHED_IDLE_POLICY = 5  # /proc/<pid>/task/<tid>/stat field 41


def thread_policies() -> dict[int, int]:
    """The scheduling policy of each thread of this process."""
    policies = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        policies[int(tid)] = int(fields[38])
    return policies


linux_only = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


@linux_only
async def test_sqlite_batches_are_written_by_an_idle_priority_thread(
    tmp_path: Path, spool: Spool
) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/irisgate.db")
    try:
        before = thread_policies()
        assert SCHED_IDLE_POLICY not in before.values()
        writer = BatchWriter(db, spool)
        writer.start()
        writer.submit(make_record(1))
        await eventually(lambda: writer.written_total == 1)
        new = {tid: p for tid, p in thread_policies().items() if tid not in before}
        assert list(new.values()) == [SCHED_IDLE_POLICY]  # the background write thread
        assert await writer.drain_and_stop() == 0
        assert await stored_ids(db) == [make_record(1).request_id]
    finally:
        await db.close()


@linux_only
async def test_a_saturated_event_loop_steps_aside_for_the_idle_priority_writer(
    tmp_path: Path,
    spool: Spool,
) -> None:
    """On one CPU, an idle-priority thread runs only when nothing else wants the CPU. An event
    loop kept busy after a batch went out must step aside for that batch (it holds SQLite's
    write lock) rather than keep it waiting for as long as the load lasts. How much of the
    CPU the batch then gets depends on what else the machine runs, so this counts the loop's
    steps aside instead of timing the batch."""
    db = await open_database(f"sqlite:///{tmp_path}/irisgate.db")
    cpus = os.sched_getaffinity(0)
    # this thread, and the write threads it starts from here on, on a single CPU
    os.sched_setaffinity(0, {min(cpus)})
    # and ahead of every other process on it (needs root or CAP_SYS_NICE), so that on a
    # shared machine too the loop keeps the CPU, as it would have it to itself: at nice -20,
    # with a load average of 15 it still got less than the 90% that counts as saturated
    policy = os.sched_getscheduler(0)
    with contextlib.suppress(PermissionError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    records = varied_records(400)  # tens of milliseconds of SQLite's work
    writer = BatchWriter(db, spool, max_batch=1000)

    async def load() -> None:
        """A saturated event loop: 20 ms of CPU at a time, until the writer has stepped aside
        (or, which the assertions refuse, the batch is written without that).
        Hashing, which runs without the GIL, as an event loop mostly does (in I/O and C
        code): otherwise the writer thread, waiting for the GIL, would get the CPU handed to
        it every 5 ms."""
        blob = bytes(1 << 20)
        end = time.monotonic() + 30  # only a loop that never steps aside runs this long
        while SCHED_IDLE_POLICY not in thread_policies().values():
            assert time.monotonic() < end, "the batch never went out at idle priority"
            # the CPU is left free meanwhile: the write thread starts on this CPU, which a
            # spinning loop with this thread's real-time priority would keep from it
            await asyncio.sleep(0.001)
        while not writer.stepped_aside_total and not writer.written_total:
            if time.monotonic() > end:
                return
            stop = time.monotonic() + 0.02
            while time.monotonic() < stop:
                hashlib.sha256(blob).digest()
            await asyncio.sleep(0)

    try:
        for record in records:
            writer.submit(record)
        writer.start()
        await load()
        # while the batch was out (the only time it does), the loop stepped aside for it
        assert writer.stepped_aside_total > 0
        await eventually(lambda: writer.written_total == 400)
        assert await writer.drain_and_stop() == 0
    finally:
        os.sched_setscheduler(0, policy, os.sched_param(0))
        os.sched_setaffinity(0, cpus)
        await db.close()
    assert await count_file_rows(tmp_path / "irisgate.db") == 400


async def count_file_rows(path: Path) -> int:
    db = await open_database(f"sqlite:///{path}")
    try:
        return await count(db, requests)
    finally:
        await db.close()
