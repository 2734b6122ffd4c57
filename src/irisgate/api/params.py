"""Query parameters of the dashboard endpoints: date ranges, filters, paging, sorting.

Every bad value is a 400 naming the parameter, in irisgate's `{"error": ...}` envelope.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request

from irisgate.api.auth import ApiError
from irisgate.store.reports import Filters

#: Days shown when a request names no range.
DEFAULT_DAYS = 30
#: The longest range one request may ask for.
MAX_DAYS = 400


def day_param(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
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
    user = request.query_params.get("user") or None
    return Filters(since, until, user, request.query_params.get("model") or None)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def choice_param(request: Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.query_params.get(name) or default
    if raw not in choices:
        raise ApiError(400, f"'{name}' must be one of {', '.join(choices)}; got {raw!r}")
    return raw


def time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"'{name}' must be an ISO 8601 time, got {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
