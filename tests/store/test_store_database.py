"""Opening databases: URL forms, SQLite settings, migrations from empty and on re-open,
concurrent start-up of several instances, and that the migrations create what tables.py says.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import warnings
from datetime import date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from irisgate.store import configs, queries, reports, tool_use
from irisgate.store.database import (
    SCHEMA_HEAD,
    Database,
    _alembic_config,
    current_revision,
    head_revision,
    normalize_url,
    open_database,
)
from irisgate.store.tables import USAGE_FIELDS, metadata
from irisgate.usage.tokens import Usage

TABLES = {
    "config_versions",
    "requests",
    "captures",
    "usage_daily",
    "connector_tokens",
    "usage_agent_daily",
    "sessions",
    "quota_buckets",
    "quota_leases",
    "quota_changes",
    "quota_journal",
    "rate_limit_use",
    "export_state",
    "chat_conversations",
    "chat_messages",
    "chat_projects",
    "chat_attachments",
    "responses",
    "api_keys",
    "api_key_generation",
    "tool_use_daily",
    "usage_facets_daily",
    "signin_sessions",
    "signin_attempts",
    "owner_attributes",
    "alerts",
    "alert_reads",
    "alert_deliveries",
    "openai_objects",
    "alembic_version",
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/irisgate.db", "sqlite+aiosqlite:///data/irisgate.db"),
        ("sqlite:////var/lib/irisgate.db", "sqlite+aiosqlite:////var/lib/irisgate.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("./irisgate-data/irisgate.db", "sqlite+aiosqlite:///./irisgate-data/irisgate.db"),
        ("/srv/irisgate.db", "sqlite+aiosqlite:////srv/irisgate.db"),
        ("postgresql://u:p@db:5432/gw", "postgresql+asyncpg://u:p@db:5432/gw"),
        ("postgres://u@db/gw", "postgresql+asyncpg://u@db/gw"),
        ("postgresql+asyncpg://u@db/gw", "postgresql+asyncpg://u@db/gw"),
        ("postgresql://u@db/gw?sslmode=require", "postgresql+asyncpg://u@db/gw?ssl=require"),
    ],
)
def test_normalize_url_accepts_the_documented_forms(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_normalize_url_expands_home_in_bare_paths() -> None:
    assert normalize_url("~/gw.db") == f"sqlite+aiosqlite:///{Path.home()}/gw.db"


@pytest.mark.parametrize(
    "given",
    [
        "",
        "   ",
        ":memory:",
        "sqlite://",
        "sqlite:///:memory:",
        "mysql://u@h/db",
        "postgresql://h:x/",
    ],
)
def test_normalize_url_refuses_what_it_cannot_serve(given: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        normalize_url(given)


def test_usage_fields_match_the_usage_dataclass() -> None:
    assert tuple(Usage().as_dict()) == USAGE_FIELDS


def _table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _schema_differences(conn: Connection) -> list[object]:
    with warnings.catch_warnings():
        # SQLite cannot reflect the expression index; test_store_configs covers it by behaviour.
        warnings.filterwarnings("ignore", message=".*expression-based index")
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


async def _migrate_with_alembic(db: Database, revision: str) -> None:
    """Run the migration scripts themselves up to `revision` (irisgate only does this for a
    database that is neither empty nor at head)."""

    def upgrade(conn: Connection) -> None:
        command.upgrade(_alembic_config(conn), revision)

    async with db._write_engine.begin() as conn:
        await conn.run_sync(upgrade)


def test_schema_head_is_the_newest_migration() -> None:
    assert SCHEMA_HEAD == head_revision() == "0024"


async def test_a_new_database_gets_the_schema_the_migrations_build(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        async with db.connect() as conn:
            assert await conn.run_sync(_table_names) == TABLES
            assert await conn.run_sync(_schema_differences) == []
        assert await current_revision(db) == SCHEMA_HEAD
    finally:
        await db.close()


async def test_the_migrations_build_what_tables_py_says(db_url: str) -> None:
    db = await open_database(db_url, migrate=False)
    try:
        await _migrate_with_alembic(db, "head")
        async with db.connect() as conn:
            assert await conn.run_sync(_table_names) == TABLES
            assert await conn.run_sync(_schema_differences) == []
        assert await current_revision(db) == SCHEMA_HEAD
    finally:
        await db.close()


async def test_an_older_database_is_migrated_to_head_keeping_its_data(db_url: str) -> None:
    old = await open_database(db_url, migrate=False)
    try:
        await _migrate_with_alembic(old, "0006")
        version = await configs.insert(old, "{}", "alice", "api", None)
    finally:
        await old.close()
    db = await open_database(db_url)
    try:
        assert await current_revision(db) == SCHEMA_HEAD
        assert await configs.latest(db) == version
        async with db.connect() as conn:
            assert await conn.run_sync(_table_names) == TABLES
    finally:
        await db.close()


async def test_rollups_written_before_shards_read_the_same_after_the_migration(
    db_url: str,
) -> None:
    old = await open_database(db_url, migrate=False)
    try:
        await _migrate_with_alembic(old, "0011")
        async with old._write_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO usage_daily (day, login_name, model, provider, requests, "
                    "input_tokens, total_tokens, cost_nanodollars) "
                    "VALUES ('2025-03-01', 'alice@example.com', 'gpt-4o', 'openai', 3, 30, 40, 7)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO sessions (login_name, session_id, agent, first_at, last_at, "
                    "requests, total_tokens) VALUES ('alice@example.com', 's1', 'curl', "
                    "'2025-03-01 12:00:00', '2025-03-01 12:05:00', 3, 40)"
                )
            )
    finally:
        await old.close()
    db = await open_database(db_url)
    try:
        daily = await queries.daily_usage(db, since=date(2025, 3, 1), until=date(2025, 3, 2))
        assert [
            (r["login_name"], r["requests"], r["total_tokens"], r["cost_nanodollars"])
            for r in daily
        ] == [("alice@example.com", 3, 40, 7)]
        listed, total = await reports.list_sessions(
            db, login_name=None, since=None, until=None, offset=0, limit=10
        )
        assert total == 1
        assert (listed[0]["session_id"], listed[0]["requests"], listed[0]["agent"]) == (
            "s1",
            3,
            "curl",
        )
        assert listed[0]["last_at"] == "2025-03-01T12:05:00.000Z"
        async with db.connect() as conn:
            shards = (await conn.execute(text("SELECT shard FROM usage_daily"))).scalars()
            assert list(shards) == [0]
    finally:
        await db.close()


async def test_facet_rollups_before_0020_are_chat_and_filter_by_kind(db_url: str) -> None:
    """0020 rebuilds `usage_facets_daily` with `kind` in its key: the rows kept, as chat."""
    old = await open_database(db_url, migrate=False)
    try:
        await _migrate_with_alembic(old, "0018")
        async with old._write_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO usage_facets_daily (day, login_name, model, provider, agent, "
                    "status, header, value, requests, total_tokens, cost_nanodollars, shard) "
                    "VALUES ('2025-03-01', 'alice@example.com', 'gpt-4o', 'openai', 'curl', "
                    "200, '', '', 3, 40, 7, 2)"
                )
            )
    finally:
        await old.close()
    db = await open_database(db_url)
    try:
        span = (date(2025, 3, 1), date(2025, 3, 2))
        chat = await reports.totals(db, reports.Filters(*span, kind="chat"))
        assert (chat["requests"], chat["total_tokens"], chat["cost_nanodollars"]) == (3, 40, 7)
        images = await reports.totals(db, reports.Filters(*span, kind="image"))
        assert images["requests"] == 0
        async with db.connect() as conn:
            shards = (await conn.execute(text("SELECT shard FROM usage_facets_daily"))).scalars()
            assert list(shards) == [2]
    finally:
        await db.close()


async def test_requests_recorded_before_0016_fill_the_tool_use_and_facet_rollups(
    db_url: str,
) -> None:
    old = await open_database(db_url, migrate=False)
    rows = [
        # request id, started, login, api format, provider, model, status, tool calls, agent
        ("r1", "2025-03-01 09:00", "alice", "chat", "openai", "gpt-4o", 200, 2, "claude-cli/2"),
        ("r2", "2025-03-01 09:05", "alice", "chat", "openai", "gpt-4o", 429, 0, "claude-cli/3"),
        ("r3", "2025-03-01 09:06", "alice", "mcp", "docs", "echo", 200, 0, ""),
        ("r4", "2025-03-01 09:07", "alice", "mcp", "docs", "echo", 502, 0, ""),
        ("r5", "2025-03-02 10:00", "bob", "http_connector", "site", "", 200, 0, "curl/8.5.0"),
    ]  # fmt: skip
    try:
        await _migrate_with_alembic(old, "0012")
        async with old._write_engine.begin() as conn:
            for rid, at, login, fmt, provider, model, status, tools, agent in rows:
                await conn.execute(
                    text(
                        "INSERT INTO requests (request_id, started_at, login_name, api_format,"
                        " provider, model, status, tool_calls, user_agent, session_id,"
                        " input_tokens, output_tokens, total_tokens, cost_nanodollars)"
                        " VALUES (:rid, :at, :login, :fmt, :provider, :model, :status, :tools,"
                        " :agent, 's1', 10, 5, 15, 100)"
                    ),
                    {
                        "rid": rid,
                        "at": datetime.fromisoformat(at + "+00:00"),
                        "login": login,
                        "fmt": fmt,
                        "provider": provider,
                        "model": model,
                        "status": status,
                        "tools": tools,
                        "agent": agent,
                    },
                )
    finally:
        await old.close()
    db = await open_database(db_url)
    try:
        report = await tool_use.tool_use(
            db, since=date(2025, 3, 1), until=date(2025, 3, 3), login_name=None, model=None,
            tool=None,
        )  # fmt: skip
        assert report["totals"] == {"mcp": 2, "http": 1, "model": 2, "calls": 5}
        tools = {(t["kind"], t["connector"], t["tool"], t["model"]): t for t in report["tools"]}
        assert tools["mcp", "docs", "echo", ""]["errors"] == 1
        assert tools["model", "", "", "gpt-4o"]["calls"] == 2
        assert [(s["session_id"], s["calls"]) for s in report["sessions"]] == [
            ("s1", 4),
            ("s1", 1),
        ]
        march = (date(2025, 3, 1), date(2025, 3, 3))
        cli = await reports.totals(db, reports.Filters(*march, agent="claude-cli"))
        assert (cli["requests"], cli["total_tokens"]) == (2, 30)
        refused = await reports.totals(db, reports.Filters(*march, status=reports.Status(429, 429)))
        assert (refused["requests"], refused["error_requests"]) == (1, 1)
        everything = await reports.totals(
            db, reports.Filters(*march, status=reports.Status(100, 599))
        )
        assert everything["requests"] == 2  # connector calls are not usage
    finally:
        await db.close()


@pytest.mark.parametrize("opens", [1, 2])
def test_opening_a_new_or_current_database_does_not_load_alembic(
    tmp_path: Path, opens: int
) -> None:
    # Alembic and its template engine cost a serving process about 11 MiB for good: they
    # are only imported when a database actually needs a migration script.
    script = (
        "import asyncio, sys\n"
        "from irisgate.store.database import open_database\n"
        "async def main():\n"
        f"    for _ in range({opens}):\n"
        f"        db = await open_database({str(tmp_path / 'gw.db')!r})\n"
        "        await db.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert run.stdout.strip() == "[]"


async def test_reopening_is_idempotent_and_keeps_data(db_url: str) -> None:
    first = await open_database(db_url)
    try:
        version = await configs.insert(first, "{}", "alice", "api", None)
    finally:
        await first.close()
    for _ in range(2):
        again = await open_database(db_url)
        try:
            assert await current_revision(again) == SCHEMA_HEAD
            assert await configs.latest(again) == version
        finally:
            await again.close()


async def test_instances_starting_together_both_open(db_url: str) -> None:
    opened = await asyncio.gather(*(open_database(db_url) for _ in range(3)))
    try:
        for db in opened:
            assert await current_revision(db) == SCHEMA_HEAD
    finally:
        for db in opened:
            await db.close()


async def test_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "gw.db"
    db = await open_database(str(path))
    try:
        assert path.exists()
        assert db.dialect == "sqlite"
        async with db.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
    finally:
        await db.close()


async def test_open_without_migrating_leaves_an_empty_database(db_url: str) -> None:
    db = await open_database(db_url, migrate=False)
    try:
        assert await current_revision(db) is None
        async with db.connect() as conn:
            assert await conn.run_sync(_table_names) == set()
    finally:
        await db.close()


async def test_database_reports_its_dialect(db: Database, db_url: str) -> None:
    expected = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert db.dialect == expected
    assert db.url.startswith(f"{expected}+")
