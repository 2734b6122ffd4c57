"""Rate limits in memory: requests or tokens per period, and requests in flight.

Each concrete limit (a `rate_limits` template expanded for one caller, e.g. `rpm:alice`) is a
`Counter` of this instance. Periodic limits count in a *sliding window*: the count of the
current fixed window (aligned to the epoch, so every instance has the same windows) plus
the previous window's count weighted by the part of it still inside the sliding period.

- requests: admitted while `used + 1 <= limit`; the request counts at admission.
- tokens: admitted while `used < limit`; the request's estimate (prompt size / 4 plus its
  output limit or the model's typical answer) is *reserved* until it settles, and then its
  recorded tokens (input + output) count in the window. One request can take a limit over
  by what it uses beyond what was left, as with quotas.
- concurrent: admitted while fewer than `limit` of the caller's requests are in flight.

Admission checks every limit that applies and then takes them all, without an `await` in
between, so concurrent requests on one instance see each other exactly.

Other instances: `Limiter.remote` holds every other live instance's use of every limit as
of the last background sync (`irisgate.quotas.ratesync`); `Counter.others` is their sum for
one limit, added to this instance's own. A limit that no other instance reported at the
last sync and that this instance has not synced yet admits only this instance's share of
it (the limit divided by the live instances), so a limit new to every instance at once
cannot be overrun many times over. Counters idle for two periods (nothing in flight) are
dropped, and at most `MAX_COUNTERS` are kept: past that, a new counter replaces the least
recently used one with nothing held (its count is forgotten here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from irisgate.config.model import RateLimit

#: counters kept at most (beyond, the least recently used with nothing held are dropped)
MAX_COUNTERS = 50_000
#: a concurrency counter with nothing in flight is dropped after this long unused
IDLE_SECONDS = 60.0


@dataclass(slots=True)
class Use:
    """Use of one limit in the window starting at `window` (epoch seconds): counted in it,
    in the window before it, and held (in flight, or tokens reserved)."""

    window: int = 0
    current: int = 0
    previous: int = 0
    held: int = 0

    def at(self, window: int, period: int) -> tuple[int, int]:
        """(current, previous) as seen from the window starting at `window`."""
        if self.window == window:
            return self.current, self.previous
        if self.window == window - period:
            return 0, self.current
        return 0, 0

    def roll(self, window: int, period: int) -> None:
        """Move to the window starting at `window` (never backwards)."""
        if window <= self.window:
            return
        self.current, self.previous = self.at(window, period)
        self.window = window


@dataclass(slots=True)
class Counter:
    name: str
    limit: RateLimit
    own: Use = field(default_factory=Use)
    others: Use = field(default_factory=Use)  # every other instance, at the last sync
    synced: bool = False  # `others` is known (from a sync, or another instance's report)
    dirty: bool = True  # `own` changed since the last sync
    used_at: float = 0.0  # monotonic

    def window_of(self, now: float) -> int:
        period = self.limit.period_seconds
        return int(now // period) * period if period else 0

    def used(self, now: float) -> float:
        """This limit's use at wall-clock time `now`, every instance together."""
        held = self.own.held + self.others.held
        period = self.limit.period_seconds
        if not period:
            return held
        window = self.window_of(now)
        cur, prev = self.own.at(window, period)
        other_cur, other_prev = self.others.at(window, period)
        weight = 1 - (now - window) / period
        return (prev + other_prev) * weight + cur + other_cur + held

    def idle(self, now: float, mono: float) -> bool:
        if self.own.held:
            return False
        period = self.limit.period_seconds
        if not period:
            return mono - self.used_at >= IDLE_SECONDS
        return self.window_of(now) >= self.own.window + 2 * period

    def retry_after(self, now: float, allowed: float) -> int:
        """Whole seconds (at least 1) until `used` is at most `allowed - 1` again, if nothing
        else arrives; held use is assumed to settle within a second."""
        period = self.limit.period_seconds
        if not period:
            return 1
        need = allowed - 1
        window = self.window_of(now)
        cur = sum(use.at(window, period)[0] for use in (self.own, self.others))
        prev = sum(use.at(window, period)[1] for use in (self.own, self.others))
        elapsed = (now - window) / period
        if cur <= need:  # the previous window's weight has to fade enough
            if prev <= 0:
                return 1
            fraction = 1 - (need - cur) / prev
            wait = (fraction - elapsed) * period
        else:  # this window becomes the previous one and has to fade in turn
            fraction = 1 - need / cur if cur > 0 else 0
            wait = (1 - elapsed) * period + max(0.0, fraction) * period
        return max(1, math.ceil(wait))


def others_of(counter: Counter, rows: Iterable[tuple[int, Use]], now: float) -> Use:
    """The sum of other instances' rows of `counter`'s limit, seen from `now`; rows written
    under another period (the limit was redefined) are left out."""
    period = counter.limit.period_seconds
    window = counter.window_of(now)
    total = Use(window=window)
    for row_period, use in rows:
        if row_period != period:
            continue
        current, previous = use.at(window, period) if period else (0, 0)
        total.current += current
        total.previous += previous
        total.held += use.held
    return total


@dataclass(slots=True)
class Permit:
    """What one admitted request holds: released (and its tokens counted) by `settle`."""

    counters: list[Counter]
    reserved: list[int]  # per counter: tokens reserved, or 1 in flight (0: nothing held)
    settled: bool = False


class RateRefused(Exception):
    """A limit is reached. `str()` is for the caller; it names the limit."""

    def __init__(self, message: str, retry_after: int, template: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.template = template


class Limiter:
    """This instance's counters (see module doc). `instances`: live instances at the last
    sync, this one included; it sizes the share of a limit not synced yet."""

    def __init__(self, max_counters: int = MAX_COUNTERS) -> None:
        self.counters: dict[str, Counter] = {}
        self.instances = 1
        #: other live instances' rows at the last sync: name -> [(period_s, use)]
        self.remote: dict[str, list[tuple[int, Use]]] = {}
        self.remote_at = 0.0  # wall-clock time of the last sync
        self.max_counters = max_counters
        self.unsynced = 0  # counters created since the last sync
        self.dropped: list[str] = []  # names dropped since the last sync, own rows to delete

    def counter(self, name: str, limit: RateLimit, mono: float) -> Counter:
        counter = self.counters.pop(name, None)  # re-inserted last: least recently used first
        if counter is None or (counter.limit is not limit and counter.limit != limit):
            if counter is None and len(self.counters) >= self.max_counters:
                self.sweep(time.time(), mono, room=1)
            counter = Counter(name, limit)
            rows = self.remote.get(name)
            if rows is not None:
                counter.others = others_of(counter, rows, self.remote_at)
                counter.synced = True
            else:
                self.unsynced += 1
        counter.used_at = mono
        self.counters[name] = counter
        return counter

    def admit(
        self, limits: Iterable[tuple[str, RateLimit]], tokens: int, now: float, mono: float
    ) -> Permit:
        """Take one request (with `tokens` estimated) from every limit, or none of them."""
        counters = [self.counter(name, limit, mono) for name, limit in limits]
        for counter in counters:
            self._check(counter, now)
        reserved: list[int] = []
        for counter in counters:
            kind, period = counter.limit.kind, counter.limit.period_seconds
            counter.own.roll(counter.window_of(now), period)
            if kind == "requests":
                counter.own.current += 1
                reserved.append(0)
            else:
                held = 1 if kind == "concurrent" else max(tokens, 1)
                counter.own.held += held
                reserved.append(held)
            counter.dirty = True
        return Permit(counters, reserved)

    def _check(self, counter: Counter, now: float) -> None:
        limit = counter.limit
        allowed: float = limit.limit
        if not counter.synced and self.instances > 1:
            allowed = max(1, limit.limit // self.instances)
        used = counter.used(now)
        over = used >= allowed if limit.kind == "tokens" else used + 1 > allowed
        if not over:
            return
        wait = counter.retry_after(now, allowed)
        if limit.kind == "concurrent":
            what = f"{limit.limit} requests are already in flight"
        else:
            what = f"{round(used)} {limit.kind} used in the last {limit.per}"
        raise RateRefused(
            f'rate limit "{counter.name}" reached ({limit.describe()}; {what}); retry in {wait} s',
            wait,
            limit.template,
        )

    def settle(self, permit: Permit, tokens: int, now: float) -> None:
        """Release what the request held; a token limit counts its recorded `tokens`."""
        if permit.settled:
            return
        permit.settled = True
        for counter, held in zip(permit.counters, permit.reserved, strict=True):
            if not held:
                continue
            counter.own.held = max(0, counter.own.held - held)
            if counter.limit.kind == "tokens":
                counter.own.roll(counter.window_of(now), counter.limit.period_seconds)
                counter.own.current += tokens
            counter.dirty = True

    def sweep(self, now: float, mono: float, room: int = 0) -> None:
        """Drop idle counters; with `room`, also the least recently used ones with nothing
        held until that many more fit under `max_counters`."""
        for name, counter in list(self.counters.items()):
            if counter.idle(now, mono):
                self._drop(name)
        excess = len(self.counters) + room - self.max_counters
        for name, counter in list(self.counters.items()):
            if excess <= 0:
                break
            if not counter.own.held:
                self._drop(name)
                excess -= 1

    def _drop(self, name: str) -> None:
        del self.counters[name]
        if len(self.dropped) < self.max_counters:  # else their rows are left to age out
            self.dropped.append(name)
