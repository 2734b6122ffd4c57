"""Amazon Bedrock runtime's wire format, rendered from a `Reply` (Anthropic models).

``InvokeModel`` answers with the Anthropic `message` body; ``InvokeModelWithResponseStream``
with an ``application/vnd.amazon.eventstream`` of ``chunk`` events (headers ``:event-type``
``chunk``, ``:content-type`` ``application/json``, ``:message-type`` ``event``) whose payload
is ``{"bytes": "<base64 Anthropic event>", "p": "<padding>"}``; the ``message_stop`` event
also carries ``amazon-bedrock-invocationMetrics``. ``Converse`` answers with ``output``,
``stopReason``, ``usage`` and ``metrics``; ``ConverseStream`` sends ``messageStart``,
``contentBlockDelta``…, ``contentBlockStop``, ``messageStop`` and ``metadata`` events, each a
JSON payload with a ``p`` padding member. Errors are ``{"message": …}`` with the exception
name in the ``x-amzn-ErrorType`` header.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Iterator
from typing import Any

import orjson

from irisgate.gateway.formats.eventstream import HeaderValue, encode_message
from irisgate.testing import fake_anthropic
from irisgate.testing.fake_reply import Reply

EVENTSTREAM = "application/vnd.amazon.eventstream"
_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_MESSAGES = {
    403: "You don't have access to the model with the specified model ID.",
    404: "The provided model identifier is invalid.",
    429: "Too many requests, please wait before trying again.",
    500: "The system encountered an unexpected error during processing. Try your request again.",
}


def error(status: int, message: str | None = None) -> tuple[bytes, dict[str, str]]:
    name = _ERRORS.get(
        status, "InternalServerException" if status >= 500 else "ValidationException"
    )
    text = message if message is not None else _MESSAGES.get(status, "Malformed input request.")
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }
    return orjson.dumps({"message": text}), headers


def check_invoke(body: dict[str, Any]) -> str | None:
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        return "Malformed input request: #: required key [anthropic_version] not found"
    for name in ("max_tokens", "messages"):
        if name not in body:
            return f"Malformed input request: #: required key [{name}] not found"
    return None


def check_converse(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message. Try again with a conversation"
    return None


def _padding() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=random.randint(1, 20)))


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    headers: dict[str, HeaderValue] = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, orjson.dumps(payload))


def invoke_events(reply: Reply, message_id: str) -> Iterator[bytes]:
    """The event stream of InvokeModelWithResponseStream."""
    for sse in fake_anthropic.message_events(reply, message_id):
        if sse.startswith(b"event: ping"):
            continue
        data = sse[sse.index(b"\ndata: ") + 7 : -2]
        event = orjson.loads(data)
        if event.get("type") == "message_stop":
            event["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": reply.prompt_tokens,
                "outputTokenCount": reply.anthropic_output_tokens,
                "invocationLatency": 120,
                "firstByteLatency": 40,
            }
            data = orjson.dumps(event)
        payload = {"bytes": base64.b64encode(data).decode(), "p": _padding()}
        yield _event("chunk", payload)


def _converse_usage(reply: Reply) -> dict[str, Any]:
    output = reply.anthropic_output_tokens
    usage: dict[str, Any] = {
        "inputTokens": reply.prompt_tokens,
        "outputTokens": output,
        "totalTokens": reply.prompt_tokens + output + reply.cached_tokens,
    }
    if reply.cached_tokens:
        usage["cacheReadInputTokens"] = reply.cached_tokens
    return usage


def converse_body(reply: Reply) -> bytes:
    return orjson.dumps(
        {
            "metrics": {"latencyMs": 312},
            "output": {"message": {"content": [{"text": reply.text}], "role": "assistant"}},
            "stopReason": "end_turn",
            "usage": _converse_usage(reply),
        }
    )


def converse_events(reply: Reply) -> Iterator[bytes]:
    yield _event("messageStart", {"p": _padding(), "role": "assistant"})
    for piece in reply.pieces:
        delta = {"contentBlockIndex": 0, "delta": {"text": piece}, "p": _padding()}
        yield _event("contentBlockDelta", delta)
    yield _event("contentBlockStop", {"contentBlockIndex": 0, "p": _padding()})
    yield _event("messageStop", {"p": _padding(), "stopReason": "end_turn"})
    metadata = {"metrics": {"latencyMs": 298}, "p": _padding(), "usage": _converse_usage(reply)}
    yield _event("metadata", metadata)
