"""One model round of a chat turn: `POST /api/chat/conversations/{id}/round`.

The browser names the model, the tools it offers and the turn's tool rounds so far; the
conversation (its project's instructions then its own, earlier messages, images from the
attachment store) comes from the database, and the tools offered must be switched on in it
and allowed by its project. The picked
model's API format builds the request (its chat adapter, gateway/formats/chatwire.py), which
then runs through the gateway in-process as an ordinary request of the caller: the same
scope (peer, headers, session), so identity, grants, quotas, hooks, capture, cost and the
`x-irisgate-request-id` are exactly those of a client calling the provider's path itself.
The answer streams back to the browser as the chat's own events (`data: {"type": …}` SSE:
text, reasoning, call, replay, usage, end, error), whatever the API's framing.

A refusal of the gateway (403, 404, 429, 451, 5xx) keeps its status, `Retry-After` and
request id, with the message in irisgate's `{"error": {"message"}}` envelope. A browser that
goes away (Stop) disconnects the in-process request, which cancels the upstream call.
"""

from __future__ import annotations

import asyncio
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from irisgate.api.body import json_object
from irisgate.chat import parts
from irisgate.chat.access import require_chat
from irisgate.chat.attachments import Attachments
from irisgate.chat.conversations import Conversations
from irisgate.chat.models import chat_format, chat_model
from irisgate.chat.projects import Projects, allowed, instructions, not_allowed
from irisgate.gateway.formats import chatwire
from irisgate.gateway.formats.chatwire import (
    ChatAdapter,
    ChatCall,
    ChatImage,
    ChatMessage,
    ChatRound,
    ChatTool,
    ChatTurn,
)
from irisgate.handlers import ApiError, runtime_of

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

EFFORTS: tuple[str, ...] = ("", "low", "medium", "high")
MAX_TOOLS = 128
#: the most replay items (thinking blocks, model parts) one round may carry back
MAX_REPLAY = 128
#: headers of the browser's request that do not describe the in-process one
_NOT_FORWARDED = frozenset(
    {b"content-length", b"content-type", b"transfer-encoding", b"accept-encoding", b"expect"}
)
#: scope keys an in-process request keeps from the browser's (who is asking, over what)
_SCOPE_KEYS = ("type", "asgi", "http_version", "scheme", "client", "server", "root_path")


def wire_name(name: str) -> str:
    """A tool name as every chat API accepts it: letters, digits, _ and -, at most 64."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name)[:64]


def _images(
    message: dict[str, Any], accepts: bool, model: str
) -> tuple[str, tuple[ChatImage, ...]]:
    text = message.get("content") or ""
    images = message.get("attachments") or []
    if not images:
        return text, ()
    if not accepts:
        names = ", ".join(i.get("name") or "image" for i in images)
        return f"{text}\n\n[{names} not sent: {model} does not accept images]".strip(), ()
    return text, tuple(ChatImage(i["media_type"], i["data"]) for i in images)


def _output(call: dict[str, Any]) -> str:
    return str(call.get("output") or "(no output)")


def _rounds_as_text(rounds: list[dict[str, Any]], content: str) -> str:
    """A turn's tool rounds as plain text, for requests that offer no tools (APIs refuse tool
    blocks then)."""
    lines: list[str] = []
    for round_ in rounds:
        if round_.get("text"):
            lines.append(round_["text"])
        for c in round_["calls"]:
            state = "failed" if c.get("is_error") else "returned"
            arguments = orjson.dumps(c.get("arguments", {})).decode()
            lines.append(f"[tool {c['name']} called with {arguments} {state}: {_output(c)}]")
    if content:
        lines.append(content)
    return "\n\n".join(lines)


def _assistant(content: str, rounds: list[dict[str, Any]], structured: bool) -> ChatMessage | None:
    if not structured:
        text = _rounds_as_text(rounds, content)
        return ChatMessage("assistant", text) if text else None
    made = tuple(
        ChatRound(
            text=r.get("text", ""),
            calls=tuple(
                ChatCall(
                    id=c["id"],
                    name=wire_name(c["name"]),
                    arguments=c.get("arguments", {}),
                    output=_output(c),
                    is_error=bool(c.get("is_error")),
                )
                for c in r["calls"]
            ),
            replay=tuple(r.get("replay", ())),
        )
        for r in rounds
    )
    return ChatMessage("assistant", content, rounds=made) if made or content else None


def build_turn(
    model: dict[str, Any],
    conversation: dict[str, Any],
    pending: list[dict[str, Any]],
    tools: tuple[ChatTool, ...],
    effort: str,
) -> ChatTurn:
    """The conversation in the chat's neutral shape: failed turns left out, images only for
    models that see, tool rounds as text when this request offers no tools."""
    structured = bool(tools)
    messages: list[ChatMessage] = []
    for m in conversation["messages"]:
        if m["outcome"] == "error":
            continue
        if m["role"] == "user":
            text, images = _images(m, model["images"], model["model"])
            if text or images:
                messages.append(ChatMessage("user", text, images))
        elif (said := _assistant(m["content"], m["tool_calls"], structured)) is not None:
            messages.append(said)
    if pending and (said := _assistant("", pending, structured)) is not None:
        messages.append(said)
    return ChatTurn(
        model=model["id"],
        messages=tuple(messages),
        instructions=conversation["instructions"],
        tools=tools,
        effort=effort if model["reasoning"] else "",
    )


async def _with_image_data(request: Request, login: str, conversation: dict[str, Any]) -> None:
    """Give each image a user message names by id its bytes (base64), from the attachment
    store; an image no longer there is left out, said in the text."""
    ids = [
        image["id"]
        for m in conversation["messages"]
        for image in m["attachments"]
        if isinstance(image, dict) and "id" in image
    ]
    store = Attachments(runtime_of(request).db)
    # the request is built in memory: its images' base64 must fit the gateway's body limit
    limit = runtime_of(request).settings.max_request_body
    if (size := await store.size(login, ids)) * 4 // 3 > limit:
        raise ApiError(
            413,
            f"this conversation's images take {size} bytes, more than a request to the model"
            f" may carry ({limit} bytes, --max-request-body): start a new conversation",
        )
    stored = await store.data(login, ids)
    for m in conversation["messages"]:
        kept: list[dict[str, Any]] = []
        for image in m["attachments"]:
            if "id" not in image:
                kept.append(image)  # kept inline before attachments had their own endpoint
            elif image["id"] in stored:
                media_type, data = stored[image["id"]]
                kept.append({**image, "media_type": media_type, "data": b64encode(data).decode()})
            else:
                m["content"] = f"{m['content']}\n\n[{image.get('name') or 'image'} was deleted]"
        m["attachments"] = kept


# --- the browser's request ----------------------------------------------------------------


def _offered(value: Any, enabled: set[str]) -> tuple[ChatTool, ...]:
    if not isinstance(value, list):
        raise ApiError(400, "'tools' must be a list of {name, description, input_schema}")
    if len(value) > MAX_TOOLS:
        raise ApiError(400, f"'tools' has more than {MAX_TOOLS} entries")
    out: dict[str, ChatTool] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ApiError(400, f"'tools[{i}]' must be an object with a 'name'")
        name = item["name"]
        if name not in enabled:
            raise ApiError(403, not_allowed(name))
        description = item.get("description") or name
        schema = item.get("input_schema", {"type": "object"})
        if not isinstance(description, str) or not isinstance(schema, dict):
            raise ApiError(400, f"'tools[{i}]' needs a string description and an object schema")
        out[wire_name(name)] = ChatTool(wire_name(name), description, schema)
    return tuple(out.values())


def _pending(value: Any) -> list[dict[str, Any]]:
    rounds = [dict(r) for r in parts.tool_rounds(value)]
    for i, (checked, raw) in enumerate(zip(rounds, value, strict=True)):
        replay = raw.get("replay", [])
        if not isinstance(replay, list) or len(replay) > MAX_REPLAY:
            raise ApiError(400, f"'pending[{i}].replay' must be a list of at most {MAX_REPLAY}")
        if not all(isinstance(item, dict) for item in replay):
            raise ApiError(400, f"'pending[{i}].replay' must hold objects")
        checked["replay"] = replay
    return rounds


def _model(
    request: Request, caller_access: Any, model_id: Any
) -> tuple[dict[str, Any], ChatAdapter]:
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, "'model' must be the id of a chat model (provider/model)")
    snapshot = runtime_of(request).snapshot
    found = chat_model(snapshot, caller_access, model_id)
    if found is not None:
        return found
    provider_id, _, bare = model_id.partition("/")
    provider = snapshot.config.providers.get(provider_id)
    served = provider is not None and bare in provider.models
    if served and provider is not None and caller_access.may_use_model(model_id):
        if not provider.enabled:
            raise ApiError(400, f"model {model_id!r} cannot be used: its provider is disabled")
        if chat_format(provider, bare) is None:
            speaks = ", ".join(sorted(f for f, on in provider.compatibility.items() if on))
            raise ApiError(
                400,
                f"model {model_id!r} cannot be used in chat: provider {provider_id!r} speaks "
                f"no API the chat can hold a conversation over ({speaks or 'none'})",
            )
    raise ApiError(404, f"model {model_id!r} is not one of your chat models")


# --- the in-process gateway request -------------------------------------------------------


#: answer messages held for a browser that reads slowly; past it the gateway waits, and a
#: browser that stops reading is cut by its connection's --send-timeout (then `leave()`)
_HELD = 64


class _Exchange:
    """One in-process request to the gateway: its body goes in once, its answer comes out
    through a bounded queue; `leave()` tells the gateway its client went away."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body
        self._gone = asyncio.Event()
        self._space = asyncio.Event()
        self._messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_HELD)

    async def receive(self) -> dict[str, Any]:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        """Hand a message to the reader; waits while it is behind, drops once it left."""
        while not self._gone.is_set():
            try:
                self._messages.put_nowait(message)
                return
            except asyncio.QueueFull:
                self._space.clear()
                await self._space.wait()

    async def next(self) -> dict[str, Any]:
        message = await self._messages.get()
        self._space.set()
        return message

    def leave(self) -> None:
        self._gone.set()
        self._space.set()


_RUNNING: set[asyncio.Task[None]] = set()


def _scope(outer: dict[str, Any], path: str, body: bytes) -> dict[str, Any]:
    route, _, query = path.partition("?")
    headers = [(k, v) for k, v in outer["headers"] if k not in _NOT_FORWARDED]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {k: outer[k] for k in _SCOPE_KEYS if k in outer}
    scope.update(
        method="POST",
        path=route,
        raw_path=route.encode(),
        query_string=query.encode(),
        headers=headers,
    )
    return scope


def _start(llm: Asgi, scope: dict[str, Any], exchange: _Exchange) -> None:
    async def run() -> None:
        try:
            await llm(scope, exchange.receive, exchange.send)
        finally:
            await exchange.send({"type": "irisgate.done"})

    task = asyncio.create_task(run())
    _RUNNING.add(task)  # runs to its end (recording the request) even when the browser left
    task.add_done_callback(_RUNNING.discard)


async def _body_messages(exchange: _Exchange) -> AsyncIterator[bytes]:
    while True:
        message = await exchange.next()
        if message["type"] == "http.response.body":
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return
        elif message["type"] == "irisgate.done":
            return


def _error_message(body: bytes, status: int) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:2000] or f"HTTP {status}"
    if isinstance(data, list) and data:  # Google sometimes wraps its error in an array
        data = data[0]
    if not isinstance(data, dict):
        return f"HTTP {status}"
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    message = data.get("message") or data.get("Message")
    return message if isinstance(message, str) else f"HTTP {status}"


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


async def run_round(request: Request) -> Response:
    caller = await require_chat(request)
    conversation_id = request.path_params["conversation_id"]
    payload = await json_object(request)
    model, adapter = _model(request, caller.access, payload.get("model"))
    effort = payload.get("effort", "")
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise ApiError(400, "'effort' must be one of low, medium, high or empty")
    store = Conversations(runtime_of(request).db)
    conversation = await store.get(caller.identity.login_name, conversation_id)
    if conversation is None:
        raise ApiError(404, f"conversation {conversation_id!r} not found")
    project = await Projects(runtime_of(request).db).get(
        caller.identity.login_name, conversation["project_id"]
    )
    tools = _offered(payload.get("tools", []), allowed(project, conversation["tools"]))
    pending = _pending(payload.get("pending", []))
    conversation["instructions"] = instructions(project, conversation["instructions"])
    await _with_image_data(request, caller.identity.login_name, conversation)
    turn = build_turn(model, conversation, pending, tools, effort)
    body = orjson.dumps(adapter.request(turn))
    exchange = _Exchange(body)
    llm: Asgi = request.state.llm
    _start(llm, _scope(dict(request.scope), adapter.path(model["id"]), body), exchange)
    try:
        first = await exchange.next()
    except BaseException:
        exchange.leave()
        raise
    if first["type"] != "http.response.start":
        raise ApiError(502, "the gateway gave no answer")
    status = int(first["status"])
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in first["headers"]}
    out_headers = {k: headers[k] for k in ("x-irisgate-request-id", "retry-after") if k in headers}
    if status >= 400:
        answer = b"".join([piece async for piece in _body_messages(exchange)])
        error = {"error": {"message": _error_message(answer, status), "status": status}}
        return Response(orjson.dumps(error), status, out_headers, "application/json")
    return StreamingResponse(
        _events(exchange, adapter.decoder()),
        headers={**out_headers, "cache-control": "no-store"},
        media_type="text/event-stream",
    )


async def _events(exchange: _Exchange, decoder: chatwire.ChatDecoder) -> AsyncIterator[bytes]:
    finished = False
    try:
        async for piece in _body_messages(exchange):
            for event in decoder.feed(piece):
                yield _sse(event)
        finished = True
        for event in decoder.finish():
            yield _sse(event)
    finally:
        if not finished:
            exchange.leave()  # the browser went away (Stop): the gateway cancels upstream
