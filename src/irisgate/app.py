"""build_app(settings): wiring only.

LLM paths are dispatched to the gateway pipeline as raw ASGI before any framework routing;
everything else (management API, health) is a Starlette app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api import observability
from irisgate.api import routes as api_routes
from irisgate.api.auth import ApiError
from irisgate.api.models import list_models
from irisgate.gateway.formats.registry import PATHS
from irisgate.gateway.pipeline import Gateway
from irisgate.runtime import Runtime
from irisgate.settings import Settings

ASGIApp = Any


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


def build_app(settings: Settings) -> ASGIApp:
    runtime = Runtime(settings)
    gateway = Gateway(runtime)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    web = Starlette(
        routes=[*api_routes.routes, *observability.routes, Route("/v1/models", list_models)],
        exception_handlers={ApiError: _api_error},
        lifespan=lifespan,
    )
    web.state.runtime = runtime

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            op = PATHS.get(scope["path"])
            if op is not None:
                await gateway.handle(scope, receive, send, op)
                return
        await web(scope, receive, send)

    app.runtime = runtime  # type: ignore[attr-defined]  # handy for tests and the CLI
    return app
