"""The read side: request lists (filters, order, cursor), one request with its capture,
daily usage."""

from __future__ import annotations

import base64
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete
from store_records import T0, make_record, new_spool

from irisgate.store.database import Database
from irisgate.store.queries import daily_usage, get_request, iso_utc, list_requests
from irisgate.store.tables import captures
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.spool import Spool
from irisgate.telemetry.writer import BatchWriter


async def store(db: Database, records: list[RequestRecord]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        await _store_in(db, records, new_spool(Path(folder)))


async def _store_in(db: Database, records: list[RequestRecord], spool: Spool) -> None:
    writer = BatchWriter(db, spool)
    for record in records:
        writer.submit(record)
    assert await writer.drain_and_stop() == 0


def ids(rows: list[dict[str, object]]) -> list[str]:
    return [str(row["request_id"]) for row in rows]


async def test_list_requests_newest_first_with_filters_and_cursor(db: Database) -> None:
    records = [
        make_record(
            n,
            login_name="alice@example.com" if n % 2 else "bob@example.com",
            model="gpt-4o" if n % 3 else "claude-sonnet-4-5",
            session_id=f"sess_{n % 4}",
            started_at=T0 + timedelta(hours=n),
        )
        for n in range(12)
    ]
    await store(db, records)
    newest_first = [r.request_id for r in reversed(records)]

    everything = await list_requests(db)
    assert ids(everything) == newest_first
    assert [row["id"] for row in everything] == sorted(
        (row["id"] for row in everything), reverse=True
    )

    page1 = await list_requests(db, limit=5)
    page2 = await list_requests(db, limit=5, before_id=page1[-1]["id"])
    page3 = await list_requests(db, limit=5, before_id=page2[-1]["id"])
    assert ids(page1 + page2 + page3) == newest_first
    assert len(page3) == 2

    alice = await list_requests(db, login_name="alice@example.com")
    assert ids(alice) == [r.request_id for r in reversed(records) if r.login_name.startswith("a")]
    claude_alice = await list_requests(
        db, login_name="alice@example.com", model="claude-sonnet-4-5"
    )
    assert ids(claude_alice) == [records[9].request_id, records[3].request_id]
    session = await list_requests(db, session_id="sess_1")
    assert ids(session) == [records[9].request_id, records[5].request_id, records[1].request_id]

    window = await list_requests(db, since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=6))
    assert ids(window) == [records[5].request_id, records[4].request_id, records[3].request_id]
    assert await list_requests(db, login_name="nobody") == []
    assert len(await list_requests(db, limit=0)) == 1


async def test_list_requests_rows_are_json_ready(db: Database) -> None:
    record = make_record(
        1,
        started_at=datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC),
        tags=("tag:ci", "tag:prod"),
        stream=True,
        cost_nanodollars=None,
        ttfb_ms=None,
    )
    await store(db, [record])
    [row] = await list_requests(db)
    assert row["started_at"] == "2025-03-01T12:00:00.250Z"
    assert row["tags"] == ["tag:ci", "tag:prod"]
    assert row["stream"] is True
    assert row["cancelled"] is False
    assert row["cost_nanodollars"] is None
    assert row["ttfb_ms"] is None
    assert row["input_tokens"] == record.usage.input_tokens
    assert row["total_tokens"] == record.usage.total_tokens
    assert "request_body" not in row


async def test_get_request_decodes_text_and_binary_bodies(db: Database) -> None:
    binary = bytes(range(256))
    text_record = make_record(
        1,
        request_body='{"messages":[{"content":"héllo ✓"}]}'.encode(),
        request_headers={"content-type": "application/json", "authorization": "[redacted]"},
    )
    binary_record = make_record(2, response_body=binary, request_body=b"")
    await store(db, [text_record, binary_record])

    got = await get_request(db, text_record.request_id)
    assert got is not None
    assert got["captured"] is True
    assert got["request_body"] == '{"messages":[{"content":"héllo ✓"}]}'
    assert got["request_body_encoding"] == "utf-8"
    assert got["response_body"] == text_record.response_body.decode()
    assert got["request_headers"] == text_record.request_headers
    assert got["response_headers"] == text_record.response_headers
    assert got["login_name"] == "alice@example.com"
    assert got["started_at"] == iso_utc(text_record.started_at)

    got = await get_request(db, binary_record.request_id)
    assert got is not None
    assert got["response_body_encoding"] == "base64"
    assert base64.b64decode(got["response_body"]) == binary
    assert got["request_body"] == ""
    assert got["request_body_encoding"] == "utf-8"


async def test_get_request_without_capture_or_without_request(db: Database) -> None:
    record = make_record(1)
    await store(db, [record])
    async with db.begin() as conn:  # what a body purge does
        await conn.execute(delete(captures))
    got = await get_request(db, record.request_id)
    assert got is not None
    assert got["captured"] is False
    assert got["request_headers"] == {}
    assert got["request_body"] is None
    assert got["response_body_encoding"] is None
    assert got["input_tokens"] == record.usage.input_tokens
    assert await get_request(db, "req_missing") is None


async def test_daily_usage_range_and_filters(db: Database) -> None:
    day = timedelta(days=1)
    records = [
        make_record(1, started_at=T0, cost_nanodollars=500),
        make_record(2, started_at=T0, cost_nanodollars=None),
        make_record(3, started_at=T0, model="o3", status=429),
        make_record(4, started_at=T0 + day, login_name="bob@example.com"),
        make_record(5, started_at=T0 + 2 * day),
    ]
    await store(db, records)
    first = T0.date()

    rows = await daily_usage(db, since=first, until=first + 2 * day)
    assert [(r["day"], r["login_name"], r["model"]) for r in rows] == [
        ("2025-03-01", "alice@example.com", "gpt-4o"),
        ("2025-03-01", "alice@example.com", "o3"),
        ("2025-03-02", "bob@example.com", "gpt-4o"),
    ]
    gpt = rows[0]
    assert gpt["requests"] == 2
    assert gpt["cost_nanodollars"] == 500
    assert gpt["unpriced_requests"] == 1
    assert gpt["input_tokens"] == records[0].usage.input_tokens + records[1].usage.input_tokens
    assert rows[1]["error_requests"] == 1
    assert rows[1]["provider"] == "openai"

    only_bob = await daily_usage(
        db, since=date(2025, 1, 1), until=date(2026, 1, 1), login_name="bob@example.com"
    )
    assert [r["day"] for r in only_bob] == ["2025-03-02"]
    only_o3 = await daily_usage(db, since=date(2025, 1, 1), until=date(2026, 1, 1), model="o3")
    assert [r["requests"] for r in only_o3] == [1]
