"""Query parameters of the dashboard endpoints: date ranges, filters, paging, sorting.

Every bad value is a 400 naming the parameter, in irisgate's `{"error": ...}` envelope.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request

from irisgate.api.auth import ApiError
from irisgate.store.reports import Filters

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: RFC 3339 date-time: a day, a time and an offset (`Z` or `+hh:mm`)
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
#: Days shown when a request names no range.
DEFAULT_DAYS = 30
#: The longest range one request may ask for.
MAX_DAYS = 400


def query_value(request: Request, name: str) -> str | None:
    """Query parameter `name` (None when absent); 400 when it is given more than once, since
    which of the values would count depends on who reads them."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ApiError(400, f"'{name}' is given {len(values)} times; give it once")
    return values[0] if values else None


def day_param(request: Request, name: str) -> date | None:
    raw = query_value(request, name)
    if not raw:
        return None
    try:
        # exactly YYYY-MM-DD: fromisoformat alone also takes 20240101 and 2024-W01-1
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"'{name}' must be a day as YYYY-MM-DD, got {raw!r}") from None


def filters(request: Request) -> Filters:
    """The range (`since` inclusive, `until` exclusive; default: the last 30 days including
    today), `user` and `model`. Who may see what is the endpoint's decision."""
    until = day_param(request, "until") or datetime.now(UTC).date() + timedelta(days=1)
    since = day_param(request, "since") or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise ApiError(400, "'since' must be before 'until'")
    if (until - since).days > MAX_DAYS:
        raise ApiError(400, f"the range from 'since' to 'until' may span at most {MAX_DAYS} days")
    user = query_value(request, "user") or None
    return Filters(since, until, user, query_value(request, "model") or None)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = query_value(request, name)
    if raw is None or raw == "":
        return default
    # ASCII digits only: str.isdigit() is also true for "²", which int() refuses
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ApiError(400, f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def choice_param(request: Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = query_value(request, name) or default
    if raw not in choices:
        raise ApiError(400, f"'{name}' must be one of {', '.join(choices)}; got {raw!r}")
    return raw


def time_param(request: Request, name: str) -> datetime | None:
    raw = query_value(request, name)
    if not raw:
        return None
    try:
        if not _TIME.fullmatch(raw):
            raise ValueError(raw)
        value = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(
            400, f"'{name}' must be an RFC 3339 time like 2026-01-31T00:00:00Z, got {raw!r}"
        ) from None
