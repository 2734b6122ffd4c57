"""Tool calls in a range, for the Tool Use page: over time, by tool and kind, per session.

Three kinds of tool call are recorded: a call to an MCP connector's tool (`api_format`
`mcp`, the tool in `model`, the connector in `provider`), a request through an HTTP
connector (`http_connector`, the connector in `provider`), and tool calls a model made in
its answer (an LLM request's `tool_calls` count; the model is in `model`, the tool names are
not recorded). Reads the `requests` rows that carry a tool call, newest first, up to
`MAX_ROWS`, and aggregates them here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import or_, select

from irisgate.store.database import Database
from irisgate.store.queries import iso_utc
from irisgate.store.tables import HTTP_FORMAT, MCP_FORMAT, requests

KINDS = ("mcp", "http", "model")
#: At most this many request rows are read for one report (`truncated` says when more).
MAX_ROWS = 200_000
MAX_SESSIONS = 100


def kind_of(api_format: str) -> str:
    if api_format == MCP_FORMAT:
        return "mcp"
    if api_format == HTTP_FORMAT:
        return "http"
    return "model"


async def tool_use(
    db: Database,
    *,
    since: date,
    until: date,
    login_name: str | None,
    model: str | None,
    tool: str | None,
) -> dict[str, Any]:
    """The report: `days` (calls per UTC day and kind), `tools` (per kind, connector, tool
    and model), `sessions` (per session, most calls first), `totals` per kind."""
    c = requests.c
    start = datetime.combine(since, time(), UTC)
    end = datetime.combine(until, time(), UTC)
    conditions = [
        c.started_at >= start,
        c.started_at < end,
        or_(c.tool_calls > 0, c.api_format.in_((MCP_FORMAT, HTTP_FORMAT))),
    ]
    if login_name is not None:
        conditions.append(c.login_name == login_name)
    if model is not None:  # the model that made the calls: model-side calls only
        conditions.append(c.model == model)
        conditions.append(c.api_format.not_in((MCP_FORMAT, HTTP_FORMAT)))
    if tool is not None:  # an MCP tool's name or a connector's id
        conditions.append(c.api_format.in_((MCP_FORMAT, HTTP_FORMAT)))
        conditions.append(or_(c.model == tool, c.provider == tool))
    query = (
        select(
            c.started_at,
            c.login_name,
            c.session_id,
            c.api_format,
            c.provider,
            c.model,
            c.tool_calls,
            c.status,
        )
        .where(*conditions)
        .order_by(c.started_at.desc())
        .limit(MAX_ROWS + 1)
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {**_aggregate(rows[:MAX_ROWS]), "truncated": len(rows) > MAX_ROWS}


def _aggregate(rows: Sequence[Any]) -> dict[str, Any]:
    days: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    tools: dict[tuple[str, str, str], dict[str, Any]] = {}
    sessions: dict[str, dict[str, Any]] = {}
    totals = dict.fromkeys(KINDS, 0)
    for row in rows:
        kind = kind_of(row.api_format)
        calls = row.tool_calls if kind == "model" else 1
        day = row.started_at.astimezone(UTC).date().isoformat()
        days[day][kind] += calls
        totals[kind] += calls
        if kind == "mcp":
            key = (kind, row.provider, row.model)
        elif kind == "http":
            key = (kind, row.provider, "")
        else:
            key = (kind, "", row.model)
        entry = tools.get(key)
        if entry is None:
            entry = tools[key] = {
                "kind": kind,
                "connector": key[1],
                "tool": row.model if kind == "mcp" else "",
                "model": row.model if kind == "model" else "",
                "calls": 0,
                "errors": 0,
                "users": set(),
            }
        entry["calls"] += calls
        entry["errors"] += kind != "model" and not 200 <= row.status < 400
        entry["users"].add(row.login_name)
        if row.session_id:
            session = sessions.get(row.session_id)
            if session is None:
                session = sessions[row.session_id] = {
                    "session_id": row.session_id,
                    "login_name": row.login_name,
                    "first_at": row.started_at,
                    "last_at": row.started_at,
                    **dict.fromkeys(KINDS, 0),
                    "calls": 0,
                }
            session[kind] += calls
            session["calls"] += calls
            session["first_at"] = min(session["first_at"], row.started_at)
            session["last_at"] = max(session["last_at"], row.started_at)
    tool_rows = sorted(tools.values(), key=lambda t: (-t["calls"], t["kind"], t["tool"]))
    for entry in tool_rows:
        entry["users"] = len(entry["users"])
    session_rows = sorted(sessions.values(), key=lambda s: (-s["calls"], s["session_id"]))
    for session in session_rows:
        session["first_at"] = iso_utc(session["first_at"])
        session["last_at"] = iso_utc(session["last_at"])
    return {
        "totals": {**totals, "calls": sum(totals.values())},
        "days": [{"day": day, **days[day]} for day in sorted(days)],
        "tools": tool_rows,
        "sessions": session_rows[:MAX_SESSIONS],
        "sessions_total": len(session_rows),
    }
