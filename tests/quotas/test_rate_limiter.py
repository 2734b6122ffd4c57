"""The rate limiter's arithmetic: the sliding window, Retry-After, tokens reserved then
counted, the share of a limit not synced yet, and memory bounded however many callers.

Time is passed in (wall clock `now`, monotonic `mono`), so nothing here waits."""

from __future__ import annotations

import pytest

from irisgate.config.model import RateLimit
from irisgate.quotas.ratelimits import Limiter, Permit, RateRefused, Use

HOUR = 3600
T0 = 1_000 * HOUR  # the start of an hour window
RPH = RateLimit("rph:<user>", "requests", 10, HOUR, "hour")
TPH = RateLimit("tph:<user>", "tokens", 100, HOUR, "hour")
CONC = RateLimit("conc:<user>", "concurrent", 2)


def _admit(
    limiter: Limiter, limit: RateLimit, now: float, tokens: int = 0, name: str = "x"
) -> Permit:
    return limiter.admit([(name, limit)], tokens, now, now)


def test_requests_are_counted_at_admission_and_the_previous_window_fades() -> None:
    limiter = Limiter()
    for _ in range(10):
        _admit(limiter, RPH, T0 + 10)
    with pytest.raises(RateRefused) as refused:
        _admit(limiter, RPH, T0 + 20)
    # the window ends at T0 + 3600; then its 10 requests weigh 10 x (1 - elapsed) and one more
    # fits once they weigh at most 9: a tenth of the next window, 360 s, later
    assert refused.value.retry_after == HOUR - 20 + 360
    assert 'rate limit "x" reached (10 requests per hour; 10 requests used' in str(refused.value)
    with pytest.raises(RateRefused):
        _admit(limiter, RPH, T0 + HOUR + 359)
    _admit(limiter, RPH, T0 + HOUR + 361)
    with pytest.raises(RateRefused) as again:
        _admit(limiter, RPH, T0 + HOUR + 362)
    assert again.value.retry_after == 720 - 362  # until the old window weighs 8 (at 20 %)


def test_tokens_are_reserved_at_admission_and_the_recorded_ones_counted() -> None:
    limiter = Limiter()
    big = _admit(limiter, TPH, T0, tokens=150)  # admitted: nothing used yet
    with pytest.raises(RateRefused):  # its estimate holds the whole limit while it runs
        _admit(limiter, TPH, T0)
    limiter.settle(big, 30, T0 + 1)  # it used 30 of its 150
    counter = limiter.counters["x"]
    assert counter.own.held == 0
    assert counter.used(T0 + 1) == 30
    limiter.settle(big, 30, T0 + 1)  # settling twice changes nothing
    assert counter.used(T0 + 1) == 30
    _admit(limiter, TPH, T0 + 2, tokens=10)


def test_concurrency_counts_requests_in_flight() -> None:
    limiter = Limiter()
    first = _admit(limiter, CONC, T0)
    _admit(limiter, CONC, T0)
    with pytest.raises(RateRefused) as refused:
        _admit(limiter, CONC, T0)
    assert refused.value.retry_after == 1
    assert "2 requests are already in flight" in str(refused.value)
    limiter.settle(first, 0, T0)
    _admit(limiter, CONC, T0)


def test_a_refused_request_takes_nothing_from_the_other_limits() -> None:
    limiter = Limiter()
    both = [("r", RPH), ("c", CONC)]
    limiter.admit(both, 0, T0, T0)
    limiter.admit(both, 0, T0, T0)
    with pytest.raises(RateRefused):
        limiter.admit(both, 0, T0, T0)  # concurrency refuses: no request is counted
    assert limiter.counters["r"].own.current == 2


def test_other_instances_count_and_an_unsynced_limit_admits_only_a_share() -> None:
    limiter = Limiter()
    limiter.instances = 2
    for _ in range(5):  # 10 / 2 instances
        _admit(limiter, RPH, T0)
    with pytest.raises(RateRefused):
        _admit(limiter, RPH, T0)
    counter = limiter.counters["x"]
    counter.synced, counter.others = True, Use(window=T0, current=4)
    _admit(limiter, RPH, T0)  # 5 + 4 others + 1 = 10
    with pytest.raises(RateRefused):
        _admit(limiter, RPH, T0)
    # another instance's report of a limit this one has not used yet is known at once
    limiter.remote, limiter.remote_at = {"y": [(HOUR, Use(window=T0, current=10))]}, T0
    with pytest.raises(RateRefused):
        _admit(limiter, RPH, T0, name="y")


def test_memory_is_bounded_however_many_callers() -> None:
    limiter = Limiter(max_counters=100)
    held = _admit(limiter, CONC, T0, name="busy")
    for i in range(1000):
        _admit(limiter, RPH, T0 + 1, name=f"user{i}")
    assert len(limiter.counters) <= 100
    assert "busy" in limiter.counters, "a limit with a request in flight is never dropped"
    limiter.settle(held, 0, T0)
    limiter.sweep(T0 + 3 * HOUR, T0 + 3 * HOUR)  # idle for two windows: all dropped
    assert limiter.counters == {}
    assert len(limiter.dropped) <= 100
