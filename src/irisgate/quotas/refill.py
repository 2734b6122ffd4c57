"""Continuous refill of a bucket, in integer nanodollars (reference §5.1).

A bucket gains `rate` nanodollars per `period` seconds, never above `capacity`. Refill is
computed lazily from the time it was last credited: credit = rate * elapsed // period, whole
nanodollars only. When the credit rounds to 0 the start time is kept, so a slow rate still
accrues over many small steps; time spent full is never banked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

_MICROSECOND = timedelta(microseconds=1)


def refilled(
    total: int, capacity: int, *, rate: int, period_s: int, since: datetime, now: datetime
) -> tuple[int, datetime]:
    """(balance after refill, new `since`) for a balance of `total` last credited at `since`.

    A balance above capacity (the capacity was lowered) comes back down to it.
    """
    if total >= capacity:
        return capacity, now
    elapsed_us = max(0, (now - since) // _MICROSECOND)
    credit = rate * elapsed_us // (period_s * 1_000_000)
    if credit <= 0:
        return total, since
    return min(capacity, total + credit), now
