"""Retention (`database.retention`): how long request captures are kept.

Two parts:

- At write time, `duration: "0"` means bodies are never written: `strip_for_zero_retention`
  empties a record's captured bodies (and headers, when `headers` is purged) before it is
  queued, so they never reach the disk.
- `RetentionPurge`, a background worker, removes captures older than `duration` every
  `PURGE_EVERY_S` seconds (and at start). `purge` names what goes: `bodies` (request and
  response bodies, processed), `headers` (captured headers), `raws` (the raw upstream answer
  kept under `database.save_raws`); no list means all of them, and then the whole capture
  row goes. Each category removes only itself: `bodies` leaves the raw answer alone. With
  `require_export`, only requests the usage exporter has delivered are purged.
- With `duration: "0"` the raw answer is never written either when `bodies` or `raws` is
  purged: "bodies never written" covers the bytes they were made from.

The usage metrics (`requests` rows: tokens, model, cost, status) and the daily rollups are
never deleted. Purges run in chunks of `CHUNK` captures, each its own short transaction, so
that the batch writer is never blocked for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, Executable, Select, delete, func, or_, select, update

from irisgate.config.model import PURGE_CATEGORIES, Retention
from irisgate.store.database import Database
from irisgate.store.tables import captures, requests
from irisgate.telemetry.metrics import Metrics
from irisgate.telemetry.record import RequestRecord

log = structlog.get_logger("irisgate.retention")
PURGE_EVERY_S = 300.0
CHUNK = 1000


def categories(retention: Retention) -> frozenset[str]:
    return frozenset(retention.purge or PURGE_CATEGORIES)


def strip_for_zero_retention(record: RequestRecord, retention: Retention) -> None:
    """With `duration: "0"`, drop what retention purges before the record is stored."""
    if retention.duration_seconds != 0:
        return
    purged = categories(retention)
    if "bodies" in purged:
        record.request_body = record.response_body = b""
        record.upstream_request_body = record.upstream_response_body = b""
    if "bodies" in purged or "raws" in purged:
        record.response_raw = None
    if "headers" in purged:
        record.request_headers, record.response_headers = {}, {}


class RetentionPurge:
    """Background purge of old captures (see the module doc)."""

    def __init__(
        self,
        db: Database,
        retention: Callable[[], Retention],
        metrics: Metrics,
        *,
        every_s: float = PURGE_EVERY_S,
    ) -> None:
        self._db = db
        self._retention = retention
        self._metrics = metrics
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
                self._metrics.purge_last_run.set(time.time())
            except Exception as exc:  # the database may be away; the next round tries again
                log.error("retention purge failed; retrying later", error=str(exc)[:300])
            await asyncio.sleep(self._every_s)

    async def purge_once(self, now: datetime | None = None) -> int:
        """Purge what is due under the current settings; returns captures changed."""
        retention = self._retention()
        if retention.duration_seconds is None:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=retention.duration_seconds)
        purged = categories(retention)
        due = select(requests.c.request_id).where(requests.c.started_at < cutoff)
        if retention.require_export:
            due = due.where(requests.c.exported_at.is_not(None))
        if purged >= frozenset(PURGE_CATEGORIES):
            return await self._chunks("captures", due, None)
        changed = 0
        if "bodies" in purged:
            has_body = or_(
                func.length(captures.c.request_body) > 0,
                func.length(captures.c.response_body) > 0,
            )
            changed += await self._chunks(
                "bodies",
                due,
                has_body,
                request_body=b"",
                response_body=b"",
                upstream_request_body=None,
                upstream_response_body=None,
            )
        if "headers" in purged:
            has_headers = or_(
                captures.c.request_headers != "{}", captures.c.response_headers != "{}"
            )
            changed += await self._chunks(
                "headers", due, has_headers, request_headers="{}", response_headers="{}"
            )
        if "raws" in purged:
            changed += await self._chunks(
                "raws",
                due,
                captures.c.response_raw.is_not(None),
                response_raw=None,
                response_raw_encoding=None,
            )
        return changed

    async def _chunks(
        self,
        category: str,
        due: Select[tuple[str]],
        still_there: ColumnElement[bool] | None,
        **values: object,
    ) -> int:
        """Delete (no `values`) or blank the captures of `due` requests, CHUNK at a time."""
        total = 0
        while True:
            pick = select(captures.c.request_id).where(captures.c.request_id.in_(due))
            if still_there is not None:
                pick = pick.where(still_there)
            async with self._db.begin() as conn:
                ids = list((await conn.execute(pick.limit(CHUNK))).scalars())
                if not ids:
                    return total
                statement: Executable
                if values:
                    statement = (
                        update(captures).where(captures.c.request_id.in_(ids)).values(**values)
                    )
                else:
                    statement = delete(captures).where(captures.c.request_id.in_(ids))
                await conn.execute(statement)
            total += len(ids)
            for name in PURGE_CATEGORIES if category == "captures" else (category,):
                self._metrics.purged.labels(name).inc(len(ids))
            log.info("retention purged captures", category=category, count=len(ids))
