"""The chat app's JSON API under /api/chat/: its models and the caller's own conversations.

Every endpoint needs chat enabled for the caller (403 naming why not). Conversations are the
caller's only: another user's id answers 404 like an unknown one. Bad input is a 400 naming
the field, in irisgate's `{"error": ...}` envelope.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api.auth import ApiError, require_admin, runtime_of
from irisgate.api.body import json_object
from irisgate.api.params import filters
from irisgate.chat.access import require_chat
from irisgate.chat.activity import chat_activity
from irisgate.chat.conversations import OUTCOMES, ROLES, Conversations, Message
from irisgate.chat.models import chat_models

#: Longest accepted values, in characters.
LIMITS: dict[str, int] = {
    "title": 200,
    "model": 300,
    "instructions": 20_000,
    "content": 1_000_000,
    "request_id": 200,
}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _store(request: Request) -> Conversations:
    return Conversations(runtime_of(request).db)


def _text(payload: dict[str, Any], name: str, default: str | None = None) -> str | None:
    """Field `name` as a string within its limit; `default` when absent."""
    value = payload.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"'{name}' must be a string")
    if len(value) > LIMITS[name]:
        raise ApiError(400, f"'{name}' is longer than {LIMITS[name]} characters")
    return value


def _not_found(conversation_id: str) -> ApiError:
    return ApiError(404, f"conversation {conversation_id!r} not found")


async def models(request: Request) -> Response:
    caller = await require_chat(request)
    return _json({"models": chat_models(runtime_of(request).snapshot, caller.access)})


async def list_conversations(request: Request) -> Response:
    caller = await require_chat(request)
    query = request.query_params.get("q", "")
    found = await _store(request).list(caller.identity.login_name, query)
    return _json({"conversations": found})


async def create_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    payload = await json_object(request)
    created = await _store(request).create(
        caller.identity.login_name,
        title=_text(payload, "title", "") or "",
        model=_text(payload, "model", "") or "",
        instructions=_text(payload, "instructions", "") or "",
    )
    return _json(created, status=201)


async def get_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    found = await _store(request).get(caller.identity.login_name, conversation_id)
    if found is None:
        raise _not_found(conversation_id)
    return _json(found)


async def update_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    payload = await json_object(request)
    unknown = sorted(set(payload) - {"title", "model", "instructions"})
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}: only title, model and instructions change"
        )
    changes = {name: value for name in payload if (value := _text(payload, name)) is not None}
    if not changes:
        raise ApiError(400, "nothing to change: give title, model and/or instructions")
    updated = await _store(request).update(caller.identity.login_name, conversation_id, changes)
    if updated is None:
        raise _not_found(conversation_id)
    return _json(updated)


async def delete_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    if not await _store(request).delete(caller.identity.login_name, conversation_id):
        raise _not_found(conversation_id)
    return Response(status_code=204)


async def add_message(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    payload = await json_object(request)
    role = payload.get("role")
    if role not in ROLES:
        raise ApiError(400, f"'role' must be one of {', '.join(ROLES)}")
    outcome = payload.get("outcome", "")
    if outcome not in OUTCOMES:
        raise ApiError(400, f"'outcome' must be one of {', '.join(o for o in OUTCOMES if o)}")
    message = Message(
        role=role,
        content=_text(payload, "content", "") or "",
        model=_text(payload, "model", "") or "",
        outcome=outcome,
        request_id=_text(payload, "request_id", "") or "",
    )
    added = await _store(request).add_message(caller.identity.login_name, conversation_id, message)
    if added is None:
        raise _not_found(conversation_id)
    return _json(added, status=201)


async def truncate_messages(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    message_id: int = request.path_params["message_id"]
    deleted = await _store(request).truncate(
        caller.identity.login_name, conversation_id, message_id
    )
    if deleted is None:
        raise _not_found(conversation_id)
    return _json({"deleted": deleted})


async def activity(request: Request) -> Response:
    """Admins: chat use per day across users (or one `user`), whatever their own chat."""
    await require_admin(request)
    return _json(await chat_activity(runtime_of(request).db, filters(request)))


_ONE = "/api/chat/conversations/{conversation_id:str}"

routes = [
    Route("/api/chat/models", models, methods=["GET"]),
    Route("/api/chat/activity", activity, methods=["GET"]),
    Route("/api/chat/conversations", list_conversations, methods=["GET"]),
    Route("/api/chat/conversations", create_conversation, methods=["POST"]),
    Route(_ONE, get_conversation, methods=["GET"]),
    Route(_ONE, update_conversation, methods=["PATCH"]),
    Route(_ONE, delete_conversation, methods=["DELETE"]),
    Route(_ONE + "/messages", add_message, methods=["POST"]),
    Route(_ONE + "/messages/{message_id:int}", truncate_messages, methods=["DELETE"]),
]
