"""build_app(settings): wiring only.

Every HTTP request is first classified once (`web.endpoint`): which endpoint it is, and in
which envelope it hears errors. Every answer on a page, refusals included, carries the pages'
security headers (`web.headers`). Then the cross-site guard (`crosssite`) refuses a browser
request another site's page sent, and the host guard one for another host name, before
anything acts on it. LLM calls are dispatched to the gateway pipeline as raw ASGI before any
framework routing; other paths in an LLM API's space answer 404/405 in that API's envelope;
MCP and connector calls go to the connector service; everything else (management API, pages,
health) is a Starlette app.
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
from starlette.routing import BaseRoute, Route

from irisgate.api import alerts as alert_routes
from irisgate.api import connectors as connector_routes
from irisgate.api import dashboard, observability
from irisgate.api import keys as key_routes
from irisgate.api import quotas as quota_routes
from irisgate.api import ratelimits as rate_limit_routes
from irisgate.api import routes as api_routes
from irisgate.api.internal import answered, internal_error
from irisgate.api.models import list_models
from irisgate.chat import routes as chat_api
from irisgate.connectors.service import ConnectorService
from irisgate.crosssite import CrossSiteGuard, refuse
from irisgate.drain import REFUSAL, Drain
from irisgate.gateway.pipeline import Gateway
from irisgate.handlers import ApiError, database_error
from irisgate.hosts import HostGuard
from irisgate.identity import IdentityRefused, SignInRequired
from irisgate.identity.resolver import IdentityResolver, make_resolver
from irisgate.runtime import Runtime
from irisgate.settings import SIGN_IN_MODES, Settings
from irisgate.web import chat as chat_page
from irisgate.web import headers as page_headers
from irisgate.web import keysignin, pages, signin, unrouted
from irisgate.web.endpoint import endpoint_of
from irisgate.wire.bodylimit import close_unread

ASGIApp = Any


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


#: pages anyone may load in modes oidc and keys: signing in, and the files the page uses
_OPEN_PAGES = ("/auth/", "/ui/static/")
#: a shutting-down process still answers probes and metrics; other new work hears this
_REFUSAL_HEADERS = {"retry-after": "1", "connection": "close"}


def _in_process(gateway: Gateway) -> Any:
    """The gateway's LLM paths for calls made in-process (the chat's model rounds,
    irisgate.chat.rounds): the caller's scope with the API's path and body."""

    async def llm(scope: dict[str, Any], receive: Any, send: Any) -> None:
        endpoint = endpoint_of(scope)  # classified like a request from outside
        if endpoint.op is None:
            raise ValueError(f"not an LLM API operation: {scope['method']} {scope['path']}")
        op, target, response_id = endpoint.op, endpoint.target, endpoint.response_id
        await gateway.handle(
            scope, receive, send, op, target, response_id=response_id, call=endpoint.call
        )

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


def web_routes() -> list[BaseRoute]:
    """Every route the framework dispatches: the management and chat APIs, the pages, sign-in
    and `/v1/models` (the LLM paths are dispatched before it, see the module doc)."""
    return [
        *api_routes.routes,
        *observability.routes,
        *connector_routes.routes,
        *quota_routes.routes,
        *alert_routes.routes,
        *rate_limit_routes.routes,
        *key_routes.routes,
        *dashboard.routes,
        *pages.routes,
        *chat_api.routes,
        *chat_page.routes,
        *signin.routes,
        *keysignin.routes,
        Route("/v1/models", list_models),
    ]


def build_app(settings: Settings, drain: Drain) -> ASGIApp:
    """The ASGI app. Its lifespan builds the runtime, the gateway and the connectors and
    hands them to every request as ASGI lifespan state (`scope["state"]`); `drain` is the
    server's, which starts the shutdown."""
    resolver = make_resolver(settings)
    guard = CrossSiteGuard(trust_forwarded=settings.identity == "serve")
    hosts = HostGuard(settings, resolver)
    web = Starlette(
        routes=web_routes(),
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

    async def must_sign_in(scope: dict[str, Any]) -> bool:
        """A page request in mode oidc or keys from a browser that is not signed in (the
        sign-in pages and the pages' static files excepted): it is sent to sign in. Asked of
        the resolver with the API key ring in front, which knows whether the key a session
        (mode keys) stands for is still valid."""
        if resolver.mode not in SIGN_IN_MODES or scope["path"].startswith(_OPEN_PAGES):
            return False
        keyed: IdentityResolver = scope["state"]["runtime"].resolver
        try:
            await keyed.resolve(scope.get("client"), scope["headers"])
        except SignInRequired:
            return True
        except IdentityRefused as exc:  # mode keys without a session: no key either
            return resolver.mode == "keys" and exc.status == 401
        return False

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await serve_web(scope, receive, send)  # lifespan
            return
        receive, send = close_unread(scope, receive, send)
        endpoint = endpoint_of(scope)  # what this request is, for everything below
        if endpoint.kind == "page":
            send = page_headers.with_page_headers(send)
        if await refused(scope, send):
            return
        state = scope["state"]  # the lifespan's: gateway, connectors, runtime
        if endpoint.op is not None:  # an LLM call: the gateway refuses it while draining
            op, target, response_id = endpoint.op, endpoint.target, endpoint.response_id
            gateway: Gateway = state["gateway"]
            await gateway.handle(
                scope, receive, send, op, target, response_id=response_id, call=endpoint.call
            )
            return
        if drain.draining and endpoint.kind != "health":
            await endpoint.answer(send, 503, "unavailable", REFUSAL, **_REFUSAL_HEADERS)
            return
        if endpoint.kind == "page" and await must_sign_in(scope):
            response = signin.sign_in_redirect(
                scope["path"], scope.get("query_string", b"").decode("latin-1")
            )
            await response(scope, receive, send)
            return
        if endpoint.kind == "llm":  # in an LLM API's space, but none of its operations
            await endpoint.no_operation(scope, send)
        elif endpoint.kind == "mcp":
            await state["connectors"].mcp(scope, receive, send)
        elif endpoint.kind == "connector":
            await state["connectors"].proxy(scope, receive, send)
        else:
            await serve_web(scope, receive, send)

    return app
