"""build_app(settings): wiring only.

Every HTTP request first meets the cross-site guard (`crosssite`): a browser request another
site's page sent is refused before anything acts on it. Every answer on a page path, refusals
included, carries the pages' security headers (`web.headers`). Then LLM paths are dispatched
to the gateway pipeline as raw ASGI before any framework routing; everything else
(management API, health) is a Starlette app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api import connectors as connector_routes
from irisgate.api import observability, unrouted
from irisgate.api import quotas as quota_routes
from irisgate.api import routes as api_routes
from irisgate.api.auth import ApiError, database_error
from irisgate.api.internal import answered, internal_error
from irisgate.api.models import list_models
from irisgate.chat import routes as chat_api
from irisgate.connectors.proxy import PREFIX as CONNECTORS_PREFIX
from irisgate.connectors.service import ConnectorService
from irisgate.crosssite import CrossSiteGuard, refuse
from irisgate.drain import REFUSAL, Drain
from irisgate.gateway.formats.registry import PATHS, STORED_RESPONSE
from irisgate.gateway.formats.templates import classify
from irisgate.gateway.pipeline import Gateway
from irisgate.hosts import HostGuard
from irisgate.identity.resolver import IdentityResolver, make_resolver
from irisgate.runtime import Runtime
from irisgate.settings import Settings
from irisgate.telemetry.responses import response_id_of
from irisgate.web import chat as chat_page
from irisgate.web import headers as page_headers
from irisgate.web import ui_routes
from irisgate.wire.bodylimit import close_unread

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


def _in_process(gateway: Gateway) -> Any:
    """The gateway's LLM paths for calls made in-process (the chat's model rounds,
    irisgate.chat.rounds): the caller's scope with the API's path and body."""

    async def llm(scope: dict[str, Any], receive: Any, send: Any) -> None:
        op = PATHS.get(scope["path"])
        if op is not None:
            await gateway.handle(scope, receive, send, op)
            return
        templated = classify(_raw_path(scope), scope.get("query_string", b""))
        if templated is None:
            raise ValueError(f"not an LLM API path: {scope['path']}")
        await gateway.handle(scope, receive, send, templated[0], templated[1])

    return llm


def _lifespan(
    settings: Settings, resolver: IdentityResolver, drain: Drain
) -> Callable[[Starlette], AbstractAsyncContextManager[dict[str, Any]]]:
    """Start: the runtime (database, config, writer …), then the gateway and the connectors
    built on it, handed to every request as its lifespan state. Stop: the other way round."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        try:
            runtime = await Runtime.open(settings, resolver, drain)
            connectors = ConnectorService(runtime)
            try:
                gateway = Gateway(runtime)
                yield {
                    "runtime": runtime,
                    "gateway": gateway,
                    "connectors": connectors,
                    "llm": _in_process(gateway),
                }
            finally:
                await connectors.stop()
                await runtime.stop()
        finally:
            await resolver.close()

    return lifespan


def build_app(settings: Settings, drain: Drain) -> ASGIApp:
    """The ASGI app. Its lifespan builds the runtime, the gateway and the connectors and
    hands them to every request as ASGI lifespan state (`scope["state"]`); `drain` is the
    server's, which starts the shutdown."""
    resolver = make_resolver(settings)
    guard = CrossSiteGuard(trust_forwarded=settings.identity == "serve")
    hosts = HostGuard(settings, resolver)
    web = Starlette(
        routes=[
            *api_routes.routes,
            *observability.routes,
            *connector_routes.routes,
            *quota_routes.routes,
            *ui_routes.routes,
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
        lifespan=_lifespan(settings, resolver, drain),
    )
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
            gateway: Gateway = scope["state"]["gateway"]  # the lifespan's
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
            if drain.draining and not _drain_exempt(path):
                await _refuse_draining(scope, receive, send)
                return
            if path.startswith("/v1/responses/"):
                response_id = response_id_of(scope["method"], path)
                if response_id is not None:
                    await scope["state"]["gateway"].handle(
                        scope, receive, send, STORED_RESPONSE, response_id=response_id
                    )
                    return
            if path in ("/v1/mcp", "/v1/mcp/"):
                await scope["state"]["connectors"].mcp(scope, receive, send)
                return
            if path.startswith(CONNECTORS_PREFIX):
                await scope["state"]["connectors"].proxy(scope, receive, send)
                return
        await serve_web(scope, receive, send)

    return app
