"""Tool calls in a range, for the Tool Use page: over time, by tool and kind, per session.

Three kinds of tool call are recorded: a call to an MCP connector's tool (kind `mcp`, with
its connector and tool), a request through an HTTP connector (`http`, with its connector),
and the tool calls a model asked for in its answer (`model`, with the model; their tool
names are not recorded). Reads the `tool_use_daily` rollup (the batch writer keeps it
current), never the `requests` rows, so a report costs the same at a thousand requests or
a million: four grouped reads over the range's rollup rows.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, cast, func, or_, select

from irisgate.store.database import Database
from irisgate.store.queries import iso_utc
from irisgate.store.tables import TOOL_KINDS, tool_use_daily

KINDS = TOOL_KINDS
MAX_SESSIONS = 100
_T = tool_use_daily.c


def _sum(column: ColumnElement[Any]) -> ColumnElement[int]:
    # PostgreSQL's SUM of a BIGINT is NUMERIC (a Decimal in Python); JSON wants ints
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def _conditions(  # noqa: PLR0917 (the report's filters, each named at the one call)
    since: date,
    until: date,
    login_name: str | None,
    model: str | None,
    tool: str | None,
    session_id: str | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [_T.day >= since, _T.day < until]
    if login_name is not None:
        conditions.append(_T.login_name == login_name)
    if session_id is not None:
        conditions.append(_T.session_id == session_id)
    if model is not None:  # the model that made the calls: model-side calls only
        conditions.append(and_(_T.kind == "model", _T.model == model))
    if tool is not None:  # an MCP tool's name or a connector's id
        conditions.append(and_(_T.kind != "model", or_(_T.tool == tool, _T.connector == tool)))
    return conditions


async def tool_use(
    db: Database,
    *,
    since: date,
    until: date,
    login_name: str | None,
    model: str | None,
    tool: str | None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """The report: `days` (calls per UTC day and kind), `tools` (per kind, connector, tool
    and model), `sessions` (per session, most calls first, at most MAX_SESSIONS of
    `sessions_total`), `totals` per kind."""
    where = _conditions(since, until, login_name, model, tool, session_id)
    days_query = select(_T.day, _T.kind, _sum(_T.calls)).where(*where).group_by(_T.day, _T.kind)
    tool_keys = (_T.kind, _T.connector, _T.tool, _T.model)
    tools_query = (
        select(
            *tool_keys,
            _sum(_T.calls).label("calls"),
            _sum(_T.errors).label("errors"),
            func.count(func.distinct(_T.login_name)).label("users"),
        )
        .where(*where)
        .group_by(*tool_keys)
        .order_by(_sum(_T.calls).desc(), *tool_keys)
    )
    async with db.connect() as conn:
        day_rows = (await conn.execute(days_query)).all()
        tool_rows = (await conn.execute(tools_query)).mappings().all()
        session_rows, sessions_total = await _sessions(conn, where)
    days: dict[str, dict[str, int]] = {}
    totals = dict.fromkeys(KINDS, 0)
    for day, kind, calls in day_rows:
        days.setdefault(day.isoformat(), dict.fromkeys(KINDS, 0))[kind] += calls
        totals[kind] += calls
    return {
        "totals": {**totals, "calls": sum(totals.values())},
        "days": [{"day": day, **days[day]} for day in sorted(days)],
        "tools": [dict(row) for row in tool_rows],
        "sessions": session_rows,
        "sessions_total": sessions_total,
        # kept for clients of the first version of this report (which read request rows)
        "truncated": False,
    }


async def _sessions(conn: Any, where: list[ColumnElement[bool]]) -> tuple[list[Any], int]:
    keys = (_T.session_id, _T.login_name)
    calls = _sum(_T.calls)
    query: Select[Any] = (
        select(
            *keys,
            func.min(_T.first_at).label("first_at"),
            func.max(_T.last_at).label("last_at"),
            *(_sum(case((_T.kind == kind, _T.calls), else_=0)).label(kind) for kind in KINDS),
            calls.label("calls"),
            func.count().over().label("sessions_total"),  # the groups, before the limit
        )
        .where(*where, _T.session_id != "")
        .group_by(*keys)
        .order_by(calls.desc(), _T.session_id)
        .limit(MAX_SESSIONS)
    )
    found = (await conn.execute(query)).mappings().all()
    total = int(found[0]["sessions_total"]) if found else 0
    rows = [
        {
            **{k: v for k, v in row.items() if k != "sessions_total"},
            "first_at": iso_utc(row["first_at"]),
            "last_at": iso_utc(row["last_at"]),
        }
        for row in found
    ]
    return rows, total
