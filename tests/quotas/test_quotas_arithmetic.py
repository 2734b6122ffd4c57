"""Refill and dollar amounts: the arithmetic every balance goes through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from irisgate.quotas.amounts import dollars, parse_amount
from irisgate.quotas.refill import refilled

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400
FIVE = 5_000_000_000


def test_refill_is_continuous_and_capped_at_capacity() -> None:
    # $5/day: after 6 hours a quarter of it
    total, since = refilled(
        0, 10 * FIVE, rate=FIVE, period_s=DAY, since=T0, now=T0 + timedelta(hours=6)
    )
    assert (total, since) == (FIVE // 4, T0 + timedelta(hours=6))
    total, _ = refilled(
        9 * FIVE, 10 * FIVE, rate=FIVE, period_s=DAY, since=T0, now=T0 + timedelta(days=3)
    )
    assert total == 10 * FIVE


def test_refill_of_a_negative_balance_and_of_a_lowered_capacity() -> None:
    total, _ = refilled(-FIVE, FIVE, rate=FIVE, period_s=DAY, since=T0, now=T0 + timedelta(days=1))
    assert total == 0
    total, since = refilled(3 * FIVE, FIVE, rate=FIVE, period_s=DAY, since=T0, now=T0)
    assert (total, since) == (FIVE, T0)


def test_tiny_rates_accrue_instead_of_rounding_away() -> None:
    # 1 nanodollar per day: a minute credits nothing, and the start time is kept for later
    total, since = refilled(0, 10, rate=1, period_s=DAY, since=T0, now=T0 + timedelta(minutes=1))
    assert (total, since) == (0, T0)
    total, _ = refilled(0, 10, rate=1, period_s=DAY, since=since, now=T0 + timedelta(days=1))
    assert total == 1


def test_zero_rate_never_refills() -> None:
    total, _ = refilled(-3, FIVE, rate=0, period_s=DAY, since=T0, now=T0 + timedelta(days=365))
    assert total == -3


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        ("5", FIVE),
        ("$5.00", FIVE),
        ("5.25", 5_250_000_000),
        (1.25, 1_250_000_000),
        (2, 2_000_000_000),
        ("0.000000001", 1),
        (" $0.10 ", 100_000_000),
    ],
)
def test_amounts_parse_from_strings_and_numbers(value: object, nanos: int) -> None:
    assert parse_amount(value) == nanos


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "is not a dollar amount"),
        ("-1", "must not be negative"),
        (True, "must be a dollar amount"),
        (None, "must be a dollar amount"),
        ("0.0000000001", "more precise than a nanodollar"),
        ("1e3", "is not a dollar amount"),
        ("nan", "is not a dollar amount"),
    ],
)
def test_bad_amounts_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_amount(value)


def test_negative_amounts_when_allowed() -> None:
    assert parse_amount("-$1.5", allow_negative=True) == -1_500_000_000


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (4_310_000_000, "$4.31"),
        (10_000_000_000, "$10.00"),
        (1, "$0.000000001"),
        (0, "$0.00"),
        (-12_300, "-$0.0000123"),
    ],
)
def test_dollars_show_as_many_decimals_as_needed(nanos: int, text: str) -> None:
    assert dollars(nanos) == text
