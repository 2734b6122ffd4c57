"""Usage endpoints behind the dashboard's pages: every number a page shows comes from here.

Reads rollups only (`irisgate.store.reports`). Non-admins see organisation-wide token counts
but cost only for themselves: any cost that includes other users' requests is `null` with
`cost_redacted: true` (the Usage Overview rule of the product reference).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.handlers import (
    ApiError,
    Caller,
    choice_param,
    filterable_for,
    filters,
    int_param,
    json_response,
    query_value,
    require_admin,
    require_role,
    runtime_of,
    time_param,
)
from irisgate.store import queries, reports
from irisgate.store.reports import Filters

#: How recent a session's last request must be for My Dashboard to count it as active.
ACTIVE_SESSION_MINUTES = 30
_COST_FIELDS = ("cost_nanodollars", "avg_cost_per_mtok_nanodollars")
SORT_KEYS = (
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "requests",
    "avg_cost_per_mtok_nanodollars",
    "cost_nanodollars",
    "login_name",
)
CSV_COLUMNS = (
    "day",
    "login_name",
    "model",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
)


def _redact(row: dict[str, Any]) -> dict[str, Any]:
    for name in _COST_FIELDS:
        row[name] = None
    row["cost_redacted"] = True
    return row


def _sees_cost(caller: Caller, found: Filters) -> bool:
    return caller.is_admin or found.login_name == caller.identity.login_name


def _range(found: Filters) -> dict[str, str]:
    return {"since": found.since.isoformat(), "until": found.until.isoformat()}


async def summary(request: Request) -> Response:
    """Totals, the daily series and per-model sums for the range and filters."""
    caller = await require_role(request)
    found = filters(request, caller)
    db = runtime_of(request).db
    totals, days, models = await reports.summary(db, found)
    if not _sees_cost(caller, found):
        for row in (totals, *days, *models):
            _redact(row)
    return json_response({**_range(found), "totals": totals, "daily": days, "models": models})


async def users(request: Request) -> Response:
    """The top-users table: sorted, paginated, ranked by the sort key."""
    caller = await require_role(request)
    found = filters(request, caller)
    sort = choice_param(request, "sort", SORT_KEYS, "total_tokens")
    order = choice_param(
        request, "order", ("desc", "asc"), "asc" if sort == "login_name" else "desc"
    )
    page = int_param(request, "page", 1, 1, 1_000_000)
    per_page = int_param(request, "per_page", 25, 1, 500)
    rows = await reports.by_column(runtime_of(request).db, found, "login_name")
    me = caller.identity.login_name
    for row in rows:
        if not caller.is_admin and row["login_name"] != me:
            _redact(row)
    rows.sort(key=lambda r: _sort_value(r, sort), reverse=order == "desc")
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    start = (page - 1) * per_page
    return json_response(
        {
            **_range(found),
            "sort": sort,
            "order": order,
            "page": page,
            "per_page": per_page,
            "total": len(rows),
            "users": rows[start : start + per_page],
        }
    )


def _sort_value(row: dict[str, Any], key: str) -> tuple[int, Any]:
    value = row.get(key)
    return (0, 0) if value is None else (1, value)


#: what a spreadsheet reads as the start of a formula (or hides before one)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (`=HYPERLINK(…)`, `@SUM(…)`) gets a
    leading `'`, so it shows as the text it is; numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


async def export_csv(request: Request) -> Response:
    """Usage per day x user x model with token counts and cost, for the filters (admins)."""
    caller = await require_admin(request)
    found = filters(request, caller)
    rows = await reports.export_rows(runtime_of(request).db, found)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cost = f"{row['cost_nanodollars'] / 1e9:.9f}"
        writer.writerow([*(_csv_cell(row[name]) for name in CSV_COLUMNS[:-1]), cost])
    name = f"irisgate-usage-{found.since.isoformat()}-{found.until.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


async def models_activity(request: Request) -> Response:
    """Model activity (admins): per model sums and tokens and cost per day and model."""
    caller = await require_admin(request)
    found = filters(request, caller)
    db = runtime_of(request).db
    return json_response(
        {
            **_range(found),
            "models": await reports.by_column(db, found, "model"),
            "daily": await reports.stacked_daily(db, found, "model"),
        }
    )


async def agents_activity(request: Request) -> Response:
    """Agent activity (admins): per agent program sums and tokens and cost per day."""
    caller = await require_admin(request)
    found = filters(request, caller)
    db = runtime_of(request).db
    return json_response(
        {
            **_range(found),
            "agents": await reports.by_agent(db, found),
            "daily": await reports.stacked_daily(db, found, "agent"),
        }
    )


async def active_users(request: Request) -> Response:
    """User activity (admins): daily, weekly and monthly active users per day, and active
    users per period of `group` (day, week, month, or 4of7: on 4 of the last 7 days)."""
    await require_admin(request)
    found = filters(request)
    group = choice_param(request, "group", reports.GROUPS, "day")
    rows, periods = await reports.active_users(runtime_of(request).db, found, group)
    return json_response({**_range(found), "days": rows, "group": group, "periods": periods})


async def filter_choices(request: Request) -> Response:
    """What the Usage Overview's filters offer this caller: the indexed headers they may
    filter on (with whether only their presence is kept) and the agents of the range."""
    caller = await require_role(request)
    found = filters(request)
    headers = [
        {"name": h.name, "redact_values": h.redact_values} for h in filterable_for(request, caller)
    ]
    agents = [row["agent"] for row in await reports.by_agent(runtime_of(request).db, found)]
    return json_response({**_range(found), "headers": headers, "agents": agents})


async def dashboard(request: Request) -> Response:
    """My Dashboard of one login (oneself, or anyone for admins)."""
    caller = await require_role(request)
    login = request.path_params["login_name"]
    if login != caller.identity.login_name and not caller.is_admin:
        raise ApiError(403, "access denied: only admins can see other users' dashboards")
    found = filters(request)
    found = Filters(found.since, found.until, login, found.model)
    db = runtime_of(request).db
    since = datetime.now(UTC) - timedelta(minutes=ACTIVE_SESSION_MINUTES)
    recent = await queries.list_requests(db, login_name=login, limit=20)
    return json_response(
        {
            **_range(found),
            "login_name": login,
            "totals": await reports.totals(db, found),
            "models": await reports.by_column(db, found, "model"),
            "active_sessions": await reports.count_recent_sessions(db, login, since),
            "active_session_minutes": ACTIVE_SESSION_MINUTES,
            "recent": [_recent(row) for row in recent],
        }
    )


def _recent(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("request_id", "started_at", "model", "provider", "status", "total_tokens")
    return {
        **{k: row[k] for k in keys},
        "cost_nanodollars": row["cost_nanodollars"],
        "duration_ms": row["duration_ms"],
        "session_id": row["session_id"],
    }


async def list_sessions(request: Request) -> Response:
    """Session logs (admins): sessions, most recent first, filtered and paginated."""
    await require_admin(request)
    page = int_param(request, "page", 1, 1, 1_000_000)
    per_page = int_param(request, "per_page", 25, 1, 200)
    rows, total = await reports.list_sessions(
        runtime_of(request).db,
        login_name=query_value(request, "user") or None,
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        offset=(page - 1) * per_page,
        limit=per_page,
    )
    return json_response({"page": page, "per_page": per_page, "total": total, "sessions": rows})


routes = [
    Route("/api/usage/summary", summary),
    Route("/api/usage/users", users),
    Route("/api/usage/export.csv", export_csv),
    Route("/api/usage/models", models_activity),
    Route("/api/usage/agents", agents_activity),
    Route("/api/usage/active-users", active_users),
    Route("/api/usage/filters", filter_choices),
    Route("/api/dashboard/{login_name:path}", dashboard),
    Route("/api/sessions", list_sessions),
]
