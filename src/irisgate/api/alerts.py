"""Alert endpoints: the notification list and its unread count (irisgate.alerts).

- `GET /api/alerts[?limit=N&before=ID&all=0]`: the caller's alerts newest first, each with
  `read`; a user sees the alerts that concern them (their own `<user>` buckets' budget
  alerts, their spend spikes), an admin sees every alert with its deliveries (`all=0`: only
  their own), plus `failed_deliveries`: deliveries that failed and are retried or were given
  up. `unread` counts the list's unread alerts.
- `GET /api/alerts/unread`: just the count (the dashboard's bell).
- `POST /api/alerts/read` `{"ids": [1, 2]}` or `{"all": true}`: mark alerts read for the
  caller (only alerts they may see); answers how many became read and the new count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.alerts import table
from irisgate.api.body import json_object
from irisgate.handlers import (
    ApiError,
    Caller,
    int_param,
    json_response,
    query_value,
    require_role,
    runtime_of,
)

#: most ids one mark-read request may name
MAX_READ_IDS = 500


def _scope(caller: Caller, request: Request | None = None) -> str | None:
    """Whose alerts the caller's list holds: None (all) for admins unless `all=0`."""
    if caller.is_admin and (request is None or query_value(request, "all") not in ("0", "false")):
        return None
    return caller.identity.login_name


async def list_alerts(request: Request) -> Response:
    caller = await require_role(request)
    db = runtime_of(request).db
    scope = _scope(caller, request)
    reader = caller.identity.login_name
    limit = int_param(request, "limit", 50, 1, 200)
    before = int_param(request, "before", 0, 1, 2**62) or None
    rows = await table.listing(db, login_name=scope, reader=reader, limit=limit, before=before)
    out: dict[str, Any] = {
        "alerts": [_shown(row) for row in rows],
        "unread": await table.unread(db, login_name=scope, reader=reader),
        "next_before": rows[-1]["id"] if len(rows) == limit else None,
    }
    if scope is None:
        out["failed_deliveries"] = [_times(d) for d in await table.failed_deliveries(db, limit=50)]
    return json_response(out)


async def unread_count(request: Request) -> Response:
    caller = await require_role(request)
    count = await table.unread(
        runtime_of(request).db, login_name=_scope(caller), reader=caller.identity.login_name
    )
    return json_response({"unread": count})


async def mark_read(request: Request) -> Response:
    caller = await require_role(request)
    payload = await json_object(request, '{"ids": [1, 2]} or {"all": true}')
    ids = _ids(payload)
    db = runtime_of(request).db
    scope = _scope(caller)
    reader = caller.identity.login_name
    marked = await table.mark_read(
        db, reader=reader, ids=ids, login_name=scope, now=datetime.now(UTC)
    )
    return json_response(
        {"marked": marked, "unread": await table.unread(db, login_name=scope, reader=reader)}
    )


def _ids(payload: dict[str, Any]) -> list[int] | None:
    """The ids to mark read (None: all), from exactly `{"ids": [...]}` or `{"all": true}`."""
    if set(payload) == {"all"}:
        if payload["all"] is not True:
            raise ApiError(400, "'all' must be true (or send 'ids')")
        return None
    if set(payload) != {"ids"}:
        raise ApiError(400, 'body must be {"ids": [1, 2]} or {"all": true}, nothing else')
    raw = payload["ids"]
    if isinstance(raw, list):  # JSON has one number type: 7.0 is the id 7
        raw = [int(i) if isinstance(i, float) and i.is_integer() else i for i in raw]
    if (
        not isinstance(raw, list)
        or not raw
        or len(raw) > MAX_READ_IDS
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in raw)
    ):
        raise ApiError(
            400,
            f"'ids' must be a list of 1 to {MAX_READ_IDS} alert ids (positive integers),"
            ' or send {"all": true}',
        )
    return sorted(set(raw))


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "kind": row["kind"],
        "subject": row["subject"],
        "threshold": row["threshold"] or None,
        "episode": row["episode"],
        "severity": row["severity"],
        "message": row["message"],
        "user": row["login_name"] or None,
        "raised_at": _iso(row["raised_at"]),
        "cleared_at": _iso(row["cleared_at"]),
        "read": bool(row["read"]),
    }
    if "deliveries" in row:
        out["deliveries"] = [_times(d) for d in row["deliveries"]]
    return out


def _times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


routes = [
    Route("/api/alerts", list_alerts, methods=["GET"]),
    Route("/api/alerts/unread", unread_count, methods=["GET"]),
    Route("/api/alerts/read", mark_read, methods=["POST"]),
]
