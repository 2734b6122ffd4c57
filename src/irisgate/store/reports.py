"""Aggregates over the rollup tables, for the dashboard's API endpoints.

Everything here reads `usage_daily`, `usage_agent_daily`, `usage_facets_daily` (when an
agent, status code or header filter is set) or `sessions` (never `requests` scans), so a
page costs the same whether the instance recorded a thousand requests or a million. Days
are UTC; ranges are half-open (`since` inclusive, `until` exclusive). Money is integer
nanodollars; every function returns plain JSON-ready values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, Table, cast, func, select, tuple_

from irisgate.store.database import Database
from irisgate.store.queries import iso_utc
from irisgate.store.tables import (
    SESSION_SUM_COLUMNS,
    sessions,
    usage_agent_daily,
    usage_daily,
    usage_facets_daily,
)

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
class Status:
    """A status code filter: one code (`low == high`) or a class such as 4xx."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> Status | None:
        """`429` or `4xx` (1xx-5xx); None for anything else."""
        if len(text) == 3 and text[0] in "12345" and text[1:].lower() == "xx":
            base = int(text[0]) * 100
            return cls(base, base + 99)
        if len(text) == 3 and text.isascii() and text.isdigit() and text[0] in "12345":
            return cls(int(text), int(text))
        return None


@dataclass(frozen=True, slots=True)
class Filters:
    since: date
    until: date
    login_name: str | None = None
    model: str | None = None
    agent: str | None = None
    status: Status | None = None
    kind: str | None = None  # what the requests asked for (telemetry/record.py KINDS)
    #: an indexed header (`database.headers.filterable`) and the value it must have (None:
    #: any value, i.e. requests that carried it)
    header: str | None = None
    header_value: str | None = None

    @property
    def faceted(self) -> bool:
        """Whether a filter needs `usage_facets_daily` (agent, status code, kind, header)."""
        return (
            self.agent is not None
            or self.status is not None
            or self.kind is not None
            or self.header is not None
        )

    @property
    def table(self) -> Table:
        """The rollup that answers these filters: `usage_daily` unless one needs facets."""
        return usage_facets_daily if self.faceted else usage_daily

    def on(self, table: Table) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [
            table.c.day >= self.since,
            table.c.day < self.until,
        ]
        if self.login_name is not None:
            conditions.append(table.c.login_name == self.login_name)
        if self.model is not None and "model" in table.c:
            conditions.append(table.c.model == self.model)
        if table is not usage_facets_daily:
            return conditions
        if self.agent is not None:
            conditions.append(table.c.agent == self.agent)
        if self.status is not None:
            conditions.append(table.c.status.between(self.status.low, self.status.high))
        if self.kind is not None:
            conditions.append(table.c.kind == self.kind)
        # every request is in the rows of header ''; a header's rows only hold those that
        # carried it: reading both would count such requests twice
        conditions.append(table.c.header == (self.header or ""))
        if self.header_value is not None:
            conditions.append(table.c.value == self.header_value)
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
    table = filters.table
    query = select(
        *_sums(table), func.count(func.distinct(table.c.login_name)).label("users")
    ).where(*filters.on(table))
    row = (await _rows(db, query))[0]
    row["active_users"] = int(row.pop("users") or 0)
    return with_average(row)


async def summary(
    db: Database, filters: Filters
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """`totals`, `daily` and per-model sums of the range from one scan of the rollup (grouped
    by day, model and provider; summed up here) plus a count of distinct logins, which the
    primary key index answers without reading table rows."""
    table = filters.table
    keys = (table.c.day, table.c.model, table.c.provider)
    query = select(*keys, *_sums(table)).where(*filters.on(table)).group_by(*keys)
    users = select(func.count(func.distinct(table.c.login_name))).where(*filters.on(table))
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
    table = filters.table
    keys = [table.c[column]]
    if column == "model":
        keys.append(table.c.provider)
    query = (
        select(*keys, *_sums(table))
        .where(*filters.on(table))
        .group_by(*keys)
        .order_by(func.sum(table.c.total_tokens).desc(), *keys)
    )
    return [with_average(row) for row in await _rows(db, query)]


async def by_agent(db: Database, filters: Filters) -> list[dict[str, Any]]:
    """Sums per agent program (from the User-Agent), biggest total first."""
    faceted = filters.faceted or filters.model is not None
    table = usage_facets_daily if faceted else usage_agent_daily
    query = (
        select(table.c.agent, *_sums(table))
        .where(*filters.on(table))
        .group_by(table.c.agent)
        .order_by(func.sum(table.c.total_tokens).desc(), table.c.agent)
    )
    return [with_average(row) for row in await _rows(db, query)]


#: Series a stacked chart shows by name; the rest are summed into one "other" series.
STACK_SERIES = 8


async def stacked_daily(db: Database, filters: Filters, column: str) -> dict[str, Any]:
    """Tokens and cost per day of the range for each `model` or `agent`: the biggest
    STACK_SERIES by tokens by name, the rest as one series named `other` (None when
    there is no rest), for a stacked histogram. `days` lists every day of the range."""
    if column == "agent":
        table = usage_facets_daily if filters.faceted or filters.model else usage_agent_daily
    else:
        table = filters.table
    key = table.c[column]
    query = (
        select(
            table.c.day,
            key,
            cast(func.sum(table.c.total_tokens), BigInteger),
            cast(func.sum(table.c.cost_nanodollars), BigInteger),
        )
        .where(*filters.on(table))
        .group_by(table.c.day, key)
    )
    async with db.connect() as conn:
        cells = (await conn.execute(query)).all()
    days = []
    current = filters.since
    while current < filters.until:
        days.append(current)
        current += timedelta(days=1)
    index = {day: i for i, day in enumerate(days)}
    totals: dict[str, int] = defaultdict(int)
    for _day, name, tokens, _cost in cells:
        totals[name] += tokens
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    named = set(ranked[:STACK_SERIES])
    other = len(ranked) > STACK_SERIES
    names: list[str | None] = [*ranked[:STACK_SERIES], *([None] if other else [])]
    tokens_of = {name: [0] * len(days) for name in names}
    cost_of = {name: [0] * len(days) for name in names}
    for day, name, tokens, cost in cells:
        series: str | None = name if name in named else None
        tokens_of[series][index[day]] += tokens
        cost_of[series][index[day]] += cost
    return {
        "days": [d.isoformat() for d in days],
        "series": [{"name": n, "tokens": tokens_of[n], "cost": cost_of[n]} for n in names],
    }


async def export_rows(db: Database, filters: Filters) -> list[dict[str, Any]]:
    """Sums per day, login and model (providers folded), in that order: the CSV export."""
    table = filters.table
    keys = (table.c.day, table.c.login_name, table.c.model)
    query = select(*keys, *_sums(table)).where(*filters.on(table)).group_by(*keys).order_by(*keys)
    return [{**row, "day": row["day"].isoformat()} for row in await _rows(db, query)]


#: User Activity's groupings: per day, ISO week (from Monday), calendar month, and per day
#: the users active on at least 4 of the 7 days ending that day (regular users).
GROUPS = ("day", "week", "month", "4of7")


async def active_users(
    db: Database, filters: Filters, group: str = "day"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per day of the range: distinct logins that day, in the 7 days and in the 30 days
    ending that day (DAU, WAU, MAU); and the range's periods of `group` (GROUPS) with
    their active users (`start` the period's first day, clipped to the range)."""
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
    return result, _periods(per_day, filters, group)


def _period_start(day: date, group: str) -> date:
    if group == "week":
        return day - timedelta(days=day.weekday())
    if group == "month":
        return day.replace(day=1)
    return day


def _periods(per_day: dict[date, set[str]], filters: Filters, group: str) -> list[dict[str, Any]]:
    periods: dict[date, set[str]] = {}
    day = filters.since
    while day < filters.until:
        start = max(_period_start(day, group), filters.since)
        users = periods.setdefault(start, set())
        if group == "4of7":
            days_active: dict[str, int] = defaultdict(int)
            for back in range(7):
                for login in per_day.get(day - timedelta(days=back), ()):
                    days_active[login] += 1
            users.update(login for login, n in days_active.items() if n >= 4)
        else:
            users |= per_day.get(day, set())
        day += timedelta(days=1)
    return [{"start": start.isoformat(), "users": len(users)} for start, users in periods.items()]


async def list_sessions(
    db: Database,
    *,
    login_name: str | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """Sessions whose last request is in the range, most recent first, and how many match.

    A session's rows (one per shard, see `tables.ROLLUP_SHARD`) are merged: sums added,
    the earliest `first_at` and the latest `last_at`. Its last request is at or after
    `since` when any of its rows is, which the `last_at` indexes find without grouping every
    session; before `until` only when all of them are."""
    table = sessions.c
    key = (table.login_name, table.session_id)
    last_at = func.max(table.last_at)
    merged = select(
        *key,
        func.min(table.agent).label("agent"),
        func.min(table.first_at).label("first_at"),
        last_at.label("last_at"),
        *(cast(func.sum(table[name]), BigInteger).label(name) for name in SESSION_SUM_COLUMNS),
    ).group_by(*key)
    if login_name is not None:
        merged = merged.where(table.login_name == login_name)
    if since is not None:
        recent = select(*key).where(table.last_at >= since)
        if login_name is not None:
            recent = recent.where(table.login_name == login_name)
        merged = merged.where(tuple_(*key).in_(recent))
    if until is not None:
        merged = merged.having(last_at < until)
    query = merged.order_by(last_at.desc(), table.session_id).offset(offset).limit(limit)
    count = select(func.count()).select_from(merged.subquery())
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
    query = select(func.count(func.distinct(sessions.c.session_id))).where(
        sessions.c.login_name == login_name, sessions.c.last_at >= since
    )
    async with db.connect() as conn:
        return int((await conn.execute(query)).scalar_one())
