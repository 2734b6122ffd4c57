"""Aggregates over the rollup tables, for the dashboard's API endpoints.

Everything here reads `usage_daily`, `usage_agent_daily` or `sessions` (never `requests`
scans), so a page costs the same whether the instance recorded a thousand requests or a
million. Days are UTC; ranges are half-open (`since` inclusive, `until` exclusive). Money is
integer nanodollars; every function returns plain JSON-ready values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Table, cast, func, select

from irisgate.store.database import Database
from irisgate.store.queries import iso_utc
from irisgate.store.tables import sessions, usage_agent_daily, usage_daily

#: Token sums every report carries (the columns the dashboard's tables show, and more).
TOKEN_SUMS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_nanodollars",
    "unpriced_requests",
    "error_requests",
    "priced_tokens",
)


@dataclass(frozen=True, slots=True)
class Filters:
    since: date
    until: date
    login_name: str | None = None
    model: str | None = None

    def on(self, table: Table) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [
            table.c.day >= self.since,
            table.c.day < self.until,
        ]
        if self.login_name is not None:
            conditions.append(table.c.login_name == self.login_name)
        if self.model is not None and "model" in table.c:
            conditions.append(table.c.model == self.model)
        return conditions


def _sums(table: Table) -> list[Any]:
    # cast: PostgreSQL's SUM of a BIGINT is NUMERIC (a Decimal in Python); JSON wants ints
    return [
        cast(func.coalesce(func.sum(table.c[name]), 0), BigInteger).label(name)
        for name in TOKEN_SUMS
    ]


def with_average(row: dict[str, Any]) -> dict[str, Any]:
    """`row` plus `avg_cost_per_mtok_nanodollars`: cost per million *priced* tokens (None
    without priced tokens). Tokens of unpriced requests cost nothing and count nothing here:
    counting them would make every priced model look cheaper than its list price."""
    tokens, cost = row.get("priced_tokens") or 0, row.get("cost_nanodollars")
    row["avg_cost_per_mtok_nanodollars"] = (
        round(cost * 1_000_000 / tokens) if tokens and cost is not None else None
    )
    return row


async def _rows(db: Database, query: Select[Any]) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        result = await conn.execute(query)
        keys = tuple(result.keys())
        return [dict(zip(keys, row, strict=True)) for row in result.all()]


async def totals(db: Database, filters: Filters) -> dict[str, Any]:
    """Sums over the range plus `active_users` (logins with at least one request)."""
    query = select(
        *_sums(usage_daily), func.count(func.distinct(usage_daily.c.login_name)).label("users")
    ).where(*filters.on(usage_daily))
    row = (await _rows(db, query))[0]
    row["active_users"] = int(row.pop("users") or 0)
    return with_average(row)


async def summary(
    db: Database, filters: Filters
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """`totals`, `daily` and per-model sums of the range from one scan of the rollup (grouped
    by day, model and provider; summed up here) plus a count of distinct logins, which the
    primary key index answers without reading table rows."""
    keys = (usage_daily.c.day, usage_daily.c.model, usage_daily.c.provider)
    query = select(*keys, *_sums(usage_daily)).where(*filters.on(usage_daily)).group_by(*keys)
    users = select(func.count(func.distinct(usage_daily.c.login_name))).where(
        *filters.on(usage_daily)
    )
    cells = await _rows(db, query)
    async with db.connect() as conn:
        active = int((await conn.execute(users)).scalar_one())
    totals = dict.fromkeys(TOKEN_SUMS, 0)
    per_day: dict[date, dict[str, Any]] = {}
    per_model: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        day = per_day.setdefault(cell["day"], dict.fromkeys(TOKEN_SUMS, 0))
        model = per_model.setdefault(
            (cell["model"], cell["provider"]),
            {"model": cell["model"], "provider": cell["provider"], **dict.fromkeys(TOKEN_SUMS, 0)},
        )
        for name in TOKEN_SUMS:
            value = cell[name]
            totals[name] += value
            day[name] += value
            model[name] += value
    totals["active_users"] = active
    daily_rows = []
    current = filters.since
    while current < filters.until:
        sums = per_day.get(current) or dict.fromkeys(TOKEN_SUMS, 0)
        daily_rows.append({**sums, "day": current.isoformat()})
        current += timedelta(days=1)
    models = sorted(
        per_model.values(), key=lambda r: (-r["total_tokens"], r["model"], r["provider"])
    )
    return with_average(totals), daily_rows, [with_average(m) for m in models]


async def by_column(db: Database, filters: Filters, column: str) -> list[dict[str, Any]]:
    """Sums per `login_name`, `model` or `provider` (and model), biggest total first."""
    keys = [usage_daily.c[column]]
    if column == "model":
        keys.append(usage_daily.c.provider)
    query = (
        select(*keys, *_sums(usage_daily))
        .where(*filters.on(usage_daily))
        .group_by(*keys)
        .order_by(func.sum(usage_daily.c.total_tokens).desc(), *keys)
    )
    return [with_average(row) for row in await _rows(db, query)]


async def by_agent(db: Database, filters: Filters) -> list[dict[str, Any]]:
    """Sums per agent program (from the User-Agent), biggest total first."""
    table = usage_agent_daily
    query = (
        select(table.c.agent, *_sums(table))
        .where(*filters.on(table))
        .group_by(table.c.agent)
        .order_by(func.sum(table.c.total_tokens).desc(), table.c.agent)
    )
    return [with_average(row) for row in await _rows(db, query)]


async def export_rows(db: Database, filters: Filters) -> list[dict[str, Any]]:
    """Sums per day, login and model (providers folded), in that order: the CSV export."""
    keys = (usage_daily.c.day, usage_daily.c.login_name, usage_daily.c.model)
    query = (
        select(*keys, *_sums(usage_daily))
        .where(*filters.on(usage_daily))
        .group_by(*keys)
        .order_by(*keys)
    )
    return [{**row, "day": row["day"].isoformat()} for row in await _rows(db, query)]


async def active_users(db: Database, filters: Filters) -> list[dict[str, Any]]:
    """Per day of the range: distinct logins that day, in the 7 days and in the 30 days
    ending that day (DAU, WAU, MAU)."""
    reach = Filters(filters.since - timedelta(days=29), filters.until, filters.login_name)
    query = (
        select(usage_daily.c.day, usage_daily.c.login_name)
        .where(*reach.on(usage_daily))
        .group_by(usage_daily.c.day, usage_daily.c.login_name)
    )
    async with db.connect() as conn:
        pairs = (await conn.execute(query)).all()
    per_day: dict[date, set[str]] = defaultdict(set)
    for day, login in pairs:
        per_day[day].add(login)
    result = []
    day = filters.since
    while day < filters.until:
        week: set[str] = set()
        month: set[str] = set()
        for back in range(30):
            logins = per_day.get(day - timedelta(days=back))
            if logins:
                month |= logins
                if back < 7:
                    week |= logins
        result.append(
            {
                "day": day.isoformat(),
                "daily": len(per_day.get(day, ())),
                "weekly": len(week),
                "monthly": len(month),
            }
        )
        day += timedelta(days=1)
    return result


async def list_sessions(
    db: Database,
    *,
    login_name: str | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """Sessions whose last request is in the range, most recent first, and how many match."""
    conditions: list[ColumnElement[bool]] = []
    if login_name is not None:
        conditions.append(sessions.c.login_name == login_name)
    if since is not None:
        conditions.append(sessions.c.last_at >= since)
    if until is not None:
        conditions.append(sessions.c.last_at < until)
    query = (
        select(sessions)
        .where(*conditions)
        .order_by(sessions.c.last_at.desc(), sessions.c.session_id)
        .offset(offset)
        .limit(limit)
    )
    count = select(func.count()).select_from(sessions).where(*conditions)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
        total = int((await conn.execute(count)).scalar_one())
    return [
        with_average(
            {**row, "first_at": iso_utc(row["first_at"]), "last_at": iso_utc(row["last_at"])}
        )
        for row in rows
    ], total


async def count_recent_sessions(db: Database, login_name: str, since: datetime) -> int:
    """Sessions of `login_name` with a request at or after `since` (its active sessions)."""
    query = (
        select(func.count())
        .select_from(sessions)
        .where(sessions.c.login_name == login_name, sessions.c.last_at >= since)
    )
    async with db.connect() as conn:
        return int((await conn.execute(query)).scalar_one())
