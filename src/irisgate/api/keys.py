"""API keys: `POST /api/keys` (the secret, once), `GET /api/keys`, `PATCH /api/keys/{id}`
(its budget), `DELETE /api/keys/{id}`.

Anyone with a role makes and lists their own keys and revokes them; admins list (`?all=1`)
and revoke every key and make *service keys*: keys whose owner is a service identity
(`ci-bot@service`) that grants name in `src` like a user. A key acts as its owner, never
more, so a key that is narrower than its owner (model globs, a budget, an expiry) cannot
make keys, nor change a key's budget: either could make a key broader than itself. A
key's budget is a quota of the config that its own bucket `key:<id>` follows; its owner and
admins set it when the key is made and change it later. Secrets are answered once, at creation, and
stored only as their SHA-256 (irisgate.identity.keys).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api.body import json_object
from irisgate.handlers import (
    ApiError,
    Caller,
    json_response,
    query_value,
    require_role,
    runtime_of,
)
from irisgate.identity.keyring import KeyRing, make
from irisgate.store import keys as stored
from irisgate.store import signin

NAME_LIMIT = 100
MODELS_LIMIT = 64
GLOB_LIMIT = 300
#: keys (revoked ones included) one owner may have: the key ring's memory stays bounded
KEYS_PER_OWNER = 1000
SERVICE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}@service")


def _ring(request: Request) -> KeyRing:
    return runtime_of(request).resolver.ring


def shown(key: stored.StoredKey) -> dict[str, Any]:
    """A key as the API and pages show it: never the secret or its hash."""
    return {
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "owner": key.owner,
        "service": key.service,
        "created_by": key.created_by,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "models": list(key.models),
        "quota": key.quota,
    }


def _text(body: dict[str, Any], name: str, limit: int) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise ApiError(400, f"'{name}' must be text of at most {limit} printable characters")
    return value.strip()


def _expiry(body: dict[str, Any]) -> datetime | None:
    raw = body.get("expires_at")
    if raw is None or raw == "":
        return None
    try:
        if not isinstance(raw, str):
            raise TypeError(raw)
        value = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise ApiError(
            400, "'expires_at' must be an RFC 3339 time like 2026-01-31T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise ApiError(400, "'expires_at' must be an RFC 3339 time with an offset, like …Z")
    if value <= datetime.now(UTC):
        raise ApiError(400, "'expires_at' must be in the future")
    return value.astimezone(UTC)


def _models(body: dict[str, Any]) -> tuple[str, ...]:
    raw = body.get("models")
    if raw is None:
        return ()
    if (
        not isinstance(raw, list)
        or len(raw) > MODELS_LIMIT
        or not all(isinstance(g, str) and 0 < len(g) <= GLOB_LIMIT for g in raw)
    ):
        raise ApiError(
            400,
            f"'models' must be a list of at most {MODELS_LIMIT} provider/model globs "
            f"(1 to {GLOB_LIMIT} characters each)",
        )
    return tuple(dict.fromkeys(raw))


def _owner(caller: Caller, body: dict[str, Any]) -> str:
    owner = _text(body, "owner", 80)
    if not owner or owner == caller.identity.login_name:
        return caller.identity.login_name
    if not caller.is_admin:
        raise ApiError(403, "access denied: only admins make keys for service identities")
    if not SERVICE.fullmatch(owner):
        raise ApiError(
            400, "'owner' must be a service identity like ci-bot@service (or your own login)"
        )
    return owner


def _not_narrowed(caller: Caller, what: str) -> None:
    if caller.identity.key is not None and caller.identity.key.narrowed:
        raise ApiError(
            403, f"access denied: this API key is narrower than its owner and cannot {what}"
        )


def _quota(request: Request, body: dict[str, Any]) -> str:
    """The quota template a key's own budget follows ("" for none): one of the config's."""
    quota = _text(body, "quota", 200)
    if quota and quota not in runtime_of(request).snapshot.config.quotas:
        raise ApiError(400, f"'quota' names no quota of the config: {quota!r}")
    return quota


async def create_key(request: Request) -> Response:
    caller = await require_role(request)
    _not_narrowed(caller, "make keys")
    body = await json_object(request)
    name = _text(body, "name", NAME_LIMIT)
    if not name:
        raise ApiError(400, "'name' is required: what the key is for")
    owner = _owner(caller, body)
    quota = _quota(request, body)
    runtime = runtime_of(request)
    expires_at, models = _expiry(body), _models(body)
    if len(await stored.listed(runtime.db, owner, limit=KEYS_PER_OWNER)) >= KEYS_PER_OWNER:
        raise ApiError(409, f"{owner} has {KEYS_PER_OWNER} keys already; revoke unused ones")
    key, secret = await make(
        runtime.db,
        owner=owner,
        name=name,
        created_by=caller.identity.login_name,
        expires_at=expires_at,
        models=models,
        quota=quota,
    )
    _ring(request).added(key)
    return json_response({**shown(key), "secret": secret}, 201)


async def list_keys(request: Request) -> Response:
    caller = await require_role(request)
    everyone = (query_value(request, "all") or "").lower() in ("1", "true")
    if everyone and not caller.is_admin:
        raise ApiError(403, "access denied: admin role required to list every key")
    owner = None if everyone else caller.identity.login_name
    keys = await stored.listed(runtime_of(request).db, owner)
    return json_response([shown(k) for k in keys])


async def _own_key(request: Request, caller: Caller) -> stored.StoredKey:
    """The key of the path, when the caller owns it or is an admin; 404 otherwise."""
    key_id = request.path_params["key_id"]
    key = await stored.get(runtime_of(request).db, key_id) if len(key_id) <= 100 else None
    if key is None or not (caller.is_admin or key.owner == caller.identity.login_name):
        raise ApiError(404, f"no API key {key_id[:100]!r}")
    return key


async def change_key(request: Request) -> Response:
    """`PATCH /api/keys/{id}` `{"quota": NAME}`: the key's own budget ("" or null: none)."""
    caller = await require_role(request)
    _not_narrowed(caller, "change a key's budget")
    key = await _own_key(request, caller)
    body = await json_object(request, '{"quota": "per-key"}')
    if set(body) != {"quota"}:
        raise ApiError(400, "only 'quota' (the key's own budget) can be changed")
    quota = _quota(request, body)
    if key.revoked_at is not None:
        raise ApiError(409, f"API key {key.id!r} is revoked")
    changed = await stored.set_quota(runtime_of(request).db, key.id, quota)
    if changed is None:
        raise ApiError(409, f"API key {key.id!r} is revoked")
    _ring(request).added(changed)
    return json_response(shown(changed))


async def revoke_key(request: Request) -> Response:
    caller = await require_role(request)
    runtime = runtime_of(request)
    key = await _own_key(request, caller)
    if key.revoked_at is None:
        now = datetime.now(UTC)
        if await stored.revoke(runtime.db, key.id, now, caller.identity.login_name):
            key = replace(key, revoked_at=now, revoked_by=caller.identity.login_name)
    _ring(request).revoked(key)
    await signin.delete_key_sessions(runtime.db, key.id)  # browsers signed in with it
    return json_response(shown(key))


routes = [
    Route("/api/keys", create_key, methods=["POST"]),
    Route("/api/keys", list_keys, methods=["GET"]),
    Route("/api/keys/{key_id}", change_key, methods=["PATCH"]),
    Route("/api/keys/{key_id}", revoke_key, methods=["DELETE"]),
]
