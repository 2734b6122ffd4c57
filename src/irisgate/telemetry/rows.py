"""The batch writer's rows and statements: a `RequestRecord` turned into the tuples the
database driver takes, and the statements they go into.

The writer's statements are compiled once (by SQLAlchemy, for the engine's dialect: the same
SQL text SQLAlchemy itself would send) and run with `exec_driver_sql` on rows that are plain
tuples in the driver's positional order. That skips SQLAlchemy's per-row parameter
processing; the few conversions the column types would make are done by `prepare` instead,
identically: `UTCDateTime` (naive UTC `YYYY-MM-DD HH:MM:SS.ffffff` text on SQLite, an aware
UTC datetime on PostgreSQL), `Boolean` (strictly None/True/False; 0/1 on SQLite), `Float`
(`float()` on SQLite) and `Date` (ISO text on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Insert
from sqlalchemy.engine import Dialect

from irisgate.store.tables import (
    ROLLUP_KEY_COLUMNS,
    ROLLUP_SHARD,
    ROLLUP_SUM_COLUMNS,
    captures,
    conflict_insert,
    requests,
    responses,
    usage_daily,
)
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.rollups import summing_upsert

#: The columns the writer fills, in table order, which is also the order of the tuples
#: `prepare` builds (checked against the compiled statements at start).
#: `exported_at` is the exporter's to set (see irisgate.exporters).
_REQUEST_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in requests.c if c.name not in ("id", "exported_at")
)
_CAPTURE_COLUMNS: tuple[str, ...] = tuple(c.name for c in captures.c)
#: rollup rows are built without their shard, which is appended when the transaction has one
_ROLLUP_COLUMNS: tuple[str, ...] = (*ROLLUP_KEY_COLUMNS, *ROLLUP_SUM_COLUMNS, ROLLUP_SHARD)
_RESPONSE_COLUMNS: tuple[str, ...] = tuple(c.name for c in responses.c)
# Positions in a request tuple that `without_nul` needs.
_LOGIN = _REQUEST_COLUMNS.index("login_name")
_MODEL = _REQUEST_COLUMNS.index("model")
_PROVIDER = _REQUEST_COLUMNS.index("provider")


class Prepared(NamedTuple):
    """One record turned into what the database statements take."""

    request_id: str
    request: tuple[Any, ...]  # driver values in _REQUEST_COLUMNS order
    capture: tuple[Any, ...]  # driver values in _CAPTURE_COLUMNS order
    rollup_key: tuple[date, str, str, str]
    rollup_amounts: tuple[int, ...]  # in ROLLUP_SUM_COLUMNS order
    response: tuple[Any, ...] | None = None  # _RESPONSE_COLUMNS order, when it created one
    headers: tuple[tuple[str, str], ...] = ()  # the record's indexed headers

    @property
    def dashboard_rollup(
        self,
    ) -> tuple[tuple[Any, ...], date, tuple[int, ...], tuple[tuple[str, str], ...]]:
        return (self.request, self.rollup_key[0], self.rollup_amounts, self.headers)


class Statements(NamedTuple):
    """The writer's statements as SQL text in the driver's positional paramstyle."""

    requests: str
    captures: str
    rollups: str
    responses: str


def prepare(record: RequestRecord, sqlite: bool) -> Prepared:
    """The rows for one record, as the driver takes them (`sqlite`: for SQLite, else for
    PostgreSQL). Pure CPU; this is the per-record cost of the writer.

    Values are converted exactly as the column types' bind processors would (see the
    module doc); a value they would refuse raises ValueError/TypeError/OverflowError here.
    """
    usage = record.usage
    total = usage.input_tokens + usage.output_tokens
    cost = record.cost_nanodollars
    started = record.started_at
    # UTCDateTime: a naive value is UTC already; SQLite stores naive UTC as text.
    utc = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
    day = utc.date()
    is_error = record.status >= 400 or bool(record.error)
    started_at: datetime | str
    if sqlite:
        started_at = _SQLITE_DATETIME % (
            utc.year,
            utc.month,
            utc.day,
            utc.hour,
            utc.minute,
            utc.second,
            utc.microsecond,
        )
        stream = _sqlite_bool(record.stream)
        cancelled = _sqlite_bool(record.cancelled)
        estimated = _sqlite_bool(record.usage_estimated)
        duration_ms = _sqlite_float(record.duration_ms)
        ttfb_ms = _sqlite_float(record.ttfb_ms)
        upstream_ms = _sqlite_float(record.upstream_ms)
    else:
        started_at = utc
        stream = _native_bool(record.stream)
        cancelled = _native_bool(record.cancelled)
        estimated = _native_bool(record.usage_estimated)
        duration_ms = record.duration_ms
        ttfb_ms = record.ttfb_ms
        upstream_ms = record.upstream_ms
    counts = (  # USAGE_FIELDS order, in both the request row and the rollup amounts
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
        usage.reasoning_tokens,
        usage.image_input_tokens,
        usage.image_output_tokens,
        usage.web_search_count,
    )
    request_row = (  # _REQUEST_COLUMNS order
        record.request_id,
        started_at,
        record.login_name,
        record.display_name,
        record.node_id,
        record.node_name,
        ",".join(record.tags),
        record.method,
        record.path,
        record.api_format,
        record.api_type,
        record.model,
        record.provider,
        stream,
        record.status,
        record.error,
        cancelled,
        duration_ms,
        ttfb_ms,
        upstream_ms,
        *counts,
        total,
        cost,
        record.cost_basis,
        record.session_id,
        record.user_agent,
        record.config_version,
        record.tool_calls,
        record.request_bytes,
        record.response_bytes,
        estimated,
        record.key_id,
        record.key_name,
        orjson.dumps(record.attempts).decode() if record.attempts else None,
        record.upstream_format,
        record.kind,
        record.unit,
        record.units,
    )
    capture_row = (  # _CAPTURE_COLUMNS order
        record.request_id,
        orjson.dumps(record.request_headers, default=str).decode(),
        orjson.dumps(record.response_headers, default=str).decode(),
        bytes(record.request_body),
        bytes(record.response_body),
        record.response_raw,
        None if record.response_raw is None else record.response_raw_encoding,
        bytes(record.upstream_request_body) if record.upstream_format else None,
        bytes(record.upstream_response_body) if record.upstream_format else None,
    )
    amounts = (
        (  # ROLLUP_SUM_COLUMNS order; () keeps the record out of the rollup
            1,
            *counts,
            total,
            cost if cost is not None else 0,
            1 if cost is None else 0,
            1 if is_error else 0,
            total if cost is not None else 0,
        )
        if record.counts_as_usage
        else ()
    )
    key = (day, record.login_name, record.model, record.provider)
    response = (
        (
            record.response_id,
            record.provider,
            record.model,
            record.login_name,
            record.request_id,
            started_at,
        )
        if record.response_id
        else None
    )
    return Prepared(
        record.request_id,
        request_row,
        capture_row,
        key,
        amounts,
        response,
        tuple((str(name), str(value)) for name, value in record.indexed_headers),
    )


#: SQLAlchemy's SQLite `DATETIME` storage format (applied to the naive UTC value).
_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_STRICT_BOOLS = frozenset([None, True, False])


def _checked_bool(value: object) -> bool | None:
    """SQLAlchemy's `Boolean` check: only None, True or False (or a number equal to one)."""
    if value not in _STRICT_BOOLS:
        if not isinstance(value, int):
            raise TypeError(f"Not a boolean value: {value!r}")
        raise ValueError(f"Value {value!r} is not None, True, or False")
    return None if value is None else bool(value)


def _native_bool(value: object) -> bool | None:
    """A `Boolean` bind value where the database has a boolean type (PostgreSQL)."""
    if value is True or value is False:
        return value
    return _checked_bool(value)


def _sqlite_bool(value: object) -> int | None:
    """A `Boolean` bind value for SQLite, which stores 0/1."""
    if value is True:
        return 1
    if value is False:
        return 0
    checked = _checked_bool(value)
    return None if checked is None else int(checked)


def _sqlite_float(value: Any) -> float | None:
    """A `Float` bind value for SQLite (its bind processor calls float())."""
    return None if value is None else float(value)


def without_nul(prepared: Prepared) -> Prepared:
    """`prepared` with NUL characters removed from its text values, or `prepared` itself
    when it has none."""
    if not any(isinstance(v, str) and "\x00" in v for v in prepared.request) and not any(
        "\x00" in name or "\x00" in value for name, value in prepared.headers
    ):
        return prepared

    def clean(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v.replace("\x00", "") if isinstance(v, str) else v for v in values)

    request = clean(prepared.request)
    day = prepared.rollup_key[0]
    return Prepared(
        request_id=request[0],
        request=request,
        capture=clean(prepared.capture),
        rollup_key=(day, request[_LOGIN], request[_MODEL], request[_PROVIDER]),
        rollup_amounts=prepared.rollup_amounts,
        response=None if prepared.response is None else clean(prepared.response),
        headers=tuple((n.replace("\x00", ""), v.replace("\x00", "")) for n, v in prepared.headers),
    )


def rollup_rows(chunk: Sequence[Prepared], sqlite: bool) -> list[tuple[Any, ...]]:
    """The batch summed per usage_daily key, in key order, as driver values in
    _ROLLUP_COLUMNS order but the last (the shard, which the transaction appends; the
    `Date` key as ISO text on SQLite)."""
    groups: dict[tuple[date, str, str, str], list[tuple[int, ...]]] = {}
    for prepared in chunk:
        if not prepared.rollup_amounts:
            continue
        amounts = groups.get(prepared.rollup_key)
        if amounts is None:
            groups[prepared.rollup_key] = [prepared.rollup_amounts]
        else:
            amounts.append(prepared.rollup_amounts)
    return [
        (
            day.isoformat() if sqlite else day,
            login,
            model,
            provider,
            *map(sum, zip(*amounts, strict=True)),
        )
        for (day, login, model, provider), amounts in sorted(groups.items())
    ]


def compile_statements(dialect: Dialect) -> Statements:
    """The writer's statements compiled for `dialect`, checked to take their
    parameters in the order `prepare` and `rollup_rows` put them."""

    def compile_(statement: Insert, columns: tuple[str, ...]) -> str:
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        order = compiled.positiontup
        if order is None or tuple(order) != columns:
            raise RuntimeError(
                f"the batch writer's {statement.table.name} columns {columns} do not match "
                f"the compiled statement's parameters {order}"
            )
        return compiled.string

    return Statements(
        requests=compile_(requests.insert(), _REQUEST_COLUMNS),
        captures=compile_(captures.insert(), _CAPTURE_COLUMNS),
        rollups=compile_(
            summing_upsert(dialect.name, usage_daily, ROLLUP_KEY_COLUMNS, ROLLUP_SUM_COLUMNS),
            _ROLLUP_COLUMNS,
        ),
        responses=compile_(_response_insert(dialect.name), _RESPONSE_COLUMNS),
    )


def _response_insert(dialect: str) -> Insert:
    """`INSERT INTO responses … ON CONFLICT DO NOTHING`: an id seen twice keeps its first
    creator (a duplicate must not make the whole record look unacceptable)."""
    insert: Insert = conflict_insert(dialect, responses).on_conflict_do_nothing(
        index_elements=["response_id"]
    )
    return insert
