"""Unexpected errors of the management API and pages: a JSON 500, logged once.

A handler that raises something no other handler claims (a bug, a statement error the
database refused) answers `500 {"error": "internal error (request id req_…)"}`: the id
finds the one log entry that holds the traceback, and the answer names no exception text,
SQL or URL. Starlette's ServerErrorMiddleware calls `internal_error` and then re-raises;
`answered` stops that re-raise once the 500 is sent, because uvicorn would log the error a
second time and close the connection, which a client that sent its next request (or a body
irisgate did not read) sees as `Connection reset by peer`. An error after part of an answer
was sent still reaches uvicorn, which cuts the connection: the client must not take half an
answer for a whole one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from irisgate.handlers import ApiError
from irisgate.telemetry.record import new_request_id

log = structlog.get_logger("irisgate.api")

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Any, Send], Awaitable[None]]


async def internal_error(request: Request, exc: Exception) -> Response:
    """The answer to an error nothing else handled (Starlette's handler for `Exception`)."""
    request_id = new_request_id()
    log.error(
        "internal error",
        request_id=request_id,
        method=request.method,
        path=request.url.path,
        exc_info=exc,
    )
    response = ApiError(500, f"internal error (request id {request_id})").response()
    response.headers["x-irisgate-request-id"] = request_id
    return response


def answered(app: ASGIApp) -> ASGIApp:
    """`app`, with an error raised after its answer was sent whole kept from the server."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        complete = False

        async def watched(message: Message) -> None:
            nonlocal complete
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True

        try:
            await app(scope, receive, watched)
        except Exception:
            if not complete:
                raise

    return wrapped
