"""Dollar amounts at the API boundary: parsed from what people type, shown both ways.

Inside irisgate money is integer nanodollars. The management API accepts an amount as a
decimal string (`"5"`, `"5.25"`, `"$5.25"`) or a JSON number (`5.25`), and shows balances as
integer nanodollars plus a dollar string (`"$4.31"`, more decimals when needed).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NANO = 1_000_000_000
_AMOUNT = re.compile(r"-?\$?-?[0-9]+(\.[0-9]+)?")


def parse_amount(value: object, *, allow_negative: bool = False) -> int:
    """Nanodollars from `"$5.00"`, `"5.00"`, `5` or `5.0`; ValueError naming what is wrong."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('must be a dollar amount: a decimal string like "5.00" or a number')
    text = value.strip() if isinstance(value, str) else repr(value)
    if isinstance(value, str) and not _AMOUNT.fullmatch(text):
        raise ValueError(f'"{value}" is not a dollar amount like "5.00" or "$5.00"')
    negative = text.startswith(("-", "$-"))
    try:
        dollars = Decimal(text.replace("$", "").replace("-", ""))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a dollar amount") from None
    if not dollars.is_finite():
        raise ValueError(f"{value!r} is not a dollar amount")
    nanos = dollars * NANO
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{value!r} is more precise than a nanodollar ($0.000000001)")
    if negative and nanos and not allow_negative:
        raise ValueError(f"{value!r} must not be negative")
    return -int(nanos) if negative else int(nanos)


def dollars(nanos: int) -> str:
    """`4310000000` -> `"$4.31"`; at least two decimals, as many as needed, sign in front."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANO)
    digits = f"{frac:09d}".rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{digits}"
