"""What every page and management API handler shares: who calls, JSON answers, API errors and
query parameters.

Callers are identified with the same identity and grants as the LLM paths (`identify`,
`require_role`, `require_admin`). Management errors use irisgate's JSON envelope
`{"error": "<message>"}` (Aperture's shape, e.g. `access denied: no role granted`); every bad
query parameter is a 400 naming the parameter, in that envelope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from irisgate.access.grants import Access
from irisgate.config.model import FilterableHeader
from irisgate.identity import Identity, IdentityRefused, SignInRequired
from irisgate.runtime import Runtime
from irisgate.store.availability import unavailable
from irisgate.store.reports import Filters, Status
from irisgate.telemetry.record import KINDS, NAME_LIMIT, recorded_name

#: where an error must come from to be the database's (asyncpg raises plain OSErrors)
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "irisgate.store")
DATABASE_DOWN = "the database is unavailable; try again shortly"

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


def json_response(data: Any, status: int = 200) -> Response:
    """`data` as a JSON answer (dict keys that are not strings, such as dates, as strings)."""
    return Response(
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
    )


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> Response:
        return json_response({"error": self.message, **self.extra}, self.status)


@dataclass(frozen=True, slots=True)
class Caller:
    identity: Identity
    access: Access

    @property
    def is_admin(self) -> bool:
        return self.access.is_admin


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


async def identify(request: Request) -> Caller:
    runtime = runtime_of(request)
    client = request.scope.get("client")
    try:
        identity = await runtime.resolver.resolve(client, request.scope["headers"])
    except SignInRequired as exc:
        raise ApiError(401, str(exc)) from None
    except IdentityRefused as exc:  # 401 for an API key that is not valid
        raise ApiError(exc.status, f"access denied: {exc}") from None
    return Caller(identity, runtime.snapshot.grants.access_for(identity))


async def require_role(request: Request) -> Caller:
    caller = await identify(request)
    if caller.access.role is None:
        raise ApiError(403, "access denied: no role granted")
    return caller


async def require_admin(request: Request) -> Caller:
    caller = await require_role(request)
    if not caller.is_admin:
        raise ApiError(403, "access denied: admin role required")
    return caller


async def database_error(request: Request, exc: Exception) -> Response:
    """A management call that could not reach the database: 503 with a message that says
    so (the outage is logged once, see store/availability.py). Any other error is re-raised
    (a 500, logged with its traceback)."""
    if not (unavailable(exc) and _raised_by_database(exc.__traceback__)):
        raise exc
    runtime_of(request).db.availability.failed(exc)
    response = json_response({"error": DATABASE_DOWN}, 503)
    response.headers["retry-after"] = "5"
    return response


def _raised_by_database(tb: TracebackType | None) -> bool:
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


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


#: The longest name a filter may give (recorded names are cut to this length, `…` included).
MAX_FILTER = NAME_LIMIT


def filters(request: Request, caller: Caller | None = None) -> Filters:
    """The range (`since` inclusive, `until` exclusive; default: the last 30 days including
    today), `user`, `model`, `agent`, `status` (a code such as 429, or a class such as 5xx),
    `kind` (what the requests asked for: chat, embedding, image, …) and an indexed header:
    `header` (a `database.headers.filterable` name the `caller` is granted through
    `filterable_headers`) with `header_value` (absent: any value). Who may
    see what is otherwise the endpoint's decision."""
    until = day_param(request, "until") or datetime.now(UTC).date() + timedelta(days=1)
    since = day_param(request, "since") or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise ApiError(400, "'since' must be before 'until'")
    if (until - since).days > MAX_DAYS:
        raise ApiError(400, f"the range from 'since' to 'until' may span at most {MAX_DAYS} days")
    names = {}
    for name in ("user", "model", "agent", "header", "header_value"):
        value = query_value(request, name)
        if value is not None and len(value) > MAX_FILTER:
            raise ApiError(400, f"'{name}' may be at most {MAX_FILTER} characters")
        names[name] = value or None
    raw_status = query_value(request, "status")  # given empty is a mistake too
    status = Status.parse(raw_status) if raw_status is not None else None
    if raw_status is not None and status is None:
        raise ApiError(
            400,
            f"'status' must be a code such as 429 or a class such as 5xx; got {raw_status!r}",
        )
    kind = kind_param(request)
    header, value = names["header"], names["header_value"]  # a value alone filters nothing
    if header is not None:
        header = header.lower()
        allowed = {h.name: h for h in filterable_for(request, caller)}
        if header not in allowed:
            raise ApiError(
                403,
                f"access denied: {header!r} is not an indexed header you may filter on"
                " (database.headers.filterable and the filterable_headers grant)",
            )
        # values of a `redact_values` header are not kept: only whether it was there
        value = None if allowed[header].redact_values or not value else recorded_name(value)
    return Filters(
        since,
        until,
        names["user"],
        names["model"],
        agent=names["agent"],
        status=status,
        kind=kind,
        header=header,
        header_value=value,
    )


def filterable_for(request: Request, caller: Caller | None) -> list[FilterableHeader]:
    """The indexed headers (`database.headers.filterable`) `caller` may see and filter on:
    those named in their grants' `filterable_headers` (`*`: all of them)."""
    if caller is None:
        return []
    granted = {name for cap in caller.access.capabilities for name in cap.filterable_headers}
    configured = runtime_of(request).snapshot.config.database.filterable_headers
    return [h for h in configured if "*" in granted or h.name in granted]


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


def kind_param(request: Request) -> str | None:
    """The `kind` filter: one of the kinds a record can be (telemetry/record.py), or None
    (absent or empty) for every kind."""
    if not query_value(request, "kind"):
        return None
    return choice_param(request, "kind", KINDS, KINDS[0])


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
