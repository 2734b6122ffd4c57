"""Requests no route takes: 404 (no such endpoint) and 405 (the endpoint exists, not with
this method), answered like every other error of the endpoint they were meant for
(`web.endpoint`):

- irisgate's API (`/api/…`, `/aperture/…`): its `{"error": ...}` envelope. A 405 lists in
  `Allow` every method the path has, across all of the routes that serve it (Starlette would
  name only the first route's);
- `/v1/models`: OpenAI's envelope;
- a dashboard page under `/ui/` or `/admin/`: a 404 page inside the dashboard, with its navigation;
- anything else: Starlette's plain text.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route

from irisgate.handlers import ApiError
from irisgate.web import pages
from irisgate.web.endpoint import endpoint_of, shown
from irisgate.wire.errors import ErrorKind

_STATIC = "/ui/static/"


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    endpoint = endpoint_of(request.scope)
    path = request.url.path
    # a page the dashboard does not have (a missing static file is no page to show)
    if endpoint.kind == "page" and exc.status_code == 404 and _is_ui_page(path):
        return await pages.not_found(request)
    if endpoint.kind != "api":
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
    message, headers = str(exc.detail), {}
    kind: ErrorKind = "invalid_request"
    if exc.status_code == 405:
        allowed = ", ".join(_allowed(request))
        message = f"{request.method} is not allowed on {shown(path)}; allowed: {allowed}"
        headers["allow"] = allowed
    elif exc.status_code == 404:
        message, kind = f"no such endpoint: {request.method} {shown(path)}", "not_found"
    if endpoint.format is not None:
        body, extra = endpoint.error(exc.status_code, kind, message)
        return Response(body, status_code=exc.status_code, headers={**extra, **headers})
    response = ApiError(exc.status_code, message).response()
    response.headers.update(headers)
    return response


def _is_ui_page(path: str) -> bool:
    return path.startswith(("/ui/", "/admin/")) and not path.startswith(_STATIC)


def _allowed(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)
