"""The dashboard's routes: its `/api/` endpoints and its pages under `/ui/`, in one list for
`build_app` (kept apart from `api.routes` so the core's list stays as it was)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from irisgate.api import catalog, config_history, openapi, usage
from irisgate.web import pages

routes: list[BaseRoute] = [
    *usage.routes,
    Route("/api/models", catalog.list_models),
    Route("/api/config/versions", config_history.history),
    Route("/api/config/versions/{version_id:int}", config_history.one_version),
    Route(
        "/api/config/versions/{version_id:int}/rollback",
        config_history.rollback,
        methods=["POST"],
    ),
    Route("/api/openapi.json", openapi.openapi),
    *pages.routes,
]
