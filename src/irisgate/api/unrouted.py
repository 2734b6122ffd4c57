"""Requests no `/api/` route takes: 404 (no such endpoint) and 405 (the endpoint exists,
not with this method), answered in the API's `{"error": ...}` envelope like every other
error of the API. A 405 lists in `Allow` every method the path has, across all of the
routes that serve it (Starlette would name only the first route's). Other paths keep
Starlette's plain-text answers.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route

from irisgate.web.http import ApiError


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not path.startswith("/api/"):
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    if exc.status_code == 405:
        allowed = _allowed(request)
        response = ApiError(
            405, f"{request.method} is not allowed on {path}; allowed: {', '.join(allowed)}"
        ).response()
        response.headers["allow"] = ", ".join(allowed)
        return response
    if exc.status_code == 404:
        return ApiError(404, f"no such endpoint: {request.method} {path}").response()
    return ApiError(exc.status_code, exc.detail).response()


def _allowed(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)
