"""Requests in flight on one bucket: when the first of them is expected to settle.

A refusal because a bucket's money is reserved by requests still running is not "exhausted":
the money comes back (all but what they cost) as they settle. Its `Retry-After` is the time
until the oldest reservation is expected to settle, from how long this bucket's reservations
have lasted so far (an average that moves a fifth of the way to each new duration).
"""

from __future__ import annotations

import math

#: how long a reservation is assumed to last before one has been settled
SEED_SECONDS = 5.0


class InFlight:
    __slots__ = ("_started", "_typical")

    def __init__(self) -> None:
        self._started: dict[int, float] = {}  # reservation -> monotonic start, oldest first
        self._typical = SEED_SECONDS

    def __len__(self) -> int:
        return len(self._started)

    def begin(self, key: int, now: float) -> None:
        self._started[key] = now

    def end(self, key: int, now: float) -> None:
        started = self._started.pop(key, None)
        if started is not None:
            self._typical += (now - started - self._typical) / 5

    def next_settlement(self, now: float) -> int:
        """Whole seconds (at least 1) until the oldest reservation is expected to settle."""
        oldest = next(iter(self._started.values()), now)
        return max(1, math.ceil(self._typical - (now - oldest)))
