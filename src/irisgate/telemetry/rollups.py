"""The dashboard's extra rollups, written by the batch writer beside `usage_daily`.

`usage_agent_daily` sums requests per (UTC day, login, agent program) and `sessions` per
(login, session id), with first/last request times. `tool_use_daily` counts tool calls per
(day, login, session, kind, connector, tool, model); `usage_facets_daily` sums usage per
(day, login, model, provider, agent, status code) plus once per indexed header value. Like
`usage_daily`, each batch is summed per key first, then one upsert per key adds the sums
to the transaction's shard of the key (`irisgate.telemetry.shards`), keys in sorted order.

The writer hands over its prepared rows (driver values in `requests` column order) plus each
record's rollup amounts, so nothing here converts values again. The rows built here lack
their last value, the shard, which the writer appends once its transaction has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Insert, Table, func
from sqlalchemy.engine import Dialect

from irisgate.store.tables import (
    AGENT_ROLLUP_KEY_COLUMNS,
    FACET_KEY_COLUMNS,
    HTTP_FORMAT,
    MCP_FORMAT,
    ROLLUP_SHARD,
    ROLLUP_SUM_COLUMNS,
    SESSION_SUM_COLUMNS,
    TOOL_KEY_COLUMNS,
    conflict_insert,
    requests,
    sessions,
    tool_use_daily,
    usage_agent_daily,
    usage_facets_daily,
)
from irisgate.usage.agents import agent_name

_SESSION_KEY = ("login_name", "session_id")
_SESSION_COLUMNS = (
    *_SESSION_KEY,
    "agent",
    "first_at",
    "last_at",
    *SESSION_SUM_COLUMNS,
    ROLLUP_SHARD,
)
_AGENT_COLUMNS = (*AGENT_ROLLUP_KEY_COLUMNS, *ROLLUP_SUM_COLUMNS, ROLLUP_SHARD)
_TOOL_SUMS = ("calls", "errors")
_TOOL_COLUMNS = (*TOOL_KEY_COLUMNS, *_TOOL_SUMS, "first_at", "last_at", ROLLUP_SHARD)
_FACET_COLUMNS = (*FACET_KEY_COLUMNS, *ROLLUP_SUM_COLUMNS, ROLLUP_SHARD)
_REQUEST_COLUMNS = tuple(c.name for c in requests.c if c.name not in ("id", "exported_at"))
_AT = _REQUEST_COLUMNS.index("started_at")
_LOGIN = _REQUEST_COLUMNS.index("login_name")
_SESSION = _REQUEST_COLUMNS.index("session_id")
_AGENT = _REQUEST_COLUMNS.index("user_agent")
_STATUS = _REQUEST_COLUMNS.index("status")
_ERROR = _REQUEST_COLUMNS.index("error")
_FORMAT = _REQUEST_COLUMNS.index("api_format")
_MODEL = _REQUEST_COLUMNS.index("model")
_PROVIDER = _REQUEST_COLUMNS.index("provider")
_TOOL_CALLS = _REQUEST_COLUMNS.index("tool_calls")
_KIND = _REQUEST_COLUMNS.index("kind")
# Where each session sum comes from in the usage_daily amounts (ROLLUP_SUM_COLUMNS order).
_SESSION_FROM = tuple(ROLLUP_SUM_COLUMNS.index(name) for name in SESSION_SUM_COLUMNS)

#: (request row, day, usage amounts, indexed headers)
Rollup = tuple[tuple[Any, ...], date, tuple[int, ...], tuple[tuple[str, str], ...]]


class DashboardRollups:
    """The dashboard rollups' upserts for one dialect, and the rows a batch adds to them."""

    def __init__(self, dialect: Dialect) -> None:
        self._sqlite = dialect.name == "sqlite"
        name = dialect.name
        agents = summing_upsert(
            name, usage_agent_daily, AGENT_ROLLUP_KEY_COLUMNS, ROLLUP_SUM_COLUMNS
        )
        sessions_ = summing_upsert(name, sessions, _SESSION_KEY, SESSION_SUM_COLUMNS, spans=True)
        tools = summing_upsert(name, tool_use_daily, TOOL_KEY_COLUMNS, _TOOL_SUMS, spans=True)
        facets = summing_upsert(name, usage_facets_daily, FACET_KEY_COLUMNS, ROLLUP_SUM_COLUMNS)
        self.agents_sql = _compile(agents, _AGENT_COLUMNS, dialect)
        self.sessions_sql = _compile(sessions_, _SESSION_COLUMNS, dialect)
        self.tools_sql = _compile(tools, _TOOL_COLUMNS, dialect)
        self.facets_sql = _compile(facets, _FACET_COLUMNS, dialect)

    def _day(self, day: date) -> Any:
        return day.isoformat() if self._sqlite else day

    def agent_rows(self, batch: Sequence[Rollup]) -> list[tuple[Any, ...]]:
        groups: dict[tuple[date, str, str], list[int]] = {}
        for row, day, amounts, _headers in batch:
            if not amounts:  # a connector call: not model usage
                continue
            key = (day, row[_LOGIN], agent_name(row[_AGENT]))
            sums = groups.get(key)
            if sums is None:
                groups[key] = list(amounts)
            else:
                for i, amount in enumerate(amounts):
                    sums[i] += amount
        return [
            (day.isoformat() if self._sqlite else day, login, agent, *sums)
            for (day, login, agent), sums in sorted(groups.items())
        ]

    def session_rows(self, batch: Sequence[Rollup]) -> list[tuple[Any, ...]]:
        groups: dict[tuple[str, str], list[Any]] = {}
        for row, _day, usage_amounts, _headers in batch:
            if not row[_SESSION]:
                continue
            # a connector call has no usage amounts: one request of the session, no tokens
            amounts = usage_amounts or _connector_call_amounts(row)
            key = (row[_LOGIN], row[_SESSION])
            at = row[_AT]
            found = groups.get(key)
            if found is None:
                groups[key] = [
                    agent_name(row[_AGENT]),
                    at,
                    at,
                    *(amounts[i] for i in _SESSION_FROM),
                ]
                continue
            found[1] = min(found[1], at)
            found[2] = max(found[2], at)
            for offset, i in enumerate(_SESSION_FROM, start=3):
                found[offset] += amounts[i]
        return [(*key, *values) for key, values in sorted(groups.items())]

    def tool_rows(self, batch: Sequence[Rollup]) -> list[tuple[Any, ...]]:
        """Calls per tool key: one per connector record (an error when it failed), the
        record's `tool_calls` for a model's answer that asked for tools."""
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for row, day, _amounts, _headers in batch:
            api_format = row[_FORMAT]
            if api_format == MCP_FORMAT:
                kind, connector, tool, model = "mcp", row[_PROVIDER], row[_MODEL], ""
            elif api_format == HTTP_FORMAT:
                kind, connector, tool, model = "http", row[_PROVIDER], "", ""
            elif row[_TOOL_CALLS] > 0:
                kind, connector, tool, model = "model", "", "", row[_MODEL]
            else:
                continue
            calls = row[_TOOL_CALLS] if kind == "model" else 1
            failed = kind != "model" and (row[_STATUS] >= 400 or bool(row[_ERROR]))
            key = (self._day(day), row[_LOGIN], row[_SESSION], kind, connector, tool, model)
            at = row[_AT]
            found = groups.get(key)
            if found is None:
                groups[key] = [calls, int(failed), at, at]
                continue
            found[0] += calls
            found[1] += int(failed)
            found[2] = min(found[2], at)
            found[3] = max(found[3], at)
        return [(*key, *values) for key, values in sorted(groups.items())]

    def facet_rows(self, batch: Sequence[Rollup]) -> list[tuple[Any, ...]]:
        """Usage per facet key: once with header '' and once per indexed header."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for row, day, amounts, headers in batch:
            if not amounts:  # a connector call: not model usage
                continue
            base = (
                self._day(day),
                row[_LOGIN],
                row[_MODEL],
                row[_PROVIDER],
                agent_name(row[_AGENT]),
                row[_STATUS],
                row[_KIND],
            )
            for header in (("", ""), *headers):
                key = (*base, *header)
                sums = groups.get(key)
                if sums is None:
                    groups[key] = list(amounts)
                else:
                    for i, amount in enumerate(amounts):
                        sums[i] += amount
        return [(*key, *sums) for key, sums in sorted(groups.items())]


def _compile(statement: Insert, columns: tuple[str, ...], dialect: Dialect) -> str:
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    if compiled.positiontup is None or tuple(compiled.positiontup) != columns:
        raise RuntimeError(f"{statement.table.name}: parameters {compiled.positiontup}")
    return compiled.string


def summing_upsert(
    dialect: str, table: Table, key: Sequence[str], sums: Sequence[str], *, spans: bool = False
) -> Insert:
    """`INSERT INTO table … ON CONFLICT (key, shard) DO UPDATE SET x = table.x + excluded.x`
    for every sum column; with `spans`, also the earliest `first_at` and latest `last_at`."""
    stmt = conflict_insert(dialect, table)
    update: dict[str, Any] = {name: table.c[name] + stmt.excluded[name] for name in sums}
    if spans:
        # two-argument min/max are scalar in SQLite; PostgreSQL spells them least/greatest
        least, greatest = (
            (func.min, func.max) if dialect == "sqlite" else (func.least, func.greatest)
        )
        update["first_at"] = least(table.c.first_at, stmt.excluded.first_at)
        update["last_at"] = greatest(table.c.last_at, stmt.excluded.last_at)
    result: Insert = stmt.on_conflict_do_update(index_elements=[*key, ROLLUP_SHARD], set_=update)
    return result


def _connector_call_amounts(row: tuple[Any, ...]) -> tuple[int, ...]:
    """Session sums for a record without usage (an MCP tool call or HTTP connector request):
    it counts as a request of its session, and as an error when it failed."""
    amounts = [0] * len(ROLLUP_SUM_COLUMNS)
    amounts[ROLLUP_SUM_COLUMNS.index("requests")] = 1
    failed = row[_STATUS] >= 400 or bool(row[_ERROR])
    amounts[ROLLUP_SUM_COLUMNS.index("error_requests")] = 1 if failed else 0
    return tuple(amounts)
