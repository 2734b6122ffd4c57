"""A management request the database cannot serve right now: 503 in the API's envelope.

`/api/` reads and writes the database directly (the request path of the LLM APIs never
waits for it). When the database refuses connections, is unreachable, times out or drops
the connection, the caller gets `503 {"error": "the database is unavailable (<kind>); try
again shortly"}` instead of a plain-text 500, and the log says which endpoint it was. A
statement the database rejects (a constraint, bad SQL: a bug of irisgate) stays a 500, as
does an OSError that did not come from the database driver. Neither the statement, its
parameters nor the database URL reach the caller or the log.
"""

from __future__ import annotations

import traceback

import structlog
from sqlalchemy import exc as sa
from starlette.requests import Request
from starlette.responses import Response

from irisgate.api.auth import ApiError

log = structlog.get_logger(__name__)

#: what `build_app` registers `database_unavailable` for
UNAVAILABLE: tuple[type[Exception], ...] = (sa.DBAPIError, sa.TimeoutError, OSError)
#: database errors that say the statement (so irisgate) was wrong, not the database's state
_STATEMENT_ERRORS = (sa.IntegrityError, sa.ProgrammingError, sa.DataError, sa.NotSupportedError)
#: packages an OSError must come through to count as the database's
_DRIVERS = ("/sqlalchemy/", "/asyncpg/", "/aiosqlite/")


async def database_unavailable(request: Request, exc: Exception) -> Response:
    if not request.url.path.startswith("/api/") or not _from_database(exc):
        raise exc
    kind = type(exc).__name__
    log.warning("database unavailable", method=request.method, path=request.url.path, kind=kind)
    return ApiError(503, f"the database is unavailable ({kind}); try again shortly").response()


def _from_database(exc: Exception) -> bool:
    if isinstance(exc, _STATEMENT_ERRORS):
        return False
    if isinstance(exc, sa.DBAPIError | sa.TimeoutError):
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    return any(driver in frame.filename for frame in frames for driver in _DRIVERS)
