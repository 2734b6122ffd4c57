"""build_app(settings): wiring only.

Every HTTP request first meets the cross-site guard (`crosssite`): a browser request another
site's page sent is refused before anything acts on it. Every answer on a page path, refusals
included, carries the pages' security headers (`web.headers`). Then LLM paths are dispatched
to the gateway pipeline as raw ASGI before any framework routing; everything else
(management API, health) is a Starlette app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api import connectors as connector_routes
from irisgate.api import dashboard, observability, unrouted
from irisgate.api import quotas as quota_routes
from irisgate.api import routes as api_routes
from irisgate.api.internal import answered, internal_error
from irisgate.api.models import list_models
from irisgate.bodylimit import close_unread
from irisgate.chat import routes as chat_api
from irisgate.connectors.proxy import PREFIX as CONNECTORS_PREFIX
from irisgate.connectors.service import ConnectorService
from irisgate.crosssite import CrossSiteGuard, refuse
from irisgate.gateway.drain import REFUSAL
from irisgate.gateway.formats.registry import PATHS, STORED_RESPONSE
from irisgate.gateway.formats.templates import classify
from irisgate.gateway.pipeline import Gateway
from irisgate.gateway.responses import response_id_of
from irisgate.hosts import HostGuard
from irisgate.runtime import Runtime
from irisgate.settings import Settings
from irisgate.web import chat as chat_page
from irisgate.web import headers as page_headers
from irisgate.web import pages
from irisgate.web.http import ApiError, database_error

ASGIApp = Any


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


def _raw_path(scope: dict[str, Any]) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else str(scope["path"])


#: what a shutting-down process still answers: probes and metrics (new work gets 503)
_WHILE_DRAINING = frozenset({"/healthz", "/readyz", "/metrics"})


def _drain_exempt(path: str) -> bool:
    return path in _WHILE_DRAINING or path.startswith("/v1/responses/")


async def _refuse_draining(scope: dict[str, Any], receive: Any, send: Any) -> None:
    response = ApiError(503, REFUSAL).response()
    response.headers["retry-after"] = "1"
    response.headers["connection"] = "close"
    await response(scope, receive, send)


def build_app(settings: Settings) -> ASGIApp:
    runtime = Runtime(settings)
    gateway = Gateway(runtime)
    connectors = ConnectorService(runtime)  # built on first use
    guard = CrossSiteGuard(trust_forwarded=settings.identity == "serve")
    hosts = HostGuard(settings, lambda: runtime.resolver)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await connectors.stop()
            await runtime.stop()

    web = Starlette(
        routes=[
            *api_routes.routes,
            *observability.routes,
            *connector_routes.routes,
            *quota_routes.routes,
            *dashboard.routes,
            *pages.routes,
            *chat_api.routes,
            *chat_page.routes,
            Route("/v1/models", list_models),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: unrouted.http_error,
            SQLAlchemyError: database_error,
            OSError: database_error,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )
    web.state.runtime = runtime
    web.state.connectors = connectors
    serve_web = answered(web)

    async def refused(scope: dict[str, Any], send: Any) -> bool:
        """Answered already: a cross-site request, or one for another host name."""
        if (reason := guard.refusal(scope)) is not None:
            await refuse(scope, send, reason)
            return True
        if (reason := await hosts.refusal(scope)) is not None:
            await refuse(scope, send, reason, "refused a request for another host name")
            return True
        return False

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            receive, send = close_unread(scope, receive, send)
            if page_headers.is_page(scope["path"]):
                send = page_headers.with_page_headers(send)
            if await refused(scope, send):
                return
        if scope["type"] == "http" and scope["method"] == "POST":
            op = PATHS.get(scope["path"])
            if op is not None:
                await gateway.handle(scope, receive, send, op)
                return
            templated = classify(_raw_path(scope), scope.get("query_string", b""))
            if templated is not None:
                await gateway.handle(scope, receive, send, templated[0], templated[1])
                return
        if scope["type"] == "http":
            path: str = scope["path"]
            # LLM calls (the gateway's) are refused in the caller's API format instead
            if runtime.drain.draining and not _drain_exempt(path):
                await _refuse_draining(scope, receive, send)
                return
            if path.startswith("/v1/responses/"):
                response_id = response_id_of(scope["method"], path)
                if response_id is not None:
                    await gateway.handle(
                        scope, receive, send, STORED_RESPONSE, response_id=response_id
                    )
                    return
            if path in ("/v1/mcp", "/v1/mcp/"):
                await connectors.mcp(scope, receive, send)
                return
            if path.startswith(CONNECTORS_PREFIX):
                await connectors.proxy(scope, receive, send)
                return
        await serve_web(scope, receive, send)

    app.runtime = runtime  # type: ignore[attr-defined]  # handy for tests and the CLI
    return app
