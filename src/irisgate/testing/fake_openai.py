"""OpenAI's wire format, rendered from a planned `Reply` (sans-io: bytes in, bytes out).

Chat Completions
    Non-stream bodies are pretty-printed with two-space indents, as api.openai.com sends them.
    Stream events are ``data: {compact JSON}\\n\\n`` with the keys in OpenAI's order::

        {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"…",
         "service_tier":"default","system_fingerprint":"fp_…",
         "choices":[{"index":0,"delta":{…},"logprobs":null,"finish_reason":null}]}

    The first delta is ``{"role":"assistant","content":"","refusal":null}``, then one
    ``{"content":"…"}`` per piece, then ``{}`` with the finish reason, then ``data: [DONE]``.
    With ``stream_options.include_usage`` every chunk ends with ``,"usage":null`` and one more
    chunk with ``"choices":[]`` and the usage object comes before ``[DONE]``; without it no
    chunk has a usage key. With `obfuscate` (FakeLLM's ``obfuscation`` knob; real OpenAI's
    default unless ``stream_options.include_obfuscation`` is false) every chunk also ends with
    a random ``,"obfuscation":"…"``, and Responses text deltas carry one too.

Responses
    Non-stream: the response object (two-space indents). Stream: ``event: <type>\\ndata:
    {compact JSON}\\n\\n`` where each payload starts with ``type`` and the other keys follow
    in alphabetical order, ``sequence_number`` counting from 0; no ``[DONE]``.

Stored responses
    ``GET /v1/responses/{id}`` answers the response object (a background response, created
    ``queued``, reads ``completed`` from then on unless it was cancelled); ``DELETE`` answers
    ``{"id", "object": "response.deleted", "deleted": true}``; ``GET …/input_items`` a list
    page of the request's input items (ids added, string content as ``input_text`` parts);
    ``POST …/cancel`` the response with status ``cancelled`` (a 400 unless it was created with
    ``background: true``; an already finished one is returned unchanged). Unknown ids: 404
    ``Response with id '…' not found.``

Errors
    ``{"error": {"message", "type", "param", "code"}}`` pretty-printed with four-space indents.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from irisgate.testing.fake_reply import (
    Reply,
    first_function,
    new_id,
    padding,
    wants_tool_call,
)

SYSTEM_FINGERPRINT = "fp_f4ke0000c0"
SERVICE_TIER = "default"

_DONE = b"data: [DONE]\n\n"
_INDENT = orjson.OPT_INDENT_2

INVALID_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)

# status -> (type, code, message) used when a test asks for a failure without a body.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    408: ("invalid_request_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM). Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}


def error_body(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    """OpenAI's error envelope for `status`; unset fields take the vendor's usual values."""
    default_type, default_code, default_message = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    err = {
        "message": message if message is not None else default_message,
        "type": type or default_type,
        "param": param,
        "code": code if code is not None else (default_code if message is None else None),
    }
    return (json.dumps({"error": err}, indent=4) + "\n").encode()


def headers(request_id: str) -> dict[str, str]:
    """Response headers api.openai.com sends with every answer (the ones clients read)."""
    return {
        "x-request-id": request_id,
        "openai-processing-ms": "1",
        "openai-version": "2020-10-01",
    }


def check_chat(body: Mapping[str, Any]) -> bytes | None:
    """The 400 body a Chat Completions request earns, or None when it is acceptable."""
    if not body.get("model"):
        return error_body(400, "you must provide a model parameter")
    if "messages" not in body:
        return error_body(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    return _check_stream_options(body)


def check_responses(body: Mapping[str, Any]) -> bytes | None:
    """The 400 body a Responses request earns, or None when it is acceptable."""
    if not body.get("model"):
        return error_body(
            400,
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    return _check_stream_options(body)


def _check_stream_options(body: Mapping[str, Any]) -> bytes | None:
    if body.get("stream_options") is not None and not body.get("stream"):
        return error_body(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    return None


def chat_tool(body: Mapping[str, Any], *, always: bool = False) -> tuple[str, Any] | None:
    """(name, parameters schema) of the function to call, when the request asks for one
    (`always`: whenever it offers one)."""
    if body.get("tool_choice") == "none":
        return None
    if not always and not wants_tool_call(body.get("messages")):
        return None
    name, schema = first_function(body.get("tools"), "function", "parameters")
    return (name, schema) if name else None


def responses_tool(body: Mapping[str, Any], *, always: bool = False) -> tuple[str, Any] | None:
    """(name, parameters schema) of the function a Responses request should get a call of:
    its first `function` tool, when the final input item is a user message asking for a
    tool call (`always`: whenever it offers one)."""
    if body.get("tool_choice") == "none":
        return None
    if not always and not wants_tool_call(body.get("input")):
        return None
    tools = [
        t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"
    ]
    name, schema = first_function(tools, None, "parameters")
    return (name, schema) if name else None


def include_usage(body: Mapping[str, Any]) -> bool:
    """Whether a streamed chat request asked for the trailing usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


# -- Chat Completions -------------------------------------------------------------------------


def chat_usage(reply: Reply) -> dict[str, Any]:
    """The `usage` object of a chat completion."""
    prompt = reply.openai_prompt_tokens
    completion = reply.openai_completion_tokens
    details = {"cached_tokens": reply.cached_tokens}
    if reply.cache_creation_tokens:  # optional in chat usage: sent by models that report it
        details["cache_write_tokens"] = reply.cache_creation_tokens
    details["audio_tokens"] = 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
        "completion_tokens_details": {
            "reasoning_tokens": reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(reply: Reply, completion_id: str) -> bytes:
    """A non-stream `chat.completion` body."""
    message: dict[str, Any] = {"role": "assistant"}
    if reply.tool_call is None:
        message["content"] = reply.text
        finish = "stop"
    else:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": reply.tool_call.id,
                "type": "function",
                "function": {"name": reply.tool_call.name, "arguments": reply.tool_call.arguments},
            }
        ]
        finish = "tool_calls"
    message["refusal"] = None
    message["annotations"] = []
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": chat_usage(reply),
        "service_tier": SERVICE_TIER,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return orjson.dumps(body, option=_INDENT)


def obfuscation_wanted(body: Mapping[str, Any]) -> bool:
    """False when the request opted out of stream obfuscation (it is on by default)."""
    options = body.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_obfuscation") is False)


def chat_chunks(
    reply: Reply, completion_id: str, with_usage: bool, *, obfuscate: bool = False
) -> Iterator[bytes]:
    """Every SSE event of a streamed chat completion, ``data: [DONE]`` last."""
    head = b"".join(
        (
            b'data: {"id":',
            orjson.dumps(completion_id),
            b',"object":"chat.completion.chunk","created":',
            str(reply.created).encode(),
            b',"model":',
            orjson.dumps(reply.model),
            b',"service_tier":"',
            SERVICE_TIER.encode(),
            b'","system_fingerprint":"',
            SYSTEM_FINGERPRINT.encode(),
            b'","choices":',
        )
    )
    usage_null = b',"usage":null' if with_usage else b""
    choice_head = b'[{"index":0,"delta":'
    running = b',"logprobs":null,"finish_reason":null}]'

    def close() -> bytes:
        if not obfuscate:
            return b"}\n\n"
        return b',"obfuscation":"' + padding().encode() + b'"}\n\n'

    def chunk(delta: bytes, finish: bytes = running) -> bytes:
        return head + choice_head + delta + finish + usage_null + close()

    if reply.tool_call is None:
        yield chunk(b'{"role":"assistant","content":"","refusal":null}')
        for piece in reply.pieces:
            yield chunk(b'{"content":' + orjson.dumps(piece) + b"}")
        finish = b',"logprobs":null,"finish_reason":"stop"}]'
    else:
        call = reply.tool_call
        opening = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
        yield chunk(orjson.dumps(opening))
        for piece in call.argument_pieces:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            yield chunk(orjson.dumps(delta))
        finish = b',"logprobs":null,"finish_reason":"tool_calls"}]'
    yield chunk(b"{}", finish)
    if with_usage:
        yield head + b'[],"usage":' + orjson.dumps(chat_usage(reply)) + close()
    yield _DONE


# -- Responses --------------------------------------------------------------------------------


def responses_usage(reply: Reply) -> dict[str, Any]:
    """The `usage` object of a Responses API response."""
    prompt = reply.openai_prompt_tokens
    output = reply.openai_completion_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cache_write_tokens": reply.cache_creation_tokens,
            "cached_tokens": reply.cached_tokens,
        },
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        "total_tokens": prompt + output,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(item_id: str, status: str, content: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": list(content),
        "role": "assistant",
    }


def _function_call_item(item_id: str, status: str, reply: Reply) -> dict[str, Any]:
    """The `function_call` output item of a reply that calls a tool."""
    call = reply.tool_call
    assert call is not None
    done = status == "completed"
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": call.arguments if done else "",
        "call_id": call.id,
        "name": call.name,
    }


def _output_item(item_id: str, reply: Reply) -> dict[str, Any]:
    if reply.tool_call is not None:
        return _function_call_item(item_id, "completed", reply)
    return _message_item(item_id, "completed", [_output_text(reply.text)])


def response_object(
    reply: Reply,
    response_id: str,
    item_id: str,
    request: Mapping[str, Any],
    *,
    completed: bool = True,
) -> dict[str, Any]:
    """The response object; in progress (no output, no usage) unless `completed`."""
    output = [_output_item(item_id, reply)] if completed else []
    return {
        "id": response_id,
        "object": "response",
        "created_at": reply.created,
        "status": "completed" if completed else "in_progress",
        "background": bool(request.get("background", False)),
        "completed_at": reply.created if completed else None,
        "error": None,
        "frequency_penalty": float(request.get("frequency_penalty", 0.0)),
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": reply.model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "presence_penalty": float(request.get("presence_penalty", 0.0)),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "prompt_cache_retention": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": request.get("safety_identifier"),
        "service_tier": SERVICE_TIER if completed else "auto",
        "store": request.get("store", True),
        "temperature": float(request.get("temperature", 1.0)),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "top_logprobs": request.get("top_logprobs", 0),
        "top_p": float(request.get("top_p", 1.0)),
        "truncation": request.get("truncation", "disabled"),
        "usage": responses_usage(reply) if completed else None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def response_body(
    reply: Reply, response_id: str, item_id: str, request: Mapping[str, Any]
) -> bytes:
    """A non-stream Responses API body."""
    return orjson.dumps(response_object(reply, response_id, item_id, request), option=_INDENT)


def _event(kind: str, seq: int, fields: dict[str, Any]) -> bytes:
    fields["sequence_number"] = seq
    payload = {"type": kind}
    payload.update(sorted(fields.items()))
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def response_events(
    reply: Reply,
    response_id: str,
    item_id: str,
    request: Mapping[str, Any],
    *,
    obfuscate: bool = False,
) -> Iterator[bytes]:
    """Every SSE event of a streamed Responses API call, `response.completed` last."""
    seq = 0

    def emit(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        out = _event(kind, seq, fields)
        seq += 1
        return out

    pending = response_object(reply, response_id, item_id, request, completed=False)
    yield emit("response.created", response=pending)
    yield emit("response.in_progress", response=pending)
    if reply.tool_call is not None:
        yield from _function_call_events(reply, item_id, emit)
        yield emit(
            "response.completed",
            response=response_object(reply, response_id, item_id, request),
        )
        return
    yield emit(
        "response.output_item.added",
        item=_message_item(item_id, "in_progress", []),
        output_index=0,
    )
    where = {"content_index": 0, "item_id": item_id, "output_index": 0}
    yield emit("response.content_part.added", part=_output_text(""), **where)
    for piece in reply.pieces:
        extra = {"obfuscation": padding()} if obfuscate else {}
        yield emit("response.output_text.delta", delta=piece, logprobs=[], **extra, **where)
    yield emit("response.output_text.done", text=reply.text, logprobs=[], **where)
    yield emit("response.content_part.done", part=_output_text(reply.text), **where)
    yield emit(
        "response.output_item.done",
        item=_message_item(item_id, "completed", [_output_text(reply.text)]),
        output_index=0,
    )
    yield emit(
        "response.completed",
        response=response_object(reply, response_id, item_id, request),
    )


def _function_call_events(
    reply: Reply, item_id: str, emit: Callable[..., bytes]
) -> Iterator[bytes]:
    """The events of a `function_call` output item, its arguments streamed in pieces."""
    call = reply.tool_call
    assert call is not None
    yield emit(
        "response.output_item.added",
        item=_function_call_item(item_id, "in_progress", reply),
        output_index=0,
    )
    where = {"item_id": item_id, "output_index": 0}
    for piece in call.argument_pieces:
        yield emit("response.function_call_arguments.delta", delta=piece, **where)
    yield emit("response.function_call_arguments.done", arguments=call.arguments, **where)
    yield emit(
        "response.output_item.done",
        item=_function_call_item(item_id, "completed", reply),
        output_index=0,
    )


# -- stored responses (retrieve, delete, input items, cancel) -------------------------------------


def response_not_found(response_id: str) -> bytes:
    """The 404 body for a response id the API does not hold."""
    return error_body(404, f"Response with id '{response_id}' not found.")


def cancel_refused() -> bytes:
    """The 400 body for cancelling a response that was not created with background=true."""
    return error_body(
        400, "Only responses created with background=true can be cancelled.", param="response_id"
    )


def response_deleted(response_id: str) -> bytes:
    """The answer to `DELETE /v1/responses/{id}`."""
    return orjson.dumps(
        {"id": response_id, "object": "response.deleted", "deleted": True}, option=_INDENT
    )


def input_items(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The input items of a Responses request as `GET …/input_items` lists them: each with an
    id, messages with their content as parts (`input_text` for a plain string)."""
    given = request.get("input")
    raw: list[Any] = [{"role": "user", "content": given}] if isinstance(given, str) else []
    if isinstance(given, list):
        raw = given
    items: list[dict[str, Any]] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        item = {"id": new_id("msg_", 48), **entry}
        if item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": content}]
            item["type"] = "message"
            item.setdefault("status", "completed")
        items.append(item)
    return items


def input_items_list(items: Sequence[dict[str, Any]], order: str) -> bytes:
    """`GET /v1/responses/{id}/input_items`: a list page, newest first unless `order=asc`."""
    data = list(items) if order == "asc" else list(reversed(items))
    page = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }
    return orjson.dumps(page, option=_INDENT)


# -- Models -----------------------------------------------------------------------------------


def models_list(models: Sequence[str], created: int) -> bytes:
    """`GET /v1/models` in OpenAI's list shape."""
    data = [{"id": m, "object": "model", "created": created, "owned_by": "system"} for m in models]
    return orjson.dumps({"object": "list", "data": data}, option=_INDENT)
