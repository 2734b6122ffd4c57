"""The read side of the request store, for the management API and the dashboard.

Every function returns plain JSON-ready values: timestamps as ISO 8601 UTC strings ending in
`Z` (millisecond precision), days as `YYYY-MM-DD`, `tags` as a list of strings, money as
integer nanodollars (`cost_nanodollars` is null when the request was not priced).

Time ranges are half-open: `since` inclusive, `until` exclusive.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, ColumnElement, RowMapping, cast, func, select

from irisgate.store.database import Database
from irisgate.store.tables import (
    ROLLUP_KEY_COLUMNS,
    ROLLUP_SUM_COLUMNS,
    captures,
    requests,
    responses,
    usage_daily,
)

#: Most rows one `list_requests` call returns.
MAX_LIMIT = 1000


async def list_requests(
    db: Database,
    *,
    login_name: str | None = None,
    model: str | None = None,
    session_id: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Request rows (no capture), newest first, filtered by the arguments that are not None.

    Newest means highest `id` (the order the writer stored them in). Pagination is by
    cursor: pass the `id` of the last row of a page as `before_id` to get the next page.
    `limit` is clamped to 1..`MAX_LIMIT`.
    """
    conditions: list[ColumnElement[bool]] = []
    if login_name is not None:
        conditions.append(requests.c.login_name == login_name)
    if model is not None:
        conditions.append(requests.c.model == model)
    if session_id is not None:
        conditions.append(requests.c.session_id == session_id)
    if kind is not None:
        conditions.append(requests.c.kind == kind)
    if since is not None:
        conditions.append(requests.c.started_at >= since)
    if until is not None:
        conditions.append(requests.c.started_at < until)
    if before_id is not None:
        conditions.append(requests.c.id < before_id)
    query = (
        select(requests)
        .where(*conditions)
        .order_by(requests.c.id.desc())
        .limit(max(1, min(limit, MAX_LIMIT)))
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_request(row) for row in rows]


async def get_request(db: Database, request_id: str) -> dict[str, Any] | None:
    """One request row with its capture, or None when there is no such request.

    Added to the row: `captured` (False once retention purged the capture, or when none was
    stored), `request_headers` and `response_headers` as dicts, and `request_body` /
    `response_body` as text when the bytes are valid UTF-8, else base64, with
    `request_body_encoding` / `response_body_encoding` set to `"utf-8"` or `"base64"`
    (bodies and encodings are None when not captured). `response_raw` is the raw upstream
    answer kept under `database.save_raws`, base64, with `response_raw_encoding` its
    content-encoding ("" for identity); both None when not kept or purged. A translated
    request (`upstream_format` set) also has `upstream_request_body` and
    `upstream_response_body`, the provider's side (None otherwise), encoded likewise.
    """
    capture_columns = [c for c in captures.c if c.name != "request_id"]
    query = (
        select(requests, captures.c.request_id.label("capture_id"), *capture_columns)
        .select_from(requests.outerjoin(captures))
        .where(requests.c.request_id == request_id)
    )
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    result = _request(row)
    captured = row["capture_id"] is not None
    result["captured"] = captured
    result["request_headers"] = _headers(row["request_headers"]) if captured else {}
    result["response_headers"] = _headers(row["response_headers"]) if captured else {}
    for name in ("request_body", "response_body"):
        body, encoding = _body(row[name]) if captured else (None, None)
        result[name] = body
        result[f"{name}_encoding"] = encoding
    for name in ("upstream_request_body", "upstream_response_body"):
        value = row[name] if captured else None
        body, encoding = _body(value) if value is not None else (None, None)
        result[name] = body
        result[f"{name}_encoding"] = encoding
    raw = row["response_raw"] if captured else None
    result["response_raw"] = None if raw is None else base64.b64encode(raw).decode("ascii")
    result["response_raw_encoding"] = None if raw is None else row["response_raw_encoding"]
    return result


async def response_origin(db: Database, response_id: str) -> dict[str, str] | None:
    """Who created an OpenAI Responses API response, and where: `provider`, `model`,
    `login_name` and `request_id`; None when irisgate never recorded it."""
    query = select(
        responses.c.provider, responses.c.model, responses.c.login_name, responses.c.request_id
    ).where(responses.c.response_id == response_id)
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def daily_usage(
    db: Database,
    *,
    since: date,
    until: date,
    login_name: str | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """`usage_daily` rows for UTC days `since` <= day < `until`, ordered by day, login,
    model and provider; each has the key, `requests`, every token counter, `total_tokens`,
    `cost_nanodollars` (sum over priced requests), `unpriced_requests` and `error_requests`.
    """
    conditions: list[ColumnElement[bool]] = [
        usage_daily.c.day >= _day(since),
        usage_daily.c.day < _day(until),
    ]
    if login_name is not None:
        conditions.append(usage_daily.c.login_name == login_name)
    if model is not None:
        conditions.append(usage_daily.c.model == model)
    keys = [usage_daily.c[name] for name in ROLLUP_KEY_COLUMNS]
    # a key's shards (see tables.ROLLUP_SHARD) summed; cast: PostgreSQL's SUM of a BIGINT
    # is NUMERIC
    sums = [
        cast(func.sum(usage_daily.c[name]), BigInteger).label(name) for name in ROLLUP_SUM_COLUMNS
    ]
    query = select(*keys, *sums).where(*conditions).group_by(*keys).order_by(*keys)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [{**row, "day": row["day"].isoformat()} for row in rows]


def iso_utc(moment: datetime) -> str:
    """`moment` as ISO 8601 in UTC with a `Z` suffix, e.g. `2025-01-31T12:00:00.250Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_REQUEST_COLUMNS = tuple(column.name for column in requests.c)


def _request(row: RowMapping) -> dict[str, Any]:
    result = {name: row[name] for name in _REQUEST_COLUMNS}
    result["started_at"] = iso_utc(row["started_at"])
    exported_at = row["exported_at"]  # when the S3 exporter delivered it; None until then
    result["exported_at"] = iso_utc(exported_at) if exported_at is not None else None
    result["tags"] = row["tags"].split(",") if row["tags"] else []
    result["stream"] = bool(row["stream"])
    result["cancelled"] = bool(row["cancelled"])
    result["usage_estimated"] = bool(row["usage_estimated"])
    attempts = row["attempts"]
    result["attempts"] = orjson.loads(attempts) if attempts else []
    return result


def _headers(stored: str | None) -> dict[str, Any]:
    if not stored:
        return {}
    decoded = orjson.loads(stored)
    return decoded if isinstance(decoded, dict) else {}


def _body(stored: bytes | None) -> tuple[str, str]:
    data = bytes(stored) if stored is not None else b""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _day(value: date) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo is not None else value.date()
    return value


async def spend_by_model(db: Database, login_name: str, since: date) -> dict[str, int]:
    """`provider/model` -> what `login_name` spent on it (nanodollars) from UTC day `since`
    on, from the daily rollup (the dashboard's burn rates)."""
    query = (
        select(
            usage_daily.c.provider,
            usage_daily.c.model,
            func.sum(usage_daily.c.cost_nanodollars).label("cost"),
        )
        .where(usage_daily.c.login_name == login_name, usage_daily.c.day >= since)
        .group_by(usage_daily.c.provider, usage_daily.c.model)
    )
    async with db.connect() as conn:
        rows = await conn.execute(query)
        return {f"{r.provider}/{r.model}": int(r.cost or 0) for r in rows}
