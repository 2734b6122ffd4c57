"""Config history for the Settings page: versions, one version's text, and what changed.

Texts are returned with literal secrets masked; saving masked text keeps the secrets
currently stored (`config.secrets.unmask`). Rollback (`POST
/api/config/versions/{id}/rollback` with `{"hash": <current hash>}`) saves the old
version's stored text, secrets included, as a new version: a literal secret deleted since
comes back with it, which a PUT of the masked text could not do. It gets the same
validation, conflict and self-lockout checks as any edit.
"""

from __future__ import annotations

import difflib

from starlette.requests import Request
from starlette.responses import Response

from irisgate.api.body import json_object
from irisgate.api.routes import apply_config
from irisgate.config.secrets import mask_text
from irisgate.handlers import ApiError, int_param, json_response, require_admin, runtime_of
from irisgate.store import configs
from irisgate.store.queries import iso_utc


def _summary(version: configs.ConfigVersion, current: int) -> dict[str, object]:
    return {
        "id": version.id,
        "parent_id": version.parent_id,
        "hash": version.hash,
        "created_at": iso_utc(version.created_at),
        "created_by": version.created_by,
        "source": version.source,
        "current": version.id == current,
    }


async def history(request: Request) -> Response:
    await require_admin(request)
    runtime = runtime_of(request)
    limit = int_param(request, "limit", 50, 1, 1000)
    versions = await configs.history(runtime.db, limit=limit)
    current = runtime.snapshot.version
    return json_response({"versions": [_summary(v, current) for v in versions]})


async def _version(request: Request, version_id: int) -> configs.ConfigVersion:
    version = await configs.get(runtime_of(request).db, version_id)
    if version is None:
        raise ApiError(404, f"no config version {version_id}")
    return version


async def one_version(request: Request) -> Response:
    """One version's masked text, and a unified diff from the version it replaced."""
    await require_admin(request)
    version = await _version(request, request.path_params["version_id"])
    text = mask_text(version.content or "")
    before = ""
    if version.parent_id is not None:
        parent = await _version(request, version.parent_id)
        before = mask_text(parent.content or "")
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        text.splitlines(keepends=True),
        fromfile=f"version {version.parent_id}" if version.parent_id else "(none)",
        tofile=f"version {version.id}",
    )
    current = runtime_of(request).snapshot.version
    return json_response({**_summary(version, current), "config": text, "diff": "".join(diff)})


async def rollback(request: Request) -> Response:
    """Save version `version_id`'s stored text as a new version on top of `hash`."""
    caller = await require_admin(request)
    payload = await json_object(request)
    base = payload.get("hash")
    if not isinstance(base, str):
        raise ApiError(400, "'hash' must be the hash of the current version (GET /api/config)")
    version = await _version(request, request.path_params["version_id"])
    return await apply_config(request, caller, version.content or "", base, source="rollback")
