"""Rollups for the Tool Use page and the Usage Overview's filters.

`tool_use_daily` sums tool calls per (UTC day, login, session, kind, connector, tool, model)
and `usage_facets_daily` sums usage per (UTC day, login, model, provider, agent, status code,
indexed header, its value). Both are filled from the `requests` rows already recorded, so
the pages show the past too; indexed header values start with the requests recorded after
the upgrade (they were never stored before).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "web_search_count",
    "total_tokens",
    "cost_nanodollars",
    "unpriced_requests",
    "error_requests",
    "priced_tokens",
)
_TOOL_KEY = ("day", "login_name", "session_id", "kind", "connector", "tool", "model")
_FACET_KEY = ("day", "login_name", "model", "provider", "agent", "status", "header", "value")
_BATCH = 5000


def _agent_name(user_agent: str) -> str:
    """`irisgate.usage.agents.agent_name` as of this revision (a migration keeps its own
    copy: it must do the same thing after that function changes, and `store` may not
    import `usage`)."""
    words = user_agent.split()
    if not words:
        return "(none)"
    name = words[0]
    product, slash, version = name.partition("/")
    if slash and (not version or version[0].isdigit()):
        name = product
    elif slash and len(words) > 1 and words[1][:1].isdigit():
        name = f"{product}/{version}"
    return name[:64] or "(none)"


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))


def _shard() -> sa.Column[int]:
    return sa.Column("shard", sa.SmallInteger(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    tools = op.create_table(
        "tool_use_daily",
        *(
            sa.Column(name, sa.Date() if name == "day" else sa.Text(), nullable=False)
            for name in _TOOL_KEY
        ),
        _count("calls"),
        _count("errors"),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        _shard(),
        sa.PrimaryKeyConstraint(*_TOOL_KEY, "shard", name="pk_tool_use_daily"),
        sqlite_with_rowid=False,
    )
    facets = op.create_table(
        "usage_facets_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        *(_count(name) for name in _SUMS),
        _shard(),
        sa.PrimaryKeyConstraint(*_FACET_KEY, "shard", name="pk_usage_facets_daily"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_usage_facets_daily_header_value_day",
        "usage_facets_daily",
        ["header", "value", "day"],
    )
    # the rows outside shard 0, which the rollup fold (irisgate.telemetry.folding) moves
    for table in ("tool_use_daily", "usage_facets_daily"):
        where = sa.text("shard <> 0")
        op.create_index(
            f"ix_{table}_unfolded", table, ["day"], postgresql_where=where, sqlite_where=where
        )
    assert tools is not None
    assert facets is not None
    bind = op.get_bind()
    _fill_tools(bind, tools)
    _fill_facets(bind, facets)
    if bind.dialect.name == "postgresql":
        # the fills read `requests` through server-side cursors (yield_per); asyncpg leaves
        # their portals open until the migrations' transaction ends, and PostgreSQL would
        # refuse a later migration's ALTER TABLE of `requests` in the same run
        op.execute("CLOSE ALL")


def _day(bind: sa.Connection, column: Any) -> Any:
    if bind.dialect.name == "sqlite":
        return sa.func.date(column)
    return sa.cast(sa.func.timezone("UTC", column), sa.Date)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _insert(bind: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        bind.execute(table.insert(), rows[start : start + _BATCH])


def _fill_tools(bind: sa.Connection, table: sa.Table) -> None:
    r = sa.table(
        "requests",
        *(
            sa.column(n)
            for n in (
                "started_at",
                "login_name",
                "session_id",
                "api_format",
                "provider",
                "model",
                "tool_calls",
                "status",
                "error",
            )
        ),
    )
    r.c.started_at.type = sa.DateTime(timezone=True)
    day = _day(bind, r.c.started_at)
    failed = sa.case((sa.or_(r.c.status >= 400, r.c.error != ""), 1), else_=0)
    keys = (day.label("day"), r.c.login_name, r.c.session_id, r.c.api_format, r.c.provider)
    query = (
        sa.select(
            *keys,
            r.c.model,
            sa.func.sum(
                sa.case((r.c.api_format.in_(("mcp", "http_connector")), 1), else_=r.c.tool_calls)
            ).label("calls"),
            sa.func.sum(failed).label("errors"),
            sa.func.min(r.c.started_at).label("first_at"),
            sa.func.max(r.c.started_at).label("last_at"),
        )
        .where(sa.or_(r.c.tool_calls > 0, r.c.api_format.in_(("mcp", "http_connector"))))
        .group_by(*keys, r.c.model)
        .order_by(day)
    )

    def tool_rows() -> Iterator[dict[str, Any]]:
        for row in bind.execute(query.execution_options(yield_per=_BATCH)):
            kind = {"mcp": "mcp", "http_connector": "http"}.get(row.api_format, "model")
            yield (
                {
                    "day": _as_date(row.day),
                    "login_name": row.login_name,
                    "session_id": row.session_id,
                    "kind": kind,
                    "connector": row.provider if kind != "model" else "",
                    "tool": row.model if kind == "mcp" else "",
                    "model": row.model if kind == "model" else "",
                    "calls": int(row.calls),
                    "errors": int(row.errors) if kind != "model" else 0,
                    "first_at": row.first_at,
                    "last_at": row.last_at,
                }
            )

    _fill(bind, table, tool_rows(), _TOOL_KEY, ("calls", "errors"))


def _fill_facets(bind: sa.Connection, table: sa.Table) -> None:
    """From `usage_daily`'s source: the LLM requests (connector calls are not usage)."""
    r = sa.table(
        "requests",
        *(
            sa.column(n)
            for n in (
                "started_at",
                "login_name",
                "model",
                "provider",
                "user_agent",
                "status",
                "error",
                "api_format",
                "cost_nanodollars",
                "total_tokens",
                *_SUMS[1:10],
            )
        ),
    )
    r.c.started_at.type = sa.DateTime(timezone=True)
    day = _day(bind, r.c.started_at)
    keys = (day.label("day"), r.c.login_name, r.c.model, r.c.provider, r.c.user_agent, r.c.status)
    priced = r.c.cost_nanodollars.is_not(None)
    query = (
        sa.select(
            *keys,
            sa.func.count().label("requests"),
            *(sa.func.sum(r.c[name]).label(name) for name in _SUMS[1:11]),
            sa.func.coalesce(sa.func.sum(r.c.cost_nanodollars), 0).label("cost_nanodollars"),
            sa.func.sum(sa.case((priced, 0), else_=1)).label("unpriced_requests"),
            sa.func.sum(sa.case((sa.or_(r.c.status >= 400, r.c.error != ""), 1), else_=0)).label(
                "error_requests"
            ),
            sa.func.sum(sa.case((priced, r.c.total_tokens), else_=0)).label("priced_tokens"),
        )
        .where(r.c.api_format.not_in(("mcp", "http_connector")))
        .group_by(*keys)
        .order_by(day)
    )

    def facet_rows() -> Iterator[dict[str, Any]]:
        for row in bind.execute(query.execution_options(yield_per=_BATCH)):
            values = row._mapping
            yield (
                {
                    "day": _as_date(values["day"]),
                    "login_name": values["login_name"],
                    "model": values["model"],
                    "provider": values["provider"],
                    "agent": _agent_name(values["user_agent"]),
                    "status": values["status"],
                    "header": "",
                    "value": "",
                    **{name: int(values[name] or 0) for name in _SUMS},
                }
            )

    _fill(bind, table, facet_rows(), _FACET_KEY, _SUMS)


def _fill(
    bind: sa.Connection,
    table: sa.Table,
    rows: Iterator[dict[str, Any]],
    key: tuple[str, ...],
    sums: tuple[str, ...],
) -> None:
    """Insert `rows` (in day order) merged per key, one day at a time: memory holds one
    day's groups, whatever the size of `requests`."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        if batch and row["day"] != batch[-1]["day"]:
            _insert(bind, table, _merge(batch, key, sums))
            batch = []
        batch.append(row)
    if batch:
        _insert(bind, table, _merge(batch, key, sums))


def _merge(
    rows: list[dict[str, Any]], key: tuple[str, ...], sums: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Rows with the same key (after mapping, e.g. two User-Agents of one agent) added up."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[name] for name in key)
        found = merged.get(k)
        if found is None:
            merged[k] = row
            continue
        for name in sums:
            found[name] += row[name]
        if "first_at" in row:
            found["first_at"] = min(found["first_at"], row["first_at"])
            found["last_at"] = max(found["last_at"], row["last_at"])
    return list(merged.values())


def downgrade() -> None:
    op.drop_index("ix_usage_facets_daily_header_value_day", table_name="usage_facets_daily")
    op.drop_table("usage_facets_daily")
    op.drop_table("tool_use_daily")
