"""`AlertWatch`: the gateway's observations in, raised and cleared alerts out.

The parts of the gateway report what they see without waiting: the quota ledger each
bucket's balance after a sync (`balance`), the hook runner its failures and successes
(`hook_outcome`), the exporter its outcome (`export`). Other state is polled
every `TICK_SECONDS` through the `Probes` given at construction (provider health, the
database's availability, the spool); the spend-spike rule and the export backlog every
`SPIKE_SECONDS`. Nothing
here runs on a request's path: observations are coalesced per alert (the latest wins) and
one background task writes them.

Each instance holds the set of alerts raised and not cleared, read from the database at
most `KNOWN_SECONDS` ago and kept current with what it writes itself, and writes only what
changes that set: a bucket below its thresholds costs nothing, however often its balance is
reported. An alert another instance cleared leaves the set at the next read, so the next
crossing here raises it again. A signal that
holds and ends before it was written (a brief outage) is still raised, then cleared. While
the database cannot be reached, signals wait (at most `MAX_PENDING`) and are written when
it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from irisgate.access.health import ProviderView
from irisgate.alerts import table
from irisgate.alerts.backlog import backlog_signal, oldest_unexported
from irisgate.alerts.budgets import budget_signals
from irisgate.alerts.signal import Signal, bounded
from irisgate.alerts.spikes import spend_by_day, spike_signals
from irisgate.config.model import AlertSettings
from irisgate.store.availability import unavailable
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.alerts")

TICK_SECONDS = 1.0
SPIKE_SECONDS = 300.0
KNOWN_SECONDS = 60.0
MAX_PENDING = 10_000

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Probes:
    """What the watch polls: provider health views, whether the database and the spool
    are unavailable."""

    providers: Callable[[], list[ProviderView]]
    database_down: Callable[[], bool]
    spool_full: Callable[[], bool]
    #: outages of the database seen so far (one shorter than a tick is alerted too)
    database_outages: Callable[[], int] = lambda: 0
    #: the S3 export's interval in seconds; None when export is off
    export_every: Callable[[], int | None] = lambda: None


class AlertWatch:
    def __init__(
        self,
        db: Database,
        settings: Callable[[], AlertSettings],
        probes: Probes,
        *,
        raised: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`raised` is called after this instance raised an alert (the delivery worker's
        wake-up)."""
        self._db = db
        self._settings = settings
        self._probes = probes
        self._on_raised = raised
        self._clock = clock
        #: per alert, its changes not yet written, in order (see `_take`)
        self._pending: dict[Key, list[Signal]] = {}
        self._raised: set[Key] = set()  # raised and not cleared, as last read or written
        self._raised_read = -KNOWN_SECONDS - 1.0  # when (clock) `_raised` was read
        self._since: dict[Key, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_spike = 0.0
        self._outages = 0  # database outages already signalled
        self.raised_total = 0  # alerts this instance inserted
        self.dropped_total = 0  # signals dropped because MAX_PENDING were waiting

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # --- what the gateway reports ---------------------------------------------------------

    def observe(self, signal: Signal) -> None:
        """Take one observation (never blocks; the latest per alert wins)."""
        self._take(signal)
        self._wake.set()

    def _take(self, signal: Signal) -> None:
        """Queue `signal` after the alert's unwritten changes: one that says what the last
        one says replaces it; a change is kept, so that a condition that held and ended (or
        ended and held again) before the round wrote it still raises (or re-arms) it. More
        than three changes in a round fold to the last two."""
        key = signal.key
        queue = self._pending.get(key)
        if queue is None:
            if len(self._pending) >= MAX_PENDING:
                self.dropped_total += 1
                return
            queue = self._pending[key] = []
        if queue and queue[-1].active == signal.active:
            queue[-1] = signal
        else:
            queue.append(signal)
            if len(queue) > 3:
                del queue[:2]

    def balance(self, name: str, template: str, capacity: int, balance: int) -> None:
        """A bucket's balance as a quota sync learned it."""
        thresholds = self._settings().budgets.get(template)
        if thresholds:
            for signal in budget_signals(name, template, capacity, balance, thresholds):
                self.observe(signal)

    def hook_outcome(self, hook: str, event: str, error: str | None) -> None:
        """A hook call's outcome (None: it answered, which clears the hook's alert; cheap
        while none is raised)."""
        key = ("hook", hook, "")
        if error is None:
            if key in self._raised or key in self._pending:
                self.observe(Signal("hook", hook, active=False))
        elif self._settings().hooks:
            message = bounded(f"hook {hook} failed ({event}): {error}")
            self.observe(Signal("hook", hook, message=message))

    def export(self, error: str | None) -> None:
        """The usage exporter's outcome: None when a batch was exported."""
        if not self._settings().exports:
            return
        if error is None:
            self.observe(Signal("export", "s3", active=False))
        else:
            self.observe(
                Signal("export", "s3", message=bounded(f"usage export to S3 is failing: {error}"))
            )

    # --- the background task --------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:  # keep watching: the next round retries what failed
                log.exception("alert watch round failed")

    async def run_once(self) -> None:
        """Poll the probes, check spend spikes when due, and write the pending signals."""
        for signal in self._polled():
            self._take(signal)  # no wake-up: they are written in this round
        if self._clock() >= self._next_spike:
            self._next_spike = self._clock() + SPIKE_SECONDS
            await self._check_spikes()
            await self._check_backlog()
        await self._write_pending()

    def _polled(self) -> Iterable[Signal]:
        settings = self._settings()
        if settings.storage:
            outages = self._probes.database_outages()
            if outages > self._outages:  # began (and maybe ended) since the last round
                self._outages = outages
                yield self._storage("database", True, "the database")
            yield self._storage("database", self._probes.database_down(), "the database")
            yield self._storage("spool", self._probes.spool_full(), "the capture spool")
        for view in self._probes.providers():
            if settings.providers:
                yield from _provider_signals(view)
            rule = settings.upstream_errors
            if rule is not None:
                high = view.attempts >= rule.min_attempts and view.error_rate >= rule.rate
                yield Signal(
                    "upstream_errors",
                    view.provider,
                    active=high,
                    message=bounded(
                        f"provider {view.provider} failed {view.error_rate:.0%} of its last "
                        f"{view.attempts} attempts; last error: {view.last_error or 'none'}"
                    ),
                )

    def _storage(self, subject: str, down: bool, what: str) -> Signal:
        key = ("storage", subject, "")
        if not down:
            self._since.pop(key, None)
            return Signal("storage", subject, active=False)
        since = self._since.setdefault(key, datetime.now(UTC))
        full = " and full: new requests are refused" if subject == "spool" else ""
        return Signal(
            "storage",
            subject,
            severity="critical",
            message=f"{what} is unavailable{full} (since {since:%Y-%m-%d %H:%M:%S} UTC)",
        )

    async def _check_spikes(self) -> None:
        rule = self._settings().spend_spike
        if rule is None:
            return
        today = datetime.now(UTC).date()
        try:
            spend = await spend_by_day(self._db, today - timedelta(days=rule.days), today)
        except Exception as exc:
            self._next_spike = self._clock() + TICK_SECONDS * 10  # sooner than a full period
            if unavailable(exc):
                self._db.availability.failed(exc)
                return
            raise
        for signal in spike_signals(spend, today, rule):
            self._take(signal)

    async def _check_backlog(self) -> None:
        every = self._probes.export_every()
        if every is None or not self._settings().exports:
            return
        try:
            oldest = await oldest_unexported(self._db)
        except Exception as exc:
            if unavailable(exc):
                self._db.availability.failed(exc)
                return
            raise
        self._take(backlog_signal(oldest, every, datetime.now(UTC)))

    async def _write_pending(self) -> None:
        if not self._pending:
            return
        if self._clock() - self._raised_read >= KNOWN_SECONDS:
            try:
                self._raised = await table.raised(self._db, datetime.now(UTC))
            except Exception as exc:
                if not unavailable(exc):
                    raise
                self._db.availability.failed(exc)
                return  # the signals wait for the database
            self._raised_read = self._clock()
        pending, self._pending = self._pending, {}
        for key, queue in pending.items():
            for index, signal in enumerate(queue):
                if signal.active == (key in self._raised):
                    continue
                try:
                    await self._write(signal)
                except Exception as exc:
                    # put back what is unwritten, before what came meanwhile
                    self._pending[key] = queue[index:] + self._pending.get(key, [])
                    if unavailable(exc):
                        self._db.availability.failed(exc)
                    else:  # retried next round, like an outage
                        log.exception("alert not written", kind=key[0], subject=key[1])
                    break
                if signal.active:
                    self._raised.add(key)
                else:
                    self._raised.discard(key)

    async def _write(self, signal: Signal) -> None:
        now = datetime.now(UTC)
        if not signal.active:
            await table.clear_alert(self._db, signal, now)
            return
        channels = [
            c.name
            for c in self._settings().channels.values()
            if c.wants(signal.kind, signal.severity)
        ]
        alert_id = await table.raise_alert(self._db, signal, channels, now)
        if alert_id is not None:
            self.raised_total += 1
            log.warning(
                "alert raised",
                kind=signal.kind,
                subject=signal.subject,
                severity=signal.severity,
                message=signal.message,
            )
            if channels:
                self._on_raised()


def _provider_signals(view: ProviderView) -> Iterable[Signal]:
    """A provider whose circuit is open (or probing) is out of rotation; each key dropped
    after a 401 is too."""
    out = view.state != "closed"
    yield Signal(
        "provider",
        view.provider,
        active=out,
        severity="critical",
        message=bounded(
            f"provider {view.provider} is out of rotation (circuit {view.state.replace('_', '-')}"
            f" after failing); last error: {view.last_error or 'none'}"
        ),
    )
    for key in view.keys:
        yield Signal(
            "provider",
            f"{view.provider} key {key.index}",
            active=key.dropped,
            severity="warning",
            message=(
                f"key {key.index} of provider {view.provider} was refused upstream (401) and"
                " is out of rotation until the config changes"
            ),
        )
