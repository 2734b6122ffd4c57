"""Anthropic's Messages wire format, rendered from a planned `Reply` (sans-io).

Bodies and stream payloads are compact JSON, keys in the order api.anthropic.com sends them
(``model`` first in a message). A stream is ``event: <type>\\ndata: {…}\\n\\n``::

    message_start          (usage with output_tokens 1, as the real API reports early)
    content_block_start    index 0
    ping                   ({"type": "ping"}: the one payload the API sends with a space)
    content_block_delta    text_delta | thinking_delta + signature_delta | input_json_delta
    content_block_stop
    ...                    (one start/deltas/stop group per block: thinking, then text or tool)
    message_delta          stop_reason + cumulative usage (final output_tokens)
    message_stop

A tool-use block streams an empty ``partial_json`` first, then the argument pieces, as the API
does. With `pad` (FakeLLM's ``obfuscation`` knob) most payloads get the random run of spaces
before their closing brace that the API adds to hide sizes (not ``ping`` or
``content_block_stop``). Errors are ``{"type":"error","error":{"type","message"},"request_id"}``.
With thinking on, a request answering a tool call is refused (400) unless the assistant turn
that made the call starts with its thinking block carrying the signature the fake gave it,
as the API refuses it.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from irisgate.testing.fake_reply import Reply, first_function, wants_tool_call

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'

# status -> (error type, message) used when a test asks for a failure without a body.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    if status in _ERRORS:
        return _ERRORS[status][0]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(
    status: int,
    request_id: str,
    message: str | None = None,
    *,
    type: str | None = None,
) -> bytes:
    """Anthropic's error envelope for `status`."""
    default = _ERRORS.get(status, (error_type(status), "Error."))
    err = {"type": type or default[0], "message": message if message is not None else default[1]}
    return orjson.dumps({"type": "error", "error": err, "request_id": request_id})


def headers(request_id: str) -> dict[str, str]:
    """Response headers api.anthropic.com sends with every answer (the ones clients read)."""
    return {
        "request-id": request_id,
        "anthropic-organization-id": "00000000-0000-4000-8000-00000000f4ce",
    }


def check_message(body: Mapping[str, Any], *, count_only: bool = False) -> str | None:
    """The invalid_request_error message a request earns, or None when it is acceptable."""
    required = ("model", "messages") if count_only else ("model", "max_tokens", "messages")
    for name in required:
        if name not in body:
            return f"{name}: Field required"
    return None if count_only else _check_thinking_turn(body)


def _check_thinking_turn(body: Mapping[str, Any]) -> str | None:
    """With thinking on, the assistant turn of a tool call being answered must start with its
    thinking block, signed as this API signed it (Anthropic's rule, its messages)."""
    messages = body.get("messages")
    if not thinking_enabled(body) or not isinstance(messages, list) or len(messages) < 2:
        return None
    last, turn = messages[-1], messages[-2]
    if not isinstance(last, dict) or not isinstance(turn, dict) or turn.get("role") != "assistant":
        return None
    answered = last.get("content")
    if not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in answered or ()):
        return None
    blocks = turn.get("content")
    first = blocks[0] if isinstance(blocks, list) and blocks else None
    where = f"messages.{len(messages) - 2}.content.0"
    kind = first.get("type") if isinstance(first, dict) else None
    if kind == "redacted_thinking":
        return None
    if kind != "thinking" or not isinstance(first, dict):
        return (
            f"{where}.type: Expected `thinking` or `redacted_thinking`, but found `{kind}`. "
            "When `thinking` is enabled, a final `assistant` message must start with a thinking "
            "block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
        )
    if first.get("signature") != signature(str(first.get("thinking", ""))):
        return f"{where}: Invalid `signature` in `thinking` block"
    return None


def message_tool(body: Mapping[str, Any], *, always: bool = False) -> tuple[str, Any] | None:
    """(name, input schema) of the tool to use, when the request asks for one (`always`:
    whenever it offers one)."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "none":
        return None
    if not always and not wants_tool_call(body.get("messages")):
        return None
    name, schema = first_function(body.get("tools"), None, "input_schema")
    return (name, schema) if name else None


def thinking_enabled(body: Mapping[str, Any]) -> bool:
    """Whether the request turned extended thinking on."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def signature(thinking: str) -> str:
    """A stable, opaque-looking signature for a thinking block."""
    digest = hashlib.sha256(thinking.encode()).digest()
    return base64.b64encode(b"fake-signature:" + digest * 3).decode()


def usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
    """The `usage` object of a message (non-stream and `message_start`)."""
    return {
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": reply.cache_creation_tokens,
        "cache_read_input_tokens": reply.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": reply.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": reply.cache_write_1h_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.thinking_pieces:
        blocks.append(
            {"type": "thinking", "thinking": reply.thinking, "signature": signature(reply.thinking)}
        )
    if reply.tool_call is None:
        blocks.append({"type": "text", "text": reply.text})
    else:
        call = reply.tool_call
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
    return blocks


def _stop_reason(reply: Reply) -> str:
    return "end_turn" if reply.tool_call is None else "tool_use"


def _message(reply: Reply, message_id: str, content: list[dict[str, Any]], **rest: Any) -> bytes:
    return orjson.dumps(
        {
            "model": reply.model,
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": content,
            **rest,
        }
    )


def message(reply: Reply, message_id: str) -> bytes:
    """A non-stream Messages API body."""
    return _message(
        reply,
        message_id,
        _blocks(reply),
        stop_reason=_stop_reason(reply),
        stop_sequence=None,
        usage=usage(reply, reply.anthropic_output_tokens),
    )


def _event(kind: str, payload: bytes, pad: bool = False) -> bytes:
    if pad:
        payload = payload[:-1] + b" " * random.randint(1, 16) + b"}"
    return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


def _delta(index: int, delta: dict[str, Any], pad: bool) -> bytes:
    payload = {"type": "content_block_delta", "index": index, "delta": delta}
    return _event("content_block_delta", orjson.dumps(payload), pad)


def _start(index: int, block: dict[str, Any], pad: bool) -> bytes:
    payload = {"type": "content_block_start", "index": index, "content_block": block}
    return _event("content_block_start", orjson.dumps(payload), pad)


def _stop(index: int) -> bytes:
    return _event("content_block_stop", b'{"type":"content_block_stop","index":%d}' % index)


def _block_events(reply: Reply, pad: bool) -> Iterator[bytes]:
    """Every content block event, block after block."""
    index = 0
    if reply.thinking_pieces:
        yield _start(index, {"type": "thinking", "thinking": "", "signature": ""}, pad)
        for piece in reply.thinking_pieces:
            yield _delta(index, {"type": "thinking_delta", "thinking": piece}, pad)
        sig = {"type": "signature_delta", "signature": signature(reply.thinking)}
        yield _delta(index, sig, pad)
        yield _stop(index)
        index += 1
    if reply.tool_call is None:
        yield _start(index, {"type": "text", "text": ""}, pad)
        for piece in reply.pieces:
            yield _delta(index, {"type": "text_delta", "text": piece}, pad)
    else:
        call = reply.tool_call
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        yield _start(index, block, pad)
        for piece in ("", *call.argument_pieces):
            yield _delta(index, {"type": "input_json_delta", "partial_json": piece}, pad)
    yield _stop(index)


def message_events(reply: Reply, message_id: str, *, pad: bool = False) -> Iterator[bytes]:
    """Every SSE event of a streamed message, `message_stop` last."""
    start = {
        "type": "message_start",
        "message": orjson.Fragment(
            _message(
                reply,
                message_id,
                [],
                stop_reason=None,
                stop_sequence=None,
                usage=usage(reply, 1),
            )
        ),
    }
    yield _event("message_start", orjson.dumps(start), pad)
    blocks = _block_events(reply, pad)
    yield next(blocks)
    yield _PING
    yield from blocks
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
        "usage": {
            "input_tokens": reply.prompt_tokens,
            "cache_creation_input_tokens": reply.cache_creation_tokens,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": reply.anthropic_output_tokens,
        },
    }
    yield _event("message_delta", orjson.dumps(final), pad)
    yield _event("message_stop", b'{"type":"message_stop"}', pad)


def count_tokens(input_tokens: int) -> bytes:
    """The `POST /v1/messages/count_tokens` body."""
    return orjson.dumps({"input_tokens": input_tokens})


def models_list(models: list[str]) -> bytes:
    """`GET /v1/models` in Anthropic's list shape (answered when `anthropic-version` is sent)."""
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": m,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for m in models
    ]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    )
