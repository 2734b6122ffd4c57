"""The batch writer: request records from an in-memory queue to the database.

The request path never waits for the database. It hands each finished `RequestRecord` to
`BatchWriter.submit`, which only appends to a bounded queue. One background task takes what
is queued (up to `max_batch` records) and stores, in ONE transaction:

- the `requests` rows and the `captures` rows (each an `executemany`), and
- the dashboard's `usage_agent_daily` and `sessions` increments (`telemetry/rollups.py`),
- the `responses` rows of OpenAI Responses API responses the batch created (id → provider,
  model, login; a repeated id keeps its first row),
- the `usage_daily` increments: the batch is first summed per (UTC day of `started_at`,
  login, model, provider), then one upsert per key adds the sums
  (`INSERT … ON CONFLICT DO UPDATE SET x = usage_daily.x + excluded.x`, SQLite or
  PostgreSQL dialect). Keys are written in sorted order so that instances sharing one
  PostgreSQL database lock rows in the same order and cannot deadlock.

How it stays out of the requests' way (each measured with `bench/`; numbers in its README):

- Records are prepared (turned into rows) as they arrive during the linger, a slice every
  `PREPARE_SLICE_S`, not all at once when it ends: a few hundred at once held the event loop
  for milliseconds.
- On SQLite the whole transaction goes to a thread in one hand-over
  (`Database.write_in_thread`), not statement by statement through aiosqlite, whose
  hand-overs each wait for the busy event loop to come round.
- While keeping up, that thread runs at idle CPU priority, so SQLite's work never delays a
  request on the same CPU. When the writer falls behind (a full batch, a full batch still
  queued, or the event loop busy more than `BUSY_FRACTION` of the time since the last
  batch), the batch goes to a normal-priority thread instead. And if the load rises while an
  idle-priority batch is out, the event loop steps aside 1 ms in every 10 until it is done:
  that batch holds SQLite's write lock.

The writer's CPU counts against the gateway's per-request budget, so its statements are
compiled once and run on plain driver tuples (`telemetry/rows.py` says how, and converts the
values exactly as the column types would). Driver errors still arrive wrapped in
SQLAlchemy's `DBAPIError` subclasses, so the error handling below is the same for both
databases.

Nothing is dropped for an outage. When a write fails the batch is kept, the error logged
and the same batch retried after a backoff that doubles up to `retry_max_s`, for as long as
it takes (connection refused, connections killed, a table missing or locked: all the same).
A record that is itself unacceptable to the database must not block the others: when the
error says the data is at fault (`IntegrityError` such as a duplicate `request_id`,
`DataError`, SQLSTATE class 22/23, or a value the driver cannot encode) the batch is
written again one record per transaction; a record refused that way alone is retried once
without NUL characters (PostgreSQL text cannot hold them) and otherwise logged and skipped
(`skipped_total`). Log lines carry the driver's message only: the engines are created with
`hide_parameters`, since parameters hold request bodies.

Back-pressure: the queue holds at most `max_queue` records. `submit` never blocks and never
drops: when the queue is full it raises `QueueFull`, and the caller falls back to
`await submit_wait(record)`, which waits for room. A full queue means the database is down
or too slow; waiting there slows the callers instead of losing their records.

Shutdown: `await drain_and_stop()` (the SIGTERM path) writes everything queued, including
records submitted while it drains, then stops the task. Records submitted after it has
stopped raise `WriterStoppedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from irisgate.store.database import Database
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.rollups import DashboardRollups
from irisgate.telemetry.rows import (
    Prepared,
    compile_statements,
    prepare,
    rollup_rows,
    without_nul,
)

_LOG = logging.getLogger(__name__)
#: while lingering, queued records are prepared this often (a few dozen at a time under load)
PREPARE_SLICE_S = 0.005
#: the event loop's thread counts as saturated above this share of the wall clock
BUSY_FRACTION = 0.9
BUSY_WINDOW_S = 0.01
#: while a background write is out, how often to look whether the loop starves it, and how
#: long to step aside when it does
STARVE_CHECK_S = 0.01
STARVE_YIELD_S = 0.001


class QueueFull(Exception):
    """The writer's queue is full; `await BatchWriter.submit_wait(record)` instead."""


class WriterStoppedError(RuntimeError):
    """The writer has stopped (after `drain_and_stop`); it accepts no more records."""


class BatchWriter:
    """Stores `RequestRecord`s in batches from one background task (see the module doc).

    Counters, for metrics: `queue_depth` (records accepted and not yet stored or skipped,
    the batch being written included), `written_total` (records stored),
    `failed_batches_total` (write attempts that failed and were retried),
    `skipped_total` (records refused by the database and dropped, each logged) and
    `stepped_aside_total` (times the event loop paused for a starved idle-priority batch).
    """

    def __init__(
        self,
        db: Database,
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        logger: logging.Logger | None = None,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        linger_s: float = 0.0,
    ) -> None:
        if max_queue < 1 or max_batch < 1:
            raise ValueError("max_queue and max_batch must be at least 1")
        self._db = db
        self._queue: asyncio.Queue[RequestRecord] = asyncio.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._log = logger if logger is not None else _LOG
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        # A transaction costs far more than a row (~0.5-0.8 ms of event-loop CPU here): after
        # the first record of a batch arrives, wait this long for company before writing.
        self._linger_s = linger_s
        self._batches_total = 0
        self._stopping = asyncio.Event()
        self._stopped = False
        self._stopped_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._written_total = 0
        self._failed_batches_total = 0
        self._skipped_total = 0
        self._stepped_aside_total = 0
        self._sqlite = db.dialect == "sqlite"
        self._sql = compile_statements(db.engine.dialect)
        self._dashboard = DashboardRollups(db.engine.dialect)
        self._clock = (time.monotonic(), time.thread_time())
        self._busy = False

    # -- the request-path side -------------------------------------------------------------

    def submit(self, record: RequestRecord) -> None:
        """Queue `record` without waiting. Raises `QueueFull` when there is no room (then
        `await submit_wait(record)`), `WriterStoppedError` after the writer has stopped."""
        if self._stopped:
            raise WriterStoppedError("the batch writer has stopped")
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            raise QueueFull(f"{self._queue.maxsize} records are waiting to be stored") from None

    async def submit_wait(self, record: RequestRecord) -> None:
        """Queue `record`, waiting for room when the queue is full. Raises
        `WriterStoppedError` if the writer stops (or has stopped) before there is room."""
        if self._stopped:
            raise WriterStoppedError("the batch writer has stopped")
        if not self._queue.full():
            self._queue.put_nowait(record)
            return
        put = asyncio.ensure_future(self._queue.put(record))
        stopped = asyncio.ensure_future(self._stopped_event.wait())
        try:
            await asyncio.wait((put, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            put.cancel()  # no effect once the record is in
        if self._stopped or put.cancelled() or not put.done():
            raise WriterStoppedError("the batch writer stopped before storing the record")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (call from the running event loop, once)."""
        if self._task is not None:
            raise RuntimeError("the batch writer was already started")
        self._task = asyncio.create_task(self._run(), name="irisgate-batch-writer")
        self._task.add_done_callback(self._on_task_done)

    async def drain_and_stop(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - on expiry it cancels and reports the loss
    ) -> int:
        """Store everything queued, then stop. Returns the number of records NOT stored:
        0 normally; more only when the database stayed unwritable for `timeout` seconds, in
        which case the task is cancelled and the loss is logged as an error."""
        self._stopping.set()
        if self._task is None:
            self.start()
        task = self._task
        assert task is not None
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._mark_stopped()
        lost = self.queue_depth
        if lost:
            self._log.error(
                "batch writer stopped after %.1f s with %d records not stored "
                "(database unwritable: %s)",
                timeout,
                lost,
                self._db.url,
            )
        return lost

    # -- counters --------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + self._in_flight

    @property
    def queue_capacity(self) -> int:
        """Records the queue holds before `submit` raises `QueueFull`."""
        return self._queue.maxsize

    @property
    def batches_total(self) -> int:
        """Transactions that stored at least one record."""
        return self._batches_total

    @property
    def written_total(self) -> int:
        return self._written_total

    @property
    def failed_batches_total(self) -> int:
        return self._failed_batches_total

    @property
    def skipped_total(self) -> int:
        return self._skipped_total

    @property
    def stepped_aside_total(self) -> int:
        return self._stepped_aside_total

    # -- the background task ---------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                batch = await self._next_batch()
                if batch:
                    await self._store(batch)
                elif self._stopping.is_set() and self._queue.empty():
                    return
        finally:
            self._mark_stopped()

    def _mark_stopped(self) -> None:
        self._stopped = True
        self._stopped_event.set()

    async def _next_batch(self) -> list[Prepared]:
        """Up to `max_batch` queued records, prepared; waits while the queue is empty, unless
        stopping. Returns [] when woken by `drain_and_stop` with nothing queued.

        With a linger, records are prepared as they arrive, a slice at a time, rather than
        all at once when the linger ends: preparing is event-loop CPU (~7 us a record here),
        and a batch of a few hundred done in one go would hold up the requests behind it."""
        queue = self._queue
        if queue.empty():
            if self._stopping.is_set():
                return []
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait((getter, stopper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
                # A cancelled Queue.get leaves its item in the queue, so nothing is lost.
                getter.cancel()
            if not getter.done() or getter.cancelled():
                return []
            self._in_flight = 1
            batch = self._prepare_all([getter.result()])
        else:
            batch = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger_s
        while True:
            room = self._max_batch - len(batch)
            if room > 0 and not queue.empty():
                taken = [queue.get_nowait() for _ in range(min(queue.qsize(), room))]
                self._in_flight += len(taken)
                batch += self._prepare_all(taken)
            left = deadline - loop.time()
            if left <= 0 or len(batch) >= self._max_batch or self._stopping.is_set():
                return batch
            await asyncio.sleep(min(left, PREPARE_SLICE_S))

    async def _store(self, pending: list[Prepared]) -> None:
        """Store `pending`, retrying until every record is stored or skipped."""
        one_by_one = False
        delay = self._retry_initial_s
        while pending:
            chunk = pending[:1] if one_by_one else pending
            try:
                await self._write(chunk)
            except Exception as exc:  # classified below; whatever it is, the batch is kept
                if not _is_record_error(exc):
                    self._failed_batches_total += 1
                    self._log.error(
                        "storing %d records failed, retrying in %.1f s: %s",
                        len(chunk),
                        delay,
                        _describe(exc),
                        exc_info=not isinstance(exc, SQLAlchemyError | OSError | TimeoutError),
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_s)
                elif len(chunk) > 1:
                    one_by_one = True
                    self._log.warning(
                        "a batch was refused (%s); storing it record by record", _describe(exc)
                    )
                elif (repaired := without_nul(chunk[0])) is not chunk[0]:
                    pending[0] = repaired  # PostgreSQL text cannot hold NUL; try once without
                else:
                    self._skip(chunk[0].request_id, f"refused by the database: {_describe(exc)}")
                    del pending[0]
                continue
            self._written_total += len(chunk)
            self._batches_total += 1
            self._in_flight -= len(chunk)
            del pending[: len(chunk)]
            delay = self._retry_initial_s
        self._in_flight = 0

    def _prepare_all(self, batch: list[RequestRecord]) -> list[Prepared]:
        prepared: list[Prepared] = []
        for record in batch:
            try:
                prepared.append(prepare(record, self._sqlite))
            except (
                AttributeError,
                TypeError,
                ValueError,
                OverflowError,
                orjson.JSONEncodeError,
            ) as exc:
                self._skip(getattr(record, "request_id", "?"), f"malformed record: {exc!r}")
        return prepared

    def _skip(self, request_id: str, reason: str) -> None:
        self._skipped_total += 1
        self._in_flight = max(0, self._in_flight - 1)
        self._log.error("request record %s was not stored: %s", request_id, reason)

    async def _write(self, chunk: Sequence[Prepared]) -> None:
        plan = await self._plan(chunk)
        if not self._db.writes_in_thread:  # PostgreSQL: the work happens in the server
            async with self._db.begin() as conn:
                for sql, rows in plan:
                    await conn.exec_driver_sql(sql, rows)
            return
        # SQLite: the whole transaction in one hand-over to a thread. Keeping up: in the
        # thread at idle CPU priority, so requests never wait behind a batch. Falling behind
        # (a full batch, a full batch's worth still queued, or the event loop saturated
        # since the last batch): at normal priority, or the backlog would grow for as long
        # as requests keep the CPU busy.
        saturated = self._loop_busy()
        if saturated or len(chunk) >= self._max_batch or self._queue.qsize() >= self._max_batch:
            await self._db.write_in_thread(partial(_execute, plan))
            return
        write = self._db.write_in_thread(partial(_execute, plan), background=True)
        while True:
            wall, cpu = time.monotonic(), time.thread_time()
            done, _ = await asyncio.wait((write,), timeout=STARVE_CHECK_S)
            if done:
                break
            if time.thread_time() - cpu > BUSY_FRACTION * (time.monotonic() - wall):
                # The load rose while the batch was out and the idle-priority thread gets no
                # CPU: it holds SQLite's write lock and the batch, so step aside briefly
                # (blocking, on purpose), leaving it a tenth of the CPU until it is done.
                time.sleep(STARVE_YIELD_S)  # noqa: ASYNC251
                self._stepped_aside_total += 1
        write.result()

    async def _plan(self, chunk: Sequence[Prepared]) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """The batch's statements with their rows, in execution order. Summing the rollups is
        event-loop CPU: one sum at a time, letting requests in between."""
        sql, dashboard = self._sql, self._dashboard
        plan = [
            (sql.requests, [p.request for p in chunk]),
            (sql.captures, [p.capture for p in chunk]),
        ]
        rollups = rollup_rows(chunk, self._sqlite)
        if rollups:  # a batch of connector calls only has no usage to add
            plan.append((sql.rollups, rollups))
        created = [p.response for p in chunk if p.response is not None]
        if created:
            plan.append((sql.responses, created))
        await asyncio.sleep(0)
        extra = [p.dashboard_rollup for p in chunk]
        agents = dashboard.agent_rows(extra)
        if agents:
            plan.append((dashboard.agents_sql, agents))
        await asyncio.sleep(0)
        sessions = dashboard.session_rows(extra)
        if sessions:
            plan.append((dashboard.sessions_sql, sessions))
        return plan

    def _loop_busy(self) -> bool:
        """Whether the event loop's thread was busy more than BUSY_FRACTION of the time
        since this was last decided (its CPU time against the clock, over at least
        BUSY_WINDOW_S: a shorter stretch says nothing)."""
        wall, cpu = time.monotonic(), time.thread_time()
        last_wall, last_cpu = self._clock
        if wall - last_wall >= BUSY_WINDOW_S:
            self._clock = (wall, cpu)
            self._busy = cpu - last_cpu > BUSY_FRACTION * (wall - last_wall)
        return self._busy

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("the batch writer task died", exc_info=task.exception())


def _is_record_error(exc: BaseException) -> bool:
    """Whether `exc` means "this data is unacceptable" (so retrying the same rows can never
    succeed) rather than "the database is unavailable" (so retrying will)."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        # asyncpg: SQLSTATE class 22 (data exception) or 23 (integrity) from the server, or
        # its client-side argument check (a ValueError/TypeError) behind a generic Error.
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in {"22", "23"}:
            return True
        return isinstance(
            getattr(exc.orig, "__cause__", None), ValueError | TypeError | OverflowError
        )
    if isinstance(exc, StatementError):  # a bind processor refused a value
        return isinstance(exc.orig, ValueError | TypeError | OverflowError)
    # sqlite3 raises OverflowError itself for integers beyond 64 bits.
    return isinstance(exc, ValueError | TypeError | OverflowError)


def _describe(exc: BaseException) -> str:
    """The driver's own message, without the SQL and parameters SQLAlchemy adds."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    return f"{type(exc).__name__}: {exc}"


def _execute(plan: list[tuple[str, list[tuple[Any, ...]]]], conn: Connection) -> None:
    """Run `plan` on a synchronous connection (in a write thread)."""
    for sql, rows in plan:
        conn.exec_driver_sql(sql, rows)
