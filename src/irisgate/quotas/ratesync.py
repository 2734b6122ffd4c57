"""Rate limits across instances: each instance's counts, shared through the database.

Every `SYNC_SECONDS` while the config has rate limits (at once when a limit appears that
this instance has not synced yet), one short transaction:

1. writes this instance's own use of every limit that changed (`rate_limit_use`, one row
   per limit and instance) and its heartbeat (the row named ""); deletes the rows of the
   limits this instance dropped as idle;
2. reads the other live instances' rows (heartbeat younger than `ALIVE_SECONDS`), of every
   limit, so that a limit this instance has not used yet starts with what the others use,
   and the number of live instances.

The request path never waits for it: admission adds the others' counts as of the last sync
to this instance's own (`irisgate.quotas.ratelimits`). Tolerance: a limit can be exceeded by
what the other instances admitted for it since their last report and this instance's last
read, at most about two sync intervals of their traffic for that caller (0.5 s each); a
limit new to an instance admits only its share (limit / live instances) until its first
sync. An instance that stops deletes its rows; a crashed one's rows are ignored once its
heartbeat is `ALIVE_SECONDS` old (what it had admitted is forgotten) and deleted after
`FORGET_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from irisgate.quotas.ratelimits import MAX_COUNTERS, Counter, Limiter, Use, others_of
from irisgate.store.database import Database
from irisgate.store.tables import conflict_insert, rate_limit_use

log = structlog.get_logger("irisgate.ratelimits")
_T = TypeVar("_T")

#: how often an instance reports its counts and reads the others'
SYNC_SECONDS = 0.5
#: an instance whose heartbeat is older than this is taken for dead: its rows are ignored
ALIVE_SECONDS = 5.0
#: rows not written for this long are deleted (beyond two windows of the longest period)
FORGET_SECONDS = 3 * 3600
#: names per `IN (...)` list
BATCH = 500
#: other instances' rows read at most per sync (each instance writes at most MAX_COUNTERS)
MAX_ROWS = 4 * MAX_COUNTERS
#: the heartbeat row's name (no limit is named "": config check refuses empty names)
HEARTBEAT = ""


@dataclass(frozen=True, slots=True)
class Seen:
    """Other instances' rows of the limits asked for, and how many instances are alive."""

    rows: dict[str, list[tuple[int, Use]]]  # name -> (period_s, use) per other instance
    instances: int


class RateSync:
    def __init__(self, db: Database, limiter: Limiter, active: Callable[[], bool]) -> None:
        self.db = db
        self.limiter = limiter
        self.active = active  # whether the current config has rate limits
        self.instance = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # the last round failed (logged once)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Sync soon: a limit appeared that this instance has not synced yet."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop syncing and delete this instance's rows: it no longer uses anything."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            statement = delete(rate_limit_use).where(rate_limit_use.c.instance == self.instance)
            await _in_transaction(self.db, lambda conn: conn.execute(statement))
        except Exception as exc:  # their heartbeat ages out; other instances then ignore them
            log.warning("rate limit rows not deleted at stop", error=str(exc))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SYNC_SECONDS)
            self._wake.clear()
            if not self.limiter.counters and not self.limiter.dropped and not self.active():
                continue
            try:
                await self.sync_once()
            except Exception as exc:  # the database is away: limits go on, per instance
                if not self._failing:  # once per outage, not twice a second
                    log.warning("rate limits not synced; retrying", error=str(exc))
                self._failing = True
                await asyncio.sleep(SYNC_SECONDS)
            else:
                if self._failing:
                    log.info("rate limits synced again")
                self._failing = False

    async def sync_once(self) -> None:
        """One round (see module doc)."""
        limiter = self.limiter
        now, mono = time.time(), time.monotonic()
        limiter.sweep(now, mono)
        counters = list(limiter.counters.values())
        written = [c for c in counters if c.dirty]
        rows = [_row(c, self.instance) for c in written]
        for counter in written:
            counter.dirty = False
        dropped, limiter.dropped = limiter.dropped, []
        limiter.unsynced = 0
        stamp = datetime.fromtimestamp(now, UTC)
        work = partial(
            _sync,
            dialect=self.db.dialect,
            instance=self.instance,
            rows=rows,
            dropped=dropped,
            now=stamp,
        )
        try:
            seen = await _in_transaction(self.db, work)
        except BaseException:  # all of it again next round
            for counter in written:
                counter.dirty = True
            limiter.dropped = [*dropped, *limiter.dropped][: limiter.max_counters]
            raise
        limiter.instances = seen.instances
        limiter.remote, limiter.remote_at = seen.rows, now
        for counter in counters:
            counter.others = others_of(counter, seen.rows.get(counter.name, ()), now)
            counter.synced = True


def _row(counter: Counter, instance: str) -> dict[str, Any]:
    own = counter.own
    return {
        "name": counter.name,
        "instance": instance,
        "period_s": counter.limit.period_seconds,
        "window_start": own.window,
        "current": own.current,
        "previous": own.previous,
        "held": own.held,
    }


def _sync(
    conn: Connection,
    *,
    dialect: str,
    instance: str,
    rows: list[dict[str, Any]],
    dropped: list[str],
    now: datetime,
) -> Seen:
    table = rate_limit_use
    heartbeat = {
        "name": HEARTBEAT,
        "instance": instance,
        "period_s": 0,
        "window_start": 0,
        "current": 0,
        "previous": 0,
        "held": 0,
    }
    insert = conflict_insert(dialect, table)
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.name, table.c.instance],
        set_={
            key: insert.excluded[key]
            for key in ("period_s", "window_start", "current", "previous", "held", "updated_at")
        },
    )
    conn.execute(upsert, [{**row, "updated_at": now} for row in (heartbeat, *rows)])
    for start in range(0, len(dropped), BATCH):
        conn.execute(
            delete(table).where(
                table.c.instance == instance, table.c.name.in_(dropped[start : start + BATCH])
            )
        )
    seen = _read(conn, instance=instance, now=now)
    if int(now.timestamp()) % 60 == 0:  # about once a minute: rows nobody writes any more
        forget = now - timedelta(seconds=FORGET_SECONDS)
        conn.execute(delete(table).where(table.c.updated_at < forget))
    return seen


def _read(conn: Connection, *, instance: str, now: datetime) -> Seen:
    """Every row of every live instance but `instance` (at most `MAX_ROWS`)."""
    table = rate_limit_use
    alive_since = now - timedelta(seconds=ALIVE_SECONDS)
    live = select(table.c.instance).where(
        table.c.name == HEARTBEAT, table.c.updated_at >= alive_since
    )
    instances = {other for (other,) in conn.execute(live) if other != instance}
    seen: dict[str, list[tuple[int, Use]]] = {}
    if instances:
        columns = (table.c.instance, table.c.name, table.c.period_s, table.c.window_start)
        counts = (table.c.current, table.c.previous, table.c.held)
        query = (
            select(*columns, *counts)
            .where(table.c.instance != instance, table.c.name != HEARTBEAT)
            .limit(MAX_ROWS)
        )
        for other, name, period, window, current, previous, held in conn.execute(query):
            if other in instances:
                use = Use(int(window), int(current), int(previous), int(held))
                seen.setdefault(name, []).append((int(period), use))
    return Seen(seen, len(instances) + 1)


async def _in_transaction(db: Database, fn: Callable[[Connection], _T]) -> _T:
    """`fn(connection)` in one write transaction (on SQLite in its write thread)."""
    if db.writes_in_thread:
        return await db.write_in_thread(fn, background=True)
    async with db.begin() as conn:
        return await conn.run_sync(fn)
