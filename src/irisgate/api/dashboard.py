"""The `/api/` endpoints behind the dashboard's pages (usage, models, config history, the API
document), in one list for `build_app`. The pages themselves are `web.pages.routes`."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from irisgate.api import catalog, config_history, openapi, tools, usage

routes: list[BaseRoute] = [
    *usage.routes,
    *tools.routes,
    Route("/api/models", catalog.list_models),
    Route("/api/config/versions", config_history.history),
    Route("/api/config/versions/{version_id:int}", config_history.one_version),
    Route(
        "/api/config/versions/{version_id:int}/rollback",
        config_history.rollback,
        methods=["POST"],
    ),
    Route("/api/openapi.json", openapi.openapi),
]
