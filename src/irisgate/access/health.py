"""Provider and key health, per instance: who may be tried now, and what the dashboard shows.

The gateway reports every upstream attempt's outcome (`Health.report`); routing asks which
providers and keys may be tried (`Health.allows`, `Health.keys`). Three mechanisms:

- **Rest** (per key): a 429 with `Retry-After` rests the key that answered it for that long
  (capped at `MAX_REST`); a provider with one key rests as a whole.
- **Drop** (per key): a 401 to a key irisgate injected takes that key out of rotation until
  the config changes (a new config version); the caller's own key (passthrough) never is.
- **Circuit breaker** (per provider): `threshold` failures in a row (5xx, connect error,
  timeout before the answer's head) open the circuit for `cool_down` seconds; then one
  request is let through as a probe (half-open) while the others keep away: its success
  closes the circuit, its failure opens it again.

State is in memory, per process: instances learn about an outage each on their own, which
costs each at most `threshold` failed attempts. Nothing here does I/O; the clock is a
parameter so that tests and the dashboard read the same numbers.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: the longest rest a `Retry-After` can impose (a bigger value is read as this)
MAX_REST = 3600.0
#: outcomes kept per provider for its error rate
WINDOW = 100
#: the longest error text kept per provider
ERROR_LIMIT = 300

State = Literal["closed", "open", "half_open"]
Outcome = Literal["ok", "failed", "rate_limited", "unauthorized", "abandoned"]


@dataclass(slots=True)
class _Key:
    rest_until: float = 0.0  # monotonic
    dropped_in: int | None = None  # the config version in which a 401 dropped it


@dataclass(slots=True)
class _Provider:
    state: State = "closed"
    failures: int = 0  # in a row
    open_until: float = 0.0  # monotonic
    probing: bool = False  # half-open and its one probe is out
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))  # True: error
    last_error: str = ""
    last_error_at: float | None = None  # wall clock (time.time)
    keys: dict[int, _Key] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyView:
    index: int
    resting_s: float  # seconds of rest left (0: not resting)
    dropped: bool


@dataclass(frozen=True, slots=True)
class ProviderView:
    """One provider's health as `/metrics` and the dashboard show it."""

    provider: str
    state: State
    error_rate: float  # over the last WINDOW attempts (0 when none)
    attempts: int  # how many of those there are
    last_error: str
    last_error_at: float | None  # Unix seconds
    cool_down_s: float  # seconds until an open circuit lets a probe through
    keys: tuple[KeyView, ...]


class Health:
    """The health of every provider and key this process has tried (see the module doc)."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cool_down: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cool_down = cool_down
        self._clock = clock
        self._providers: dict[str, _Provider] = {}

    def calm(self, provider: str) -> bool:
        """Whether nothing is known against `provider` (no failure, rest or drop seen):
        then it and every key of it may be tried, without asking further."""
        return provider not in self._providers

    def allows(self, provider: str) -> bool:
        """Whether the circuit lets a request to `provider` through now. Taking the
        half-open probe is part of the answer: a True for it must be followed by a
        `report` (an `abandoned` one when the attempt never ran)."""
        state = self._providers.get(provider)
        if state is None or state.state == "closed":
            return True
        if state.state == "open":
            if self._clock() < state.open_until:
                return False
            state.state = "half_open"
        if state.probing:
            return False
        state.probing = True
        return True

    def keys(self, provider: str, count: int, version: int, session: str) -> list[int]:
        """The key indexes of `provider` that may be tried now (not resting, not dropped in
        config `version`), in the order to try them: spread by `session` (the same session
        gets the same order while nothing changes)."""
        state = self._providers.get(provider)
        indexes: Iterable[int] = range(count)
        if state is not None and state.keys:
            now = self._clock()
            indexes = [i for i in indexes if _usable(state.keys.get(i), now, version)]
        if count == 1:
            return list(indexes)
        return sorted(indexes, key=lambda i: _score(session, f"{provider}#{i}", 1))

    def report(
        self,
        provider: str,
        key: int,
        outcome: Outcome,
        *,
        version: int = 0,
        retry_after: float | None = None,
        error: str = "",
    ) -> None:
        """What one attempt at `provider` with key `key` came to."""
        state = self._providers.get(provider)
        if state is None:
            if outcome in ("ok", "abandoned"):  # nothing to remember about a healthy provider
                return
            state = self._providers[provider] = _Provider()
        was_probe, state.probing = state.probing, False
        if outcome == "abandoned":
            return
        failed = outcome != "ok"
        state.recent.append(failed)
        if failed:
            state.last_error = error[:ERROR_LIMIT]
            state.last_error_at = time.time()
        if outcome == "rate_limited":
            if retry_after is not None:
                key_state = state.keys.setdefault(key, _Key())
                key_state.rest_until = self._clock() + min(retry_after, MAX_REST)
            return
        if outcome == "unauthorized":
            state.keys.setdefault(key, _Key()).dropped_in = version
            return
        if outcome == "ok":
            state.failures = 0
            state.state = "closed"
            return
        state.failures += 1
        if was_probe or state.failures >= self.threshold:
            state.state = "open"
            state.open_until = self._clock() + self.cool_down

    def wait(self, provider: str, count: int, version: int) -> float | None:
        """Seconds until `provider` may be tried again (its circuit's cool-down or its
        keys' rest, whichever ends later for the soonest key); None when it may be now."""
        state = self._providers.get(provider)
        if state is None:
            return None
        now = self._clock()
        circuit = state.open_until - now if state.state == "open" else 0.0
        rests = [
            key.rest_until - now if key is not None else 0.0
            for key in (state.keys.get(i) for i in range(count))
            if key is None or key.dropped_in != version
        ]
        if not rests:
            return math.inf  # every key was dropped: until the config changes
        wait = max(circuit, min(rests))
        return wait if wait > 0 else None

    def views(self, providers: Iterable[tuple[str, int]], version: int) -> list[ProviderView]:
        """(provider id, key count) → their health, in that order."""
        now = self._clock()
        views = []
        for provider, count in providers:
            state = self._providers.get(provider) or _Provider()
            recent = state.recent
            keys = tuple(
                KeyView(
                    i,
                    max(0.0, key.rest_until - now) if key is not None else 0.0,
                    key is not None and key.dropped_in == version,
                )
                for i, key in ((i, state.keys.get(i)) for i in range(count))
            )
            cool = max(0.0, state.open_until - now) if state.state == "open" else 0.0
            views.append(
                ProviderView(
                    provider=provider,
                    state=state.state,
                    error_rate=sum(recent) / len(recent) if recent else 0.0,
                    attempts=len(recent),
                    last_error=state.last_error,
                    last_error_at=state.last_error_at,
                    cool_down_s=cool,
                    keys=keys,
                )
            )
        return views


def _usable(key: _Key | None, now: float, version: int) -> bool:
    return key is None or (key.rest_until <= now and key.dropped_in != version)


def _score(session: str, member: str, weight: int) -> float:
    """Weighted rendezvous hashing: the member with the lowest score goes first; over many
    sessions each member comes first in proportion to its weight, and one session always
    gets the same order of the same members."""
    digest = hashlib.blake2b(f"{session}\x00{member}".encode(), digest_size=8).digest()
    unit = (int.from_bytes(digest, "big") + 1) / 2**64  # in (0, 1]
    return -math.log(unit) / weight


def spread(session: str, members: list[tuple[str, int]]) -> list[str]:
    """`members` (name, weight) in the order `session` tries them (see `_score`)."""
    return [name for name, _ in sorted(members, key=lambda m: _score(session, m[0], m[1]))]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A `Retry-After` header (delay-seconds or an HTTP date) in seconds, capped at
    `MAX_REST`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_REST)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_REST)


class HealthCollector(Collector):
    """Provider and key health for `/metrics`, read when scraped (no per-request cost).
    `providers()` gives (provider id, key count) of the current config, `version()` its
    version; labels are bounded by the config."""

    def __init__(
        self,
        health: Health,
        providers: Callable[[], Iterable[tuple[str, int]]],
        version: Callable[[], int],
    ) -> None:
        self._health, self._providers, self._version = health, providers, version

    def collect(self) -> Iterable[Metric]:
        circuit, errors, cool, keys = self._families()
        for view in self._health.views(self._providers(), self._version()):
            for state in ("closed", "half_open", "open"):
                circuit.add_metric([view.provider, state], 1.0 if view.state == state else 0.0)
            errors.add_metric([view.provider], view.error_rate)
            cool.add_metric([view.provider], view.cool_down_s)
            for key in view.keys:
                up = 0.0 if key.dropped or key.resting_s > 0 else 1.0
                keys.add_metric([view.provider, str(key.index)], up)
        return [circuit, errors, cool, keys]

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "irisgate_provider_circuit",
                "1 for the state of the provider's circuit breaker (closed: in rotation; "
                "open: left out after repeated failures; half_open: one probe let through).",
                labels=["provider", "state"],
            ),
            GaugeMetricFamily(
                "irisgate_provider_error_ratio",
                f"Share of the provider's last {WINDOW} upstream attempts that failed "
                "(5xx, 429, 401, no answer).",
                labels=["provider"],
            ),
            GaugeMetricFamily(
                "irisgate_provider_cool_down_seconds",
                "Seconds until an open circuit lets a probe request through (0 otherwise).",
                labels=["provider"],
            ),
            GaugeMetricFamily(
                "irisgate_provider_key_available",
                "1 while the key (by index in the provider's apikey list) is in rotation; 0 "
                "while it rests after a 429 or was dropped after a 401.",
                labels=["provider", "key"],
            ),
        )
