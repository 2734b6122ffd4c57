"""Management JSON endpoints under /api/ (and the legacy /aperture/config)."""

from __future__ import annotations

import os
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate import __version__
from irisgate.api.body import json_object
from irisgate.api.catalog import cost_basis_of, formats_of, prices_per_million
from irisgate.api.health import health_rows
from irisgate.config.hujson import parse
from irisgate.config.hujson_edit import TooManyChanges
from irisgate.config.model import COMPATIBILITY_FLAGS, ConfigError
from irisgate.configservice import StaleHash, WouldLockOut
from irisgate.gateway.translation import reachable_from
from irisgate.handlers import (
    ApiError,
    Caller,
    identify,
    int_param,
    json_response,
    kind_param,
    query_value,
    require_admin,
    require_role,
    runtime_of,
    time_param,
)
from irisgate.store import queries


async def whoami(request: Request) -> Response:
    caller = await identify(request)
    ident = caller.identity
    return json_response(
        {
            "login_name": ident.login_name,
            "display_name": ident.display_name,
            "profile_pic": ident.profile_pic,
            "node_id": ident.node_id,
            "node_name": ident.node_name,
            "tags": list(ident.tags),
            "groups": list(ident.groups),
            "tailnet": ident.tailnet,
            "tagged": ident.is_tagged,
            "role": caller.access.role,
            "identity_mode": runtime_of(request).resolver.mode,
            "key": {"id": ident.key.id, "name": ident.key.name} if ident.key else None,
        }
    )


async def providers(request: Request) -> Response:
    """Aperture's provider list (`id`, `name`, `description`, `models`, `compatibility`),
    plus irisgate's `formats` (the accepted APIs' catalog entries: flag, endpoints),
    `translated_from` (the client API flags that reach its models through translation) and
    `prices_per_million` per model (null where unpriced)."""
    await require_role(request)
    snapshot = runtime_of(request).snapshot
    out = []
    for p in snapshot.config.providers.values():
        formats = formats_of(p)
        basis = cost_basis_of(formats)
        prices = {m: prices_per_million(snapshot.pricer.per_token(p, basis, m)) for m in p.models}
        out.append(
            {
                "id": p.id,
                "name": p.name or p.id,
                "description": p.description,
                "models": list(p.models),
                "compatibility": {flag: p.accepts(flag) for flag in COMPATIBILITY_FLAGS},
                "disabled": not p.enabled,
                "formats": [f.catalog_entry() for f in formats],
                "translated_from": reachable_from(p),
                "prices_per_million": prices,
            }
        )
    return json_response(out)


async def provider_health(request: Request) -> Response:
    """This instance's view of every provider's health (access/health.py): circuit state,
    error rate over its last attempts, last error, cool-down and each key's rest or drop.
    Admins only; per instance (each learns about an outage on its own)."""
    await require_admin(request)
    return json_response(health_rows(runtime_of(request)))


async def get_config(request: Request) -> Response:
    await require_admin(request)
    service = runtime_of(request).config
    snap = service.snapshot
    masked = service.masked_text()
    return json_response(
        {
            "config": masked,
            "value": parse(masked).value,
            "hash": snap.hash,
            "version": snap.version,
        }
    )


async def legacy_config(request: Request) -> Response:
    await require_admin(request)
    return json_response({"config": runtime_of(request).config.masked_text()})


async def put_config(request: Request) -> Response:
    caller = await require_admin(request)
    payload = await json_object(
        request, '{"config": "<text>", "hash": "<hash>"} or {"value": {...}, "hash": "<hash>"}'
    )
    text, value, base = payload.get("config"), payload.get("value"), payload.get("hash")
    if not isinstance(base, str):
        raise ApiError(400, "'hash' must be the hash of the version this change is based on")
    if "value" in payload and "config" in payload:
        raise ApiError(400, "send either 'config' (the text) or 'value' (the config), not both")
    if "value" in payload:
        if not isinstance(value, dict):
            raise ApiError(400, "'value' must be the config as a JSON object")
        return await apply_config(request, caller, value, base, source="api")
    if not isinstance(text, str):
        raise ApiError(400, "'config' must be the config text as a string")
    return await apply_config(request, caller, text, base, source="api")


async def apply_config(
    request: Request, caller: Caller, text: str | dict[str, Any], base: str, *, source: str
) -> Response:
    """Save `text` (or a value written into the stored text in place) as the new version on
    top of `base` (a hash), answering as PUT does: 409 stale, 400 with every error, 403
    self-lockout, else the new hash and version."""
    service = runtime_of(request).config
    who = caller.identity.login_name
    try:
        if isinstance(text, dict):
            applied = await service.put_value(text, base, caller.identity, who)
        else:
            applied = await service.put(text, base, caller.identity, who, source=source)
    except TooManyChanges:
        raise ApiError(
            400, "too many changes in one save for the visual editor: use the raw config"
        ) from None
    except StaleHash:
        raise ApiError(
            409,
            "config changed since you loaded it: reload, reapply your change, and save again",
            hash=(await _latest_hash(request)),
        ) from None
    except ConfigError as exc:
        raise ApiError(
            400,
            f"config has {len(exc.issues)} error(s); the running config is unchanged",
            errors=[{"path": i.path, "line": i.line, "message": i.message} for i in exc.issues],
        ) from None
    except WouldLockOut:
        raise ApiError(403, "refused: this change would remove your own admin role") from None
    return json_response(
        {
            "success": True,
            "hash": applied.hash,
            "new_hash": applied.hash,
            "version": applied.version,
            "warnings": [
                {"path": i.path, "line": i.line, "message": i.message} for i in applied.warnings
            ],
        }
    )


async def _latest_hash(request: Request) -> str:
    from irisgate.store import configs

    latest = await configs.latest(runtime_of(request).db)
    return latest.hash if latest else ""


async def list_requests(request: Request) -> Response:
    caller = await require_role(request)
    user = query_value(request, "user")
    if not caller.is_admin:
        if user and user != caller.identity.login_name:
            raise ApiError(403, "access denied: only admins can see other users' requests")
        user = caller.identity.login_name
    limit = int_param(request, "limit", 50, 1, 500)
    rows = await queries.list_requests(
        runtime_of(request).db,
        login_name=user or None,
        model=query_value(request, "model") or None,
        session_id=query_value(request, "session") or None,
        kind=kind_param(request),
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        before_id=int_param(request, "before", 0, 1, 2**62) or None,
        limit=limit,
    )
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return json_response({"requests": rows, "next_before": next_before})


async def get_request(request: Request) -> Response:
    caller = await require_role(request)
    row = await queries.get_request(runtime_of(request).db, request.path_params["request_id"])
    if row is None or (not caller.is_admin and row["login_name"] != caller.identity.login_name):
        raise ApiError(404, "no such request")
    if not caller.is_admin:  # the raw upstream answer (`save_raws`) is for admins only
        row.pop("response_raw", None)
        row.pop("response_raw_encoding", None)
    return json_response(row)


async def healthz(request: Request) -> Response:
    # the pid tells which process answered (`serve --workers N` runs several on one port)
    return json_response({"status": "ok", "version": __version__, "pid": os.getpid()})


routes = [
    Route("/api/whoami", whoami),
    Route("/api/providers", providers),
    Route("/api/providers/health", provider_health),
    Route("/api/config", get_config, methods=["GET"]),
    Route("/api/config", put_config, methods=["PUT"]),
    Route("/aperture/config", legacy_config),
    Route("/api/requests", list_requests),
    Route("/api/requests/{request_id}", get_request),
    Route("/healthz", healthz),
]
