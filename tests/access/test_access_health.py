"""Provider and key health (access/health.py), as exchanges with a clock the test moves."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from irisgate.access.health import MAX_REST, Health, retry_after_seconds, spread


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_in_a_row_open_the_circuit_then_one_probe_decides() -> None:
    clock = Clock()
    health = Health(threshold=5, cool_down=30, clock=clock)
    for _ in range(4):
        assert health.allows("p")
        health.report("p", 0, "failed", error="upstream answered 503")
    health.report("p", 0, "ok")  # a success in between: the count starts again
    for _ in range(5):
        assert health.allows("p")
        health.report("p", 0, "failed", error="upstream answered 503")
    assert not health.allows("p")
    (view,) = health.views([("p", 1)], version=1)
    assert (view.state, view.cool_down_s, view.last_error) == ("open", 30, "upstream answered 503")
    assert view.error_rate == 9 / 10

    clock.now += 30
    assert health.allows("p")  # the probe
    assert not health.allows("p")  # everyone else waits for it
    health.report("p", 0, "failed")
    assert not health.allows("p")  # the probe failed: open again, a full cool-down
    assert health.wait("p", 1, version=1) == 30

    clock.now += 30
    assert health.allows("p")
    health.report("p", 0, "ok")
    assert health.allows("p") and health.allows("p")  # closed: everyone
    assert health.views([("p", 1)], version=1)[0].state == "closed"


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    clock = Clock()
    health = Health(threshold=1, cool_down=5, clock=clock)
    health.report("p", 0, "failed")
    clock.now += 5
    assert health.allows("p")
    health.report("p", 0, "abandoned")  # the client went away before the attempt
    assert health.allows("p")


def test_a_429_rests_only_its_key_for_the_retry_after() -> None:
    clock = Clock()
    health = Health(clock=clock)
    health.report("p", 1, "rate_limited", retry_after=20)
    assert sorted(health.keys("p", 3, version=1, session="s")) == [0, 2]
    assert health.allows("p")  # the provider itself is fine
    clock.now += 20
    assert sorted(health.keys("p", 3, version=1, session="s")) == [0, 1, 2]
    health.report("q", 0, "rate_limited", retry_after=None)  # no Retry-After: no rest
    assert health.keys("q", 1, version=1, session="s") == [0]


def test_a_401_drops_a_key_until_the_config_version_changes() -> None:
    health = Health(clock=Clock())
    health.report("p", 0, "unauthorized", version=7)
    assert health.keys("p", 2, version=7, session="s") == [1]
    assert sorted(health.keys("p", 2, version=8, session="s")) == [0, 1]
    health.report("p", 1, "unauthorized", version=7)
    assert health.wait("p", 2, version=7) == math.inf
    assert health.views([("p", 2)], version=7)[0].keys[0].dropped


def test_the_soonest_key_back_decides_the_wait() -> None:
    clock = Clock()
    health = Health(clock=clock)
    health.report("p", 0, "rate_limited", retry_after=50)
    health.report("p", 1, "rate_limited", retry_after=10)
    assert health.wait("p", 2, version=1) == 10
    clock.now += 10
    assert health.wait("p", 2, version=1) is None


def test_sessions_spread_by_weight_and_each_keeps_its_order() -> None:
    members = [("a", 1), ("b", 3)]
    firsts = [spread(f"session-{n}", members)[0] for n in range(4000)]
    share = firsts.count("b") / len(firsts)
    assert 0.72 < share < 0.78  # 3 of 4, deterministic for these sessions
    assert all(spread(f"session-{n}", members)[0] == firsts[n] for n in range(100))


def test_retry_after_in_seconds_or_as_a_date_within_bounds() -> None:
    assert retry_after_seconds("20") == 20
    assert retry_after_seconds("999999") == MAX_REST
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(later, now=now.timestamp()) == 90
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(earlier, now=now.timestamp()) == 0
