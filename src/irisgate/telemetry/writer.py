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
  PostgreSQL dialect). The rollups go to the transaction's own shard of each key
  (`telemetry/shards.py`): instances sharing one PostgreSQL database never wait on each
  other's rollup rows. Keys are still written in sorted order (should more writers run
  at once than there are shards, they lock rows in the same order and cannot deadlock).

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

Every record is in the spool (`telemetry/spool.py`) before it reaches the writer: the
gateway journals it before the client has the last byte of its answer (`journal`), other
callers' records are journaled by `submit`. The in-memory queue is only the fast path.

Nothing is dropped for an outage, and nothing piles up in memory during one. When a write
fails because the database is unavailable (`store.availability.unavailable`: connection
refused or killed, SQLite unable to open or locked past its timeout, a missing table), the
writer lets go of everything it holds in memory (the batch and the queue: their records are
in the spool), logs once that the database is down, and from then on `submit` only counts
records (they stay in the spool). It tries again after a backoff that doubles up to
`retry_max_s`, reading the oldest spilled records back from the spool; the first write that
works ends the outage (logged once). The spool is then drained into the database a batch at
a time: whenever the queue of live records is empty, and under load every other transaction,
so that neither live records nor spooled ones wait behind the other for long. Records
read back are first looked up by request id, and those the database already has are
skipped: a record stored just before a crash, or whose commit was acknowledged late, is
never stored twice. The same path stores the spool files left by a process that died.

A full queue (the database is up but slower than the traffic) spills the same way, only the
records that did not fit: `submit` never blocks and never creates a task.

A record that is itself unacceptable to the database must not block the others: when the
error says the data is at fault (`IntegrityError` such as a duplicate `request_id`,
`DataError`, SQLSTATE class 22/23, or a value the driver cannot encode) the batch is
written again one record per transaction; a record refused that way alone is retried once
without NUL characters (PostgreSQL text cannot hold them) and otherwise logged and skipped
(`skipped_total`). Log lines carry the driver's message only: the engines are created with
`hide_parameters`, since parameters hold request bodies.

Shutdown: `await drain_and_stop()` (the SIGTERM path) writes everything queued, including
records submitted while it drains, then stops the task; during an outage it stops at once.
Either way it logs how many records wait in the spool for the next start. Records
submitted after it has stopped raise `WriterStoppedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from irisgate.store.availability import describe, unavailable
from irisgate.store.database import Database
from irisgate.store.tables import requests
from irisgate.telemetry.entries import EntryError
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.rollups import DashboardRollups
from irisgate.telemetry.rows import (
    Prepared,
    compile_statements,
    prepare,
    rollup_rows,
    without_nul,
)
from irisgate.telemetry.shards import ShardPicker
from irisgate.telemetry.spool import Segment, Spool

_LOG = logging.getLogger(__name__)
_A = TypeVar("_A")
_T = TypeVar("_T")
#: while lingering, queued records are prepared this often (a few dozen at a time under load)
PREPARE_SLICE_S = 0.005
#: the event loop's thread counts as saturated above this share of the wall clock
BUSY_FRACTION = 0.9
BUSY_WINDOW_S = 0.01
#: while a background write is out, how often to look whether the loop starves it, and how
#: long to step aside when it does
STARVE_CHECK_S = 0.01
STARVE_YIELD_S = 0.001
#: how often an idle writer looks for spool files left by a process that died
ADOPT_EVERY_S = 5.0

#: statements (driver SQL) with their rows, in execution order
_Plan = list[tuple[str, list[tuple[Any, ...]]]]


class WriterStoppedError(RuntimeError):
    """The writer has stopped (after `drain_and_stop`); it accepts no more records."""


class BatchWriter:
    """Stores `RequestRecord`s in batches from one background task (see the module doc).

    Counters, for metrics: `queue_depth` (records in memory not yet stored or skipped, the
    batch being written included), `written_total` (records stored), `failed_batches_total`
    (write attempts that failed), `skipped_total` (records refused by the database and
    dropped, each logged), `spooled` (records that wait in the spool only) and
    `stepped_aside_total` (times the event loop paused for a starved idle-priority batch).
    """

    def __init__(
        self,
        db: Database,
        spool: Spool,
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
        self.spool = spool
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
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[str] = []  # ids of the batch taken from the queue
        self._outage = False
        self._delay = retry_initial_s
        self._written_total = 0
        self._spool_failures = 0
        self._lost_total = 0
        self._failed_batches_total = 0
        self._skipped_total = 0
        self._stepped_aside_total = 0
        self._sqlite = db.dialect == "sqlite"
        self._sql = compile_statements(db.engine.dialect)
        self._dashboard = DashboardRollups(db.engine.dialect)
        self._shards = ShardPicker()
        #: event-loop CPU the writer itself spent preparing and summing: the loop counts as
        #: saturated by what else it runs, not by the batch about to go out
        self._own_cpu = 0.0
        self._clock = (time.monotonic(), time.thread_time(), 0.0)
        self._busy = False
        self._adopted_at = 0.0

    # -- the request-path side -------------------------------------------------------------

    def journal(self, record: RequestRecord) -> bool:
        """Write `record` to the spool now (the gateway calls this before the client has
        the last byte); `submit(record, journaled=True)` follows when it is final. False
        when the spool could not be written (logged; the record is then kept in memory)."""
        if self._stopped:
            return False
        try:
            self.spool.append(record)
        except EntryError:  # malformed: preparing it fails too, and skips it with a log
            return False
        except OSError as exc:
            self._spool_failures += 1
            if self._spool_failures == 1 or self._spool_failures % 1000 == 0:
                self._log.error(
                    "the spool %s cannot be written (%d times so far): %s",
                    self.spool.folder,
                    self._spool_failures,
                    exc,
                )
            return False
        return True

    def submit(self, record: RequestRecord, *, journaled: bool = False) -> None:
        """Hand `record` over for storage without waiting: to the spool (unless `journaled`
        already, unchanged since) and to the in-memory queue when the database is up and the
        queue has room. Raises `WriterStoppedError` after the writer has stopped."""
        if self._stopped:
            raise WriterStoppedError("the batch writer has stopped")
        in_spool = journaled or self.journal(record)
        if not self._outage:
            try:
                self._queue.put_nowait(record)
            except asyncio.QueueFull:
                pass
            else:
                return
        if in_spool:
            self.spool.spill((record.request_id,))
        else:  # neither the spool nor the queue has room for it
            self._lost_total += 1
            if self._lost_total == 1 or self._lost_total % 1000 == 0:
                self._log.error(
                    "request record %s was lost (%d so far): the database is unavailable or "
                    "behind and the spool cannot be written",
                    record.request_id,
                    self._lost_total,
                )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (call from the running event loop, once)."""
        if self._task is not None:
            raise RuntimeError("the batch writer was already started")
        self._task = asyncio.create_task(self._run(), name="irisgate-batch-writer")
        self._task.add_done_callback(self._on_task_done)

    async def drain_and_stop(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - on expiry it cancels; the spool keeps all
    ) -> int:
        """Store everything queued (at once during an outage: nothing), then stop. Returns
        the number of records that wait in the spool for the next start, and logs it."""
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
        self._stopped = True
        self.spool.spill([*self._in_flight, *self._take_queue()])
        self._in_flight = []
        waiting = self.spool.close()
        if waiting:
            self._log.warning(
                "%d request records wait in the spool (%s); they are stored when irisgate "
                "starts again with this data folder",
                waiting,
                self.spool.folder,
            )
        return waiting

    # -- counters --------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + len(self._in_flight)

    @property
    def queue_capacity(self) -> int:
        """Records the queue holds before further ones are spilled to the spool."""
        return self._queue.maxsize

    @property
    def spooled(self) -> int:
        """Records that wait in the spool only (spilled during an outage, or left by a
        process that died), to be read back and stored."""
        return self.spool.waiting

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
        """Records dropped, each logged: refused by the database, or (the spool failing
        while the queue was full) not kept anywhere."""
        return self._skipped_total + self._lost_total

    @property
    def stepped_aside_total(self) -> int:
        return self._stepped_aside_total

    # -- the background task ---------------------------------------------------------------

    async def _run(self) -> None:
        """Live batches from the queue, and batches read back from the spool: those when
        the queue is empty, and otherwise every other transaction, so that neither starves
        the other."""
        spool_turn = False
        try:
            while True:
                if self._outage:
                    if self._stopping.is_set():
                        return
                    await self._retry_after_outage()
                    continue
                if not self._stopping.is_set():
                    idle = self._queue.empty()
                    if idle:
                        await self._adopt_now_and_then()
                        self.spool.rotate_spilled()
                    segment = self.spool.drainable()
                    if segment is not None and (idle or spool_turn):
                        spool_turn = False
                        await self._drain(segment)
                        continue
                batch = await self._next_batch()
                if batch:
                    await self._store_live(batch)
                    spool_turn = True
                elif self._stopping.is_set() and self._queue.empty():
                    return
        finally:
            self._stopped = True

    async def _next_batch(self) -> list[Prepared]:
        """Up to `max_batch` queued records, prepared; waits while the queue is empty, unless
        stopping. Returns [] when woken by `drain_and_stop` with nothing queued, or after
        `ADOPT_EVERY_S` of an empty queue.

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
                await asyncio.wait(
                    (getter, stopper), timeout=ADOPT_EVERY_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopper.cancel()
                # A cancelled Queue.get leaves its item in the queue, so nothing is lost.
                getter.cancel()
            if not getter.done() or getter.cancelled():
                return []
            first = getter.result()
            self._in_flight = [first.request_id]
            batch = self._prepare_all([first])
        else:
            batch = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger_s
        while True:
            room = self._max_batch - len(batch)
            if room > 0 and not queue.empty():
                taken = [queue.get_nowait() for _ in range(min(queue.qsize(), room))]
                self._in_flight += [r.request_id for r in taken]
                batch += self._prepare_all(taken)
            left = deadline - loop.time()
            if left <= 0 or len(batch) >= self._max_batch or self._stopping.is_set():
                return batch
            await asyncio.sleep(min(left, PREPARE_SLICE_S))

    async def _store_live(self, batch: list[Prepared]) -> None:
        """Store a batch from the queue; on an outage, spill it and the queue."""
        stored = await self._store(batch)
        if stored:
            self.spool.release(self._in_flight)
        else:
            self.spool.spill_all([*self._in_flight, *self._take_queue()])
            self.spool.rotate_spilled()
        self._in_flight = []

    def _take_queue(self) -> list[str]:
        taken: list[str] = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait().request_id)
        return taken

    async def _drain(self, segment: Segment) -> str:
        """Store the next batch of `segment`'s records that the database does not have yet:
        "stored"; "finished" when none was left (the segment is deleted); "outage"."""
        if not segment.loaded:
            await asyncio.to_thread(segment.load, self._log)
        records, position = segment.take(self._max_batch, self._log)
        if not records:
            self.spool.finish(segment)
            return "finished"
        try:
            known = await self._known([r.request_id for r in records])
        except Exception as exc:  # whatever it is, the records stay in the spool
            self._outage_began(exc)
            return "outage"
        fresh = [r for r in records if r.request_id not in known]
        if not await self._store(self._prepare_all(fresh)):
            return "outage"
        segment.advance(position, len(records))
        return "stored"

    async def _known(self, request_ids: list[str]) -> set[str]:
        """Which of `request_ids` the database has already."""
        query = select(requests.c.request_id).where(requests.c.request_id.in_(request_ids))
        async with self._db.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def _retry_after_outage(self) -> None:
        """Wait the backoff (or until stopping), then try to store the oldest spilled
        records; the first write that works ends the outage."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._delay)
        if self._stopping.is_set():
            return
        self._delay = min(self._delay * 2, self._retry_max_s)
        self.spool.rotate_spilled()
        while (segment := self.spool.drainable()) is not None:
            outcome = await self._drain(segment)
            if outcome == "stored":
                self._outage_ended()
            if outcome != "finished":
                return
        try:  # nothing to read back (yet): just ask the database
            await self._known([])
        except Exception as exc:  # still down (or broken: logged once more)
            self._outage_began(exc)
            return
        self._outage_ended()

    def _outage_began(self, exc: BaseException) -> None:
        """A write (or a look-up) failed for a reason other than the data: an outage, until
        a write works. Not the usual unavailable database: logged each time (it is a bug
        or a broken schema, and the backoff keeps it at most every `retry_max_s`)."""
        self._failed_batches_total += 1
        if not unavailable(exc):
            self._log.error("storing request records failed: %s", describe(exc), exc_info=exc)
        self._outage = True
        self._db.availability.failed(exc)

    def _outage_ended(self) -> None:
        self._outage = False
        self._db.availability.answered()

    async def _store(self, pending: list[Prepared]) -> bool:
        """Store `pending`: True when every record is stored or skipped, False when the
        database is unavailable (the outage has begun; the caller keeps them in the spool)."""
        one_by_one = False
        while pending:
            chunk = pending[:1] if one_by_one else pending
            try:
                await self._write(chunk)
            except Exception as exc:  # classified below
                if _is_record_error(exc):
                    if len(chunk) > 1:
                        one_by_one = True
                        self._log.warning(
                            "a batch was refused (%s); storing it record by record",
                            describe(exc),
                        )
                    elif (repaired := without_nul(chunk[0])) is not chunk[0]:
                        pending[0] = repaired  # PostgreSQL text cannot hold NUL; once more
                    else:
                        self._skip(chunk[0].request_id, f"refused by the database: {describe(exc)}")
                        del pending[0]
                    continue
                self._outage_began(exc)
                return False
            self._written_total += len(chunk)
            self._batches_total += 1
            del pending[: len(chunk)]
            self._delay = self._retry_initial_s
        self._db.availability.answered()
        return True

    async def _adopt_now_and_then(self) -> None:
        """Look for spool files of processes that died (a sibling worker) every
        `ADOPT_EVERY_S`."""
        now = time.monotonic()
        if now - self._adopted_at >= ADOPT_EVERY_S:
            self._adopted_at = now
            self.spool.take(await asyncio.to_thread(self.spool.orphans))

    def _prepare_all(self, batch: list[RequestRecord]) -> list[Prepared]:
        return self._mine(self._prepare_each, batch)

    def _mine(self, work: Callable[[_A], _T], argument: _A) -> _T:
        """`work(argument)`, its CPU counted as the writer's own (see `_loop_busy`)."""
        started = time.thread_time()
        try:
            return work(argument)
        finally:
            self._own_cpu += time.thread_time() - started

    def _prepare_each(self, batch: list[RequestRecord]) -> list[Prepared]:
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
        self._log.error("request record %s was not stored: %s", request_id, reason)

    async def _write(self, chunk: Sequence[Prepared]) -> None:
        plan, rollups = await self._plan(chunk)
        if not self._db.writes_in_thread:  # PostgreSQL: the work happens in the server
            async with self._db.begin() as conn:
                for sql, rows in plan:
                    await conn.exec_driver_sql(sql, rows)
                if rollups:
                    shard = await self._shards.take(conn)
                    for sql, rows in rollups:
                        await conn.exec_driver_sql(sql, [(*row, shard) for row in rows])
            return
        plan += [(sql, [(*row, 0) for row in rows]) for sql, rows in rollups]
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

    async def _plan(self, chunk: Sequence[Prepared]) -> tuple[_Plan, _Plan]:
        """The batch's statements with their rows, in execution order: the inserts, then the
        rollup upserts, whose rows lack their shard (the transaction appends it). Summing
        the rollups is event-loop CPU: one sum at a time, letting requests in between."""
        sql, dashboard = self._sql, self._dashboard
        plan: _Plan = [
            (sql.requests, [p.request for p in chunk]),
            (sql.captures, [p.capture for p in chunk]),
        ]
        created = [p.response for p in chunk if p.response is not None]
        if created:
            plan.append((sql.responses, created))
        rollups: _Plan = []
        usage = self._mine(partial(rollup_rows, sqlite=self._sqlite), chunk)
        if usage:  # a batch of connector calls only has no usage to add
            rollups.append((sql.rollups, usage))
        await asyncio.sleep(0)
        extra = [p.dashboard_rollup for p in chunk]
        agents = self._mine(dashboard.agent_rows, extra)
        if agents:
            rollups.append((dashboard.agents_sql, agents))
        await asyncio.sleep(0)
        sessions = self._mine(dashboard.session_rows, extra)
        if sessions:
            rollups.append((dashboard.sessions_sql, sessions))
        await asyncio.sleep(0)
        tools = self._mine(dashboard.tool_rows, extra)
        if tools:
            rollups.append((dashboard.tools_sql, tools))
        await asyncio.sleep(0)
        facets = self._mine(dashboard.facet_rows, extra)
        if facets:
            rollups.append((dashboard.facets_sql, facets))
        return plan, rollups

    def _loop_busy(self) -> bool:
        """Whether the event loop's thread was busy more than BUSY_FRACTION of the time
        since this was last decided (its CPU time against the clock, over at least
        BUSY_WINDOW_S: a shorter stretch says nothing), leaving out the writer's own
        preparing and summing: that ends when the batch goes out, so it never starves the
        idle-priority write (a burst of records to prepare used to count as saturation)."""
        wall, cpu, own = time.monotonic(), time.thread_time(), self._own_cpu
        last_wall, last_cpu, last_own = self._clock
        if wall - last_wall >= BUSY_WINDOW_S:
            self._clock = (wall, cpu, own)
            others = (cpu - last_cpu) - (own - last_own)
            self._busy = others > BUSY_FRACTION * (wall - last_wall)
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


def _execute(plan: _Plan, conn: Connection) -> None:
    """Run `plan` on a synchronous connection (in a write thread)."""
    for sql, rows in plan:
        conn.exec_driver_sql(sql, rows)
