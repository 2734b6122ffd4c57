"""Who is calling a management endpoint, and what they may see.

Same identity and grants as the LLM paths; management errors use irisgate's JSON envelope
`{"error": "<message>"}` (Aperture's shape, e.g. `access denied: no role granted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from irisgate.access.grants import Access
from irisgate.identity import Identity, IdentityRefused
from irisgate.runtime import Runtime
from irisgate.store.availability import unavailable

#: where an error must come from to be the database's (asyncpg raises plain OSErrors)
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "irisgate.store")
DATABASE_DOWN = "the database is unavailable; try again shortly"


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.message, **self.extra}, status_code=self.status)


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
    except IdentityRefused as exc:
        raise ApiError(403, f"access denied: {exc}") from None
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
    return JSONResponse({"error": DATABASE_DOWN}, status_code=503, headers={"retry-after": "5"})


def _raised_by_database(tb: TracebackType | None) -> bool:
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False
