"""The chat app's JSON API under /api/chat/: its models, the caller's own conversations and
projects (`irisgate.chat.projects`) and the connector tools a conversation may call
(`irisgate.chat.tools`).

Every endpoint needs chat enabled for the caller (403 naming why not). Conversations are the
caller's only: another user's id answers 404 like an unknown one. Bad input is a 400 naming
the field, in irisgate's `{"error": ...}` envelope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api.body import json_object
from irisgate.chat import parts
from irisgate.chat.access import require_chat
from irisgate.chat.activity import chat_activity
from irisgate.chat.attachments import Attachments, serve, upload
from irisgate.chat.conversations import OUTCOMES, ROLES, Conversations, Message
from irisgate.chat.models import chat_models
from irisgate.chat.projects import MAX_PROJECTS, Projects, allowed, not_allowed
from irisgate.chat.rounds import run_round
from irisgate.gateway.relaycore import watched
from irisgate.handlers import (
    ApiError,
    filters,
    json_response,
    query_value,
    require_admin,
    runtime_of,
)
from irisgate.wire.upstream import redact

if TYPE_CHECKING:
    from irisgate.connectors.aggregate import Aggregator
    from irisgate.connectors.service import ConnectorService

#: Longest accepted values, in characters.
LIMITS: dict[str, int] = {
    "title": 200,
    "model": 300,
    "instructions": 20_000,
    "content": 1_000_000,
    "request_id": 200,
    "reasoning": 1_000_000,
    "name": 100,
    "project_id": 100,
}
#: What the composer's reasoning control may say ("": the model's default, no thinking).
EFFORTS: tuple[str, ...] = ("", "low", "medium", "high")
#: The most tools one conversation may switch on.
MAX_TOOLS = 128
_CHANGEABLE = ("title", "model", "instructions", "tools", "reasoning_effort", "project_id")
_PROJECT_FIELDS = ("name", "instructions", "tools")


def _store(request: Request) -> Conversations:
    return Conversations(runtime_of(request).db)


def _projects(request: Request) -> Projects:
    return Projects(runtime_of(request).db)


async def _project_id(request: Request, login: str, payload: dict[str, Any]) -> str | None:
    """Field `project_id`: one of the caller's projects, or '' (or null) for none; None when
    absent."""
    if "project_id" not in payload:
        return None
    if payload["project_id"] is None:
        return ""
    project_id = _text(payload, "project_id") or ""
    if project_id and await _projects(request).get(login, project_id) is None:
        raise ApiError(404, f"'project_id': project {project_id!r} not found")
    return project_id


def _text(payload: dict[str, Any], name: str, default: str | None = None) -> str | None:
    """Field `name` as a string within its limit; `default` when absent (null is not a
    string: a 400 like any other wrong type)."""
    if name not in payload:
        return default
    value = payload[name]
    if not isinstance(value, str):
        raise ApiError(400, f"'{name}' must be a string")
    if len(value) > LIMITS[name]:
        raise ApiError(400, f"'{name}' is longer than {LIMITS[name]} characters")
    return value


def _tools(payload: dict[str, Any]) -> tuple[str, ...] | None:
    """Field `tools`: names of connector tools (`<connector>_<tool>`), None when absent."""
    if "tools" not in payload:
        return None
    value = payload["tools"]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ApiError(400, "'tools' must be a list of tool names")
    if len(value) > MAX_TOOLS:
        raise ApiError(400, f"'tools' has more than {MAX_TOOLS} entries")
    if any(not 0 < len(t) <= LIMITS["model"] for t in value):
        raise ApiError(400, "'tools' holds an empty or overlong tool name")
    return tuple(dict.fromkeys(value))


def _effort(payload: dict[str, Any]) -> str | None:
    if "reasoning_effort" not in payload:
        return None
    value = payload["reasoning_effort"]
    if not isinstance(value, str) or value not in EFFORTS:
        raise ApiError(400, "'reasoning_effort' must be one of low, medium, high or empty")
    return value


def _not_found(conversation_id: str) -> ApiError:
    return ApiError(404, f"conversation {conversation_id!r} not found")


async def models(request: Request) -> Response:
    caller = await require_chat(request)
    return json_response({"models": chat_models(runtime_of(request).snapshot, caller.access)})


async def list_conversations(request: Request) -> Response:
    caller = await require_chat(request)
    query = query_value(request, "q") or ""
    found = await _store(request).list(caller.identity.login_name, query)
    return json_response({"conversations": found})


async def create_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    payload = await json_object(request)
    created = await _store(request).create(
        caller.identity.login_name,
        title=_text(payload, "title", "") or "",
        model=_text(payload, "model", "") or "",
        instructions=_text(payload, "instructions", "") or "",
        tools=_tools(payload) or (),
        reasoning_effort=_effort(payload) or "",
        project_id=await _project_id(request, caller.identity.login_name, payload) or "",
    )
    return json_response(created, status=201)


async def get_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    found = await _store(request).get(caller.identity.login_name, conversation_id)
    if found is None:
        raise _not_found(conversation_id)
    return json_response(found)


async def update_conversation(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    payload = await json_object(request)
    unknown = sorted(set(payload) - set(_CHANGEABLE))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}: only {', '.join(_CHANGEABLE)} change")
    changes: dict[str, Any] = {
        name: value
        for name in ("title", "model", "instructions")
        if (value := _text(payload, name)) is not None
    }
    if (tools := _tools(payload)) is not None:
        changes["tools"] = tools
    if (effort := _effort(payload)) is not None:
        changes["reasoning_effort"] = effort
    project_id = await _project_id(request, caller.identity.login_name, payload)
    if project_id is not None:
        changes["project_id"] = project_id
    if not changes:
        raise ApiError(400, f"nothing to change: give {', '.join(_CHANGEABLE)}")
    updated = await _store(request).update(caller.identity.login_name, conversation_id, changes)
    if updated is None:
        raise _not_found(conversation_id)
    return json_response(updated)


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
        attachments=await _attached(request, caller.identity.login_name, conversation_id, payload),
        tool_calls=parts.tool_rounds(payload.get("tool_calls", [])),
        reasoning=_text(payload, "reasoning", "") or "",
    )
    if message.attachments and role != "user":
        raise ApiError(400, "'attachments' belong to user messages")
    if message.tool_calls and role != "assistant":
        raise ApiError(400, "'tool_calls' belong to assistant messages")
    added = await _store(request).add_message(caller.identity.login_name, conversation_id, message)
    if added is None:
        raise _not_found(conversation_id)
    return json_response(added, status=201)


async def _attached(
    request: Request, login: str, conversation_id: str, payload: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    """The images a user message names, each uploaded to this conversation by the caller."""
    ids = parts.attachments(payload.get("attachments", []))
    found = await Attachments(runtime_of(request).db).references(login, conversation_id, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise ApiError(404, f"'attachments': {missing[0]!r} is not an image of this conversation")
    return tuple(found[i] for i in ids)


async def truncate_messages(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    message_id: int = request.path_params["message_id"]
    deleted = await _store(request).truncate(
        caller.identity.login_name, conversation_id, message_id
    )
    if deleted is None:
        raise _not_found(conversation_id)
    return json_response({"deleted": deleted})


async def _aggregator(request: Request) -> Aggregator:
    # the connector machinery (and the MCP SDK) is built by the first request needing it
    service: ConnectorService = request.state.connectors
    aggregator: Aggregator = (await service.ready()).aggregator
    return aggregator


async def list_tools(request: Request) -> Response:
    """The connector tools the caller is granted (what `tools/list` on /v1/mcp shows)."""
    from irisgate.chat.tools import mcp_caller, tool_entry

    caller = await require_chat(request)
    snapshot = runtime_of(request).snapshot
    tools = await (await _aggregator(request)).tools_for(mcp_caller(caller, snapshot))
    return json_response({"tools": [tool_entry(tool) for tool in tools]})


async def call_tool(request: Request) -> Response:
    """Run one tool call the model made in this conversation, through /v1/mcp's checks."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CallToolResult

    from irisgate.chat.tools import mcp_caller, result_output
    from irisgate.connectors.aggregate import status_of

    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    payload = await json_object(request)
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "'name' must be the tool's name (<connector>_<tool>)")
    arguments = payload.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ApiError(400, "'arguments' must be a JSON object")
    login = caller.identity.login_name
    conversation = await _store(request).settings(login, conversation_id)
    if conversation is None:
        raise _not_found(conversation_id)
    project = await _projects(request).get(login, conversation["project_id"])
    if name not in allowed(project, conversation["tools"]):
        raise ApiError(403, not_allowed(name))
    snapshot = runtime_of(request).snapshot
    aggregator = await _aggregator(request)
    results: list[CallToolResult] = []
    gone = False

    def stopped() -> None:
        nonlocal gone
        gone = True

    async def call() -> None:
        results.append(
            await aggregator.call_for(
                mcp_caller(caller, snapshot),
                name,
                arguments,
                headers=redact(dict(request.headers)),
                path=request.url.path,
            )
        )

    try:
        # Stop in the browser closes this request: the call is cancelled, which closes the
        # upstream request (the MCP SDK aborts it) and records it as cancelled (499)
        await watched(request.receive, call(), stopped, lambda: gone)
    except MCPError as exc:
        raise ApiError(status_of(exc), exc.error.message) from None
    if gone:
        return Response(status_code=499)
    [result] = results
    return json_response(
        {"name": name, "output": result_output(result), "is_error": bool(result.is_error)}
    )


# --- projects -----------------------------------------------------------------------------


def _project_tools(payload: dict[str, Any]) -> tuple[str, ...] | None:
    """Field `tools` of a project: a list of tool names, or null for every granted tool."""
    if payload.get("tools") is None:
        return None
    return _tools(payload)


def _project_name(payload: dict[str, Any]) -> str:
    name = (_text(payload, "name") or "").strip()
    if not name:
        raise ApiError(400, "'name' must be a non-empty string")
    return name


def _project_not_found(project_id: str) -> ApiError:
    return ApiError(404, f"project {project_id!r} not found")


async def list_projects(request: Request) -> Response:
    caller = await require_chat(request)
    return json_response({"projects": await _projects(request).list(caller.identity.login_name)})


async def create_project(request: Request) -> Response:
    caller = await require_chat(request)
    payload = await json_object(request)
    unknown = sorted(set(payload) - set(_PROJECT_FIELDS))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}: a project has {', '.join(_PROJECT_FIELDS)}"
        )
    store = _projects(request)
    login = caller.identity.login_name
    name = _project_name(payload)
    if await store.count(login) >= MAX_PROJECTS:
        raise ApiError(400, f"you have {MAX_PROJECTS} projects, the most one may have: delete one")
    created = await store.create(
        login,
        name=name,
        instructions=_text(payload, "instructions", "") or "",
        tools=_project_tools(payload),
    )
    return json_response(created, status=201)


async def get_project(request: Request) -> Response:
    caller = await require_chat(request)
    project_id = request.path_params["project_id"]
    found = await _projects(request).get(caller.identity.login_name, project_id)
    if found is None:
        raise _project_not_found(project_id)
    return json_response(found)


async def update_project(request: Request) -> Response:
    caller = await require_chat(request)
    project_id = request.path_params["project_id"]
    payload = await json_object(request)
    unknown = sorted(set(payload) - set(_PROJECT_FIELDS))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r}: only {', '.join(_PROJECT_FIELDS)} change"
        )
    changes: dict[str, Any] = {}
    if "name" in payload:
        changes["name"] = _project_name(payload)
    if (instructions := _text(payload, "instructions")) is not None:
        changes["instructions"] = instructions
    if "tools" in payload:
        changes["tools"] = _project_tools(payload)
    if not changes:
        raise ApiError(400, f"nothing to change: give {', '.join(_PROJECT_FIELDS)}")
    updated = await _projects(request).update(caller.identity.login_name, project_id, changes)
    if updated is None:
        raise _project_not_found(project_id)
    return json_response(updated)


async def delete_project(request: Request) -> Response:
    """Delete a project; its conversations stay, outside any project."""
    caller = await require_chat(request)
    project_id = request.path_params["project_id"]
    if not await _projects(request).delete(caller.identity.login_name, project_id):
        raise _project_not_found(project_id)
    return Response(status_code=204)


async def activity(request: Request) -> Response:
    """Admins: chat use per day across users (or one `user`), whatever their own chat."""
    await require_admin(request)
    return json_response(await chat_activity(runtime_of(request).db, filters(request)))


_ONE = "/api/chat/conversations/{conversation_id:str}"
_PROJECT = "/api/chat/projects/{project_id:str}"

routes = [
    Route("/api/chat/models", models, methods=["GET"]),
    Route("/api/chat/activity", activity, methods=["GET"]),
    Route("/api/chat/tools", list_tools, methods=["GET"]),
    Route("/api/chat/conversations", list_conversations, methods=["GET"]),
    Route("/api/chat/conversations", create_conversation, methods=["POST"]),
    Route(_ONE, get_conversation, methods=["GET"]),
    Route(_ONE, update_conversation, methods=["PATCH"]),
    Route(_ONE, delete_conversation, methods=["DELETE"]),
    Route(_ONE + "/messages", add_message, methods=["POST"]),
    Route(_ONE + "/messages/{message_id:int}", truncate_messages, methods=["DELETE"]),
    Route(_ONE + "/tools/call", call_tool, methods=["POST"]),
    Route(_ONE + "/round", run_round, methods=["POST"]),
    Route(_ONE + "/attachments", upload, methods=["POST"]),
    Route("/api/chat/attachments/{attachment_id:str}", serve, methods=["GET"]),
    Route("/api/chat/projects", list_projects, methods=["GET"]),
    Route("/api/chat/projects", create_project, methods=["POST"]),
    Route(_PROJECT, get_project, methods=["GET"]),
    Route(_PROJECT, update_project, methods=["PATCH"]),
    Route(_PROJECT, delete_project, methods=["DELETE"]),
]
