"""Money, rate and duration strings as Aperture config files write them.

Money is `"$10.00"` and becomes integer nanodollars (1e-9 USD); a rate is `"$5.00/day"`;
durations are Go `time.ParseDuration` strings (`"500ms"`, `"1m30s"`), plus whole days
(`"30d"`) where the retention setting allows them. Each parser raises `ValueError` with a
message fit to show next to the offending key.
"""

from __future__ import annotations

import re
from decimal import Decimal

NANODOLLARS_PER_DOLLAR = 1_000_000_000

#: Rate units and their length in seconds; a month is 30 days, as in Aperture.
RATE_PERIODS: dict[str, int] = {
    "min": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
}

_MONEY = re.compile(r"\$([0-9]+(?:\.[0-9]+)?)")
# Go accepts both micro signs: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU.
_DURATION_PART = re.compile("([0-9]*\\.?[0-9]*)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DAYS = re.compile(r"([0-9]+)d")


def parse_dollars(text: str) -> int:
    """`"$10.00"` -> 10_000_000_000 nanodollars. Digits only: no sign, no thousands separator."""
    match = _MONEY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'"{text}" is not a dollar amount like "$10.00"')
    nanos = Decimal(match.group(1)) * NANODOLLARS_PER_DOLLAR
    if nanos != nanos.to_integral_value():
        raise ValueError(f'"{text}" is more precise than a nanodollar ($0.000000001)')
    return int(nanos)


def parse_rate(text: str) -> tuple[int, int]:
    """`"$5.00/day"` -> (5_000_000_000, 86400): nanodollars refilled per period in seconds."""
    amount, slash, unit = text.partition("/")
    if not slash:
        raise ValueError(f'"{text}" is not a rate like "$5.00/day"')
    period = RATE_PERIODS.get(unit.strip())
    if period is None:
        units = ", ".join(RATE_PERIODS)
        raise ValueError(f'"{text}" has unknown unit "{unit.strip()}" (use one of: {units})')
    return parse_dollars(amount), period


def parse_go_duration(text: str) -> float:
    """A Go duration string (`"500ms"`, `"5s"`, `"1m30s"`, `"0"`) -> seconds.

    Negative durations are refused: no config setting means anything by them.
    """
    if text == "0":
        return 0.0
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        number = match.group(1)
        if match.start() != position or number in ("", "."):
            break
        total += float(number) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        raise ValueError(f'"{text}" is not a duration like "500ms", "5s" or "1m30s"')
    return total


def parse_days_or_duration(text: str) -> float:
    """Whole days (`"30d"`) or a Go duration (`"720h"`) -> seconds."""
    days = _DAYS.fullmatch(text)
    if days is not None:
        return int(days.group(1)) * 86400.0
    try:
        return parse_go_duration(text)
    except ValueError:
        raise ValueError(f'"{text}" is not a duration like "720h" or "30d"') from None
