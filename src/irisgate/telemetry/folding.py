"""The rollup fold: partial rows of keys nobody writes any more merged into their shard 0.

Each batch-writer transaction adds to its own shard of a rollup key (`telemetry/shards.py`),
so on PostgreSQL a key gets a partial row per writer that wrote it at the same time, and
without folding those rows would stay for good: the tables, and what every read sums,
would grow with the number of writers. `RollupFold`, a background worker of every
instance, folds them every `FOLD_EVERY_S` (and at start):

- `usage_daily`, `usage_agent_daily`, `tool_use_daily` and `usage_facets_daily` rows of days
  before the current UTC day, and
- `sessions` rows whose last request is older than `SESSION_QUIET`,

each table with ONE statement, whatever the number of keys. On PostgreSQL that statement
deletes the partial rows and adds their sums, per key, to the key's shard 0
(`WITH moved AS (DELETE … RETURNING …) INSERT … SELECT … GROUP BY key ON CONFLICT DO UPDATE`),
so a key's totals are the same before and after, at every moment: readers see either the
partial rows or shard 0 with their sums, never both and never neither.

It never queues behind the writers, nor they behind it: the fold first takes the advisory
locks of shard 0 and of up to `FOLD_SHARDS` other shards that no transaction holds at that
moment, with `pg_try_advisory_xact_lock` (never waiting), and folds only those shards'
rows. A writer transaction only writes the shard whose lock it holds, so while the fold runs
nobody writes its rows (writers take the other shards, which stay free for them), and once
it commits they take the folded shards again. When shard 0 is in use, or another instance
folds at that moment, this round does nothing. The rows outside shard 0 are found through
partial indexes (migrations 0015 and 0016), so a round costs as much as there is to fold.

SQLite has one writer at a time and writes shard 0 only: the same fold (an insert and a
delete in one write transaction) finds nothing there, except in a database copied from
PostgreSQL, and folds that exactly too.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from irisgate.store.database import Database
from irisgate.store.tables import (
    AGENT_ROLLUP_KEY_COLUMNS,
    FACET_KEY_COLUMNS,
    ROLLUP_KEY_COLUMNS,
    ROLLUP_SUM_COLUMNS,
    SESSION_SUM_COLUMNS,
    TOOL_KEY_COLUMNS,
)
from irisgate.telemetry.shards import LOCK_CLASS, SHARDS

log = structlog.get_logger("irisgate.rollups")

#: how often each instance folds (a round with nothing to fold costs three index look-ups)
FOLD_EVERY_S = 60.0
#: a session's partial rows are folded once its last request is this old
SESSION_QUIET = timedelta(minutes=10)
#: shards besides shard 0 one round folds at most: the rest stay free for the writers, so a
#: writer never finds every shard taken while the fold runs
FOLD_SHARDS = 15


@dataclass(frozen=True, slots=True)
class _Rollup:
    """One rollup table: its key, its summed columns, and the column that says how old a
    row is (compared with `< :before`)."""

    table: str
    key: tuple[str, ...]
    sums: tuple[str, ...]
    age: str
    #: columns merged otherwise than summed: name -> (SQL function of two values on
    #: PostgreSQL, on SQLite, aggregate over the moved rows)
    merged: tuple[tuple[str, str, str, str], ...] = ()

    def statements(self, dialect: str) -> list[str]:
        """The fold of this table: one statement on PostgreSQL, two on SQLite (inside one
        write transaction, SQLite having a single writer)."""
        key = ", ".join(self.key)
        merged = [name for name, *_ in self.merged]
        columns = ", ".join((*self.key, *merged, *self.sums, "shard"))
        aggregates = ", ".join(
            (
                *(f"{aggregate}({name})" for name, _, _, aggregate in self.merged),
                *(f"SUM({name})" for name in self.sums),
            )
        )
        sets = ", ".join(
            (
                *(
                    f"{name} = {pg if dialect == 'postgresql' else lite}"
                    f"({self.table}.{name}, excluded.{name})"
                    for name, pg, lite, _ in self.merged
                ),
                *(f"{name} = {self.table}.{name} + excluded.{name}" for name in self.sums),
            )
        )
        upsert = f"ON CONFLICT ({key}, shard) DO UPDATE SET {sets}"
        if dialect == "postgresql":
            returned = ", ".join((*self.key, *merged, *self.sums))
            return [
                f"WITH moved AS (DELETE FROM {self.table} "  # noqa: S608 - constants only
                f"WHERE shard <> 0 AND shard = ANY(:shards) AND {self.age} < :before "
                f"RETURNING {returned}) "
                f"INSERT INTO {self.table} ({columns}) "
                f"SELECT {key}, {aggregates}, 0 FROM moved GROUP BY {key} ORDER BY {key} "
                f"{upsert}"
            ]
        moving = f"shard <> 0 AND {self.age} < :before"
        return [
            f"INSERT INTO {self.table} ({columns}) "  # noqa: S608 - constants only
            f"SELECT {key}, {aggregates}, 0 FROM {self.table} WHERE {moving} "
            f"GROUP BY {key} ORDER BY {key} {upsert}",
            f"DELETE FROM {self.table} WHERE {moving}",  # noqa: S608 - constants only
        ]


_DAILY = _Rollup("usage_daily", ROLLUP_KEY_COLUMNS, ROLLUP_SUM_COLUMNS, "day")
_AGENTS = _Rollup("usage_agent_daily", AGENT_ROLLUP_KEY_COLUMNS, ROLLUP_SUM_COLUMNS, "day")
_TOOLS = _Rollup(
    "tool_use_daily",
    TOOL_KEY_COLUMNS,
    ("calls", "errors"),
    "day",
    (("first_at", "LEAST", "MIN", "MIN"), ("last_at", "GREATEST", "MAX", "MAX")),
)
_FACETS = _Rollup("usage_facets_daily", FACET_KEY_COLUMNS, ROLLUP_SUM_COLUMNS, "day")
#: the rollups whose rows are keyed by day (folded once their day is over)
_BY_DAY = (_DAILY, _AGENTS, _TOOLS, _FACETS)
_SESSIONS = _Rollup(
    "sessions",
    ("login_name", "session_id"),
    SESSION_SUM_COLUMNS,
    "last_at",
    # readers take the earliest first_at, the latest last_at and the least agent name
    (
        ("agent", "LEAST", "MIN", "MIN"),
        ("first_at", "LEAST", "MIN", "MIN"),
        ("last_at", "GREATEST", "MAX", "MAX"),
    ),
)

#: shard 0 first: without it there is nowhere to fold to
_TAKE_ZERO = text(f"SELECT pg_try_advisory_xact_lock({LOCK_CLASS}, 0)")
#: then up to FOLD_SHARDS free ones among 1..SHARDS-1, each round starting where the last
#: one's share ended (`_starts`), so that any three rounds reach every shard; LIMIT stops at
#: the last lock taken
_TAKE_OTHERS = text(
    f"SELECT (g + :start) % {SHARDS - 1} + 1 FROM generate_series(0, {SHARDS - 2}) AS g "  # noqa: S608
    f"WHERE pg_try_advisory_xact_lock({LOCK_CLASS}, (g + :start) % {SHARDS - 1} + 1) "
    f"LIMIT {FOLD_SHARDS}"
)

_starts = itertools.count(0, FOLD_SHARDS)


async def fold(db: Database, *, days_before: date, sessions_before: datetime) -> int:
    """Fold the rollup rows of days before `days_before` and the session rows last written
    before `sessions_before` into their keys' shard 0; returns the keys folded (0 when
    shard 0 or every other shard was in use)."""
    if db.dialect == "sqlite":
        return await db.write_in_thread(
            lambda conn: _fold_sqlite(conn, days_before, sessions_before)
        )
    async with db.begin() as conn:
        return await _fold_postgresql(conn, days_before, sessions_before)


async def _fold_postgresql(conn: AsyncConnection, days: date, quiet: datetime) -> int:
    if not (await conn.execute(_TAKE_ZERO)).scalar():
        return 0
    start = next(_starts) % (SHARDS - 1)
    shards = [int(s) for s in (await conn.execute(_TAKE_OTHERS, {"start": start})).scalars()]
    if not shards:
        return 0
    folded = 0
    due: list[tuple[_Rollup, Any]] = [(rollup, days) for rollup in _BY_DAY]
    for rollup, before in (*due, (_SESSIONS, quiet)):
        (statement,) = rollup.statements("postgresql")
        params: dict[str, Any] = {"shards": shards, "before": before}
        folded += (await conn.execute(text(statement), params)).rowcount  # keys upserted
    return folded


def _fold_sqlite(conn: Connection, days: date, quiet: datetime) -> int:
    folded = 0
    # the stored forms: a Date as ISO text, a UTCDateTime as naive UTC text
    stamp = quiet.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    due: list[tuple[_Rollup, str]] = [(rollup, days.isoformat()) for rollup in _BY_DAY]
    for rollup, before in (*due, (_SESSIONS, stamp)):
        upsert, remove = rollup.statements("sqlite")
        folded += conn.execute(text(upsert), {"before": before}).rowcount  # keys upserted
        conn.execute(text(remove), {"before": before})
    return folded


class RollupFold:
    """The background fold of this instance (see the module doc)."""

    def __init__(self, db: Database, *, every_s: float = FOLD_EVERY_S) -> None:
        self._db = db
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None
        #: keys whose partial rows this instance folded
        self.folded_total = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rollup-fold")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def fold_once(self, now: datetime | None = None) -> int:
        """One round: what is due at `now` (default: the clock)."""
        moment = now or datetime.now(UTC)
        folded = await fold(
            self._db,
            days_before=moment.astimezone(UTC).date(),
            sessions_before=moment - SESSION_QUIET,
        )
        self.folded_total += folded
        if folded:
            log.info("rollup rows folded", keys=folded)
        return folded

    async def _run(self) -> None:
        while True:
            try:
                await self.fold_once()
            except Exception as exc:  # the database may be away; the next round tries again
                log.error("rollup fold failed; retrying later", error=str(exc)[:300])
            await asyncio.sleep(self._every_s)
