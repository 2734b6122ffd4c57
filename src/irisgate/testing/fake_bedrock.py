"""Amazon Bedrock runtime's wire format, rendered from a `Reply` (Anthropic and Mistral models).

``InvokeModel`` answers with the model vendor's own body: the Anthropic `message`, or for
Mistral models (``mistral.…``) ``{"outputs": [{"text", "stop_reason"}]}``, which carries no
token counts. Either way Bedrock reports its counts in the response headers
``X-Amzn-Bedrock-Input-Token-Count`` and ``X-Amzn-Bedrock-Output-Token-Count`` (beside
``X-Amzn-Bedrock-Invocation-Latency``; Anthropic models also get
``X-Amzn-Bedrock-Cache-Read-Input-Token-Count`` / ``…-Cache-Write-…``), input counts
excluding cache reads and writes as in the invocation metrics. Converse answers get the same
headers. ``InvokeModelWithResponseStream`` answers
with an ``application/vnd.amazon.eventstream`` of ``chunk`` events (headers ``:event-type``
``chunk``, ``:content-type`` ``application/json``, ``:message-type`` ``event``) whose payload
is ``{"bytes": "<base64 vendor event>", "p": "<padding>"}``: Anthropic stream events, or
Mistral's ``{"outputs": [{"text", "stop_reason"}]}`` pieces; the last event also carries
``amazon-bedrock-invocationMetrics`` (a stream's headers have no token counts).
``Converse`` answers with ``output``,
``stopReason``, ``usage`` and ``metrics``; ``ConverseStream`` sends ``messageStart``,
``contentBlockDelta``…, ``contentBlockStop``, ``messageStop`` and ``metadata`` events, each a
JSON payload with a ``p`` padding member. A Converse request whose last user message asks for
a tool (`CALL_TOOL_TRIGGER`) and offers one in ``toolConfig`` gets a ``toolUse`` block
(``contentBlockStart`` with its id and name, ``contentBlockDelta`` pieces of its input,
``stopReason`` ``tool_use``); one with ``additionalModelRequestFields.thinking`` enabled gets
a ``reasoningContent`` block first (text pieces, then its ``signature``). Converse refuses
messages that do not alternate between ``user`` and ``assistant`` and images whose
``format`` or base64 ``source.bytes`` are wrong (ValidationException). Errors are
``{"message": …}`` with the exception name in the ``x-amzn-ErrorType`` header.
"""

from __future__ import annotations

import base64
import functools
import itertools
import random
import string
from collections.abc import Iterator
from typing import Any

import orjson

from irisgate.testing import fake_anthropic
from irisgate.testing.fake_reply import Reply, first_function, wants_tool_call
from irisgate.wire.eventstream import HeaderValue, encode_frame, encode_headers

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


#: cross-region inference profile prefixes (`us.anthropic.…`)
_GEO_PREFIXES = frozenset({"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"})


def vendor(model_id: str) -> str:
    """The model vendor of a Bedrock model id: ``anthropic`` for
    ``us.anthropic.claude-…-v1:0``, ``mistral`` for ``mistral.mistral-large-2402-v1:0``."""
    parts = model_id.split(".")
    if len(parts) > 2 and parts[0] in _GEO_PREFIXES:
        return parts[1]
    return parts[0]


def check_mistral(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("prompt"), str):
        return "Malformed input request: #: required key [prompt] not found"
    return None


def check_converse(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message. Try again with a conversation"
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles[0] != "user" or any(a == b for a, b in itertools.pairwise(roles)):
        return "A conversation must alternate between user and assistant roles."
    for i, message in enumerate(messages):
        for j, block in enumerate(message.get("content") or ()):
            image = block.get("image") if isinstance(block, dict) else None
            if image is None:
                continue
            problem = _image_problem(image)
            if problem:
                return f"messages.{i}.member.content.{j}.member.image: {problem}"
    return None


_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")


def _image_problem(image: Any) -> str:
    if not isinstance(image, dict) or image.get("format") not in _IMAGE_FORMATS:
        return "format must be one of png, jpeg, gif, webp"
    data = image.get("source", {}).get("bytes") if isinstance(image.get("source"), dict) else None
    try:
        base64.b64decode(data or "", validate=True)
    except (ValueError, TypeError):
        return "source.bytes is not valid base64"
    return "" if data else "source.bytes is required"


def converse_tool(body: dict[str, Any]) -> tuple[str, Any] | None:
    """(name, input schema) of the tool a Converse request asks the model to use."""
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    texts = [b.get("text") for b in last.get("content") or () if isinstance(b, dict)]
    said = " ".join(t for t in texts if isinstance(t, str))
    if last.get("role") != "user" or not wants_tool_call(said):
        return None
    config = body.get("toolConfig")
    tools = config.get("tools") if isinstance(config, dict) else None
    specs = [
        {**t["toolSpec"], "schema": (t["toolSpec"].get("inputSchema") or {}).get("json")}
        for t in tools or ()
        if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
    ]
    name, schema = first_function(specs, None, "schema")
    return (name, schema) if name else None


def converse_thinking(body: dict[str, Any]) -> bool:
    fields = body.get("additionalModelRequestFields")
    thinking = fields.get("thinking") if isinstance(fields, dict) else None
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


#: the signature of the fake's reasoning blocks
REASONING_SIGNATURE = "ZmFrZS1iZWRyb2NrLXNpZ25hdHVyZQ=="


#: a shuffled pool of letters and digits: padding is a random slice of it (cheap enough for
#: the benchmark's upstream, which renders every event of every stream)
_PAD_POOL = "".join(random.sample((string.ascii_letters + string.digits) * 2, 124))


def _padding() -> str:
    """1 to 20 random letters and digits."""
    bits = random.getrandbits(16)
    start = (bits >> 5) % (len(_PAD_POOL) - 20)
    return _PAD_POOL[start : start + bits % 20 + 1]


@functools.cache
def _headers(kind: str) -> bytes:
    headers: dict[str, HeaderValue] = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_headers(headers)


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return encode_frame(_headers(kind), orjson.dumps(payload))


def token_headers(reply: Reply, *, anthropic: bool = True) -> dict[str, str]:
    """The usage headers Bedrock adds to InvokeModel and Converse answers."""
    headers = {
        "X-Amzn-Bedrock-Invocation-Latency": "120",
        "X-Amzn-Bedrock-Output-Token-Count": str(reply.anthropic_output_tokens),
        "X-Amzn-Bedrock-Input-Token-Count": str(reply.prompt_tokens),
    }
    if anthropic:
        headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = str(reply.cached_tokens)
        headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = str(reply.cache_creation_tokens)
    return headers


def _metrics(reply: Reply) -> dict[str, int]:
    return {
        "inputTokenCount": reply.prompt_tokens,
        "outputTokenCount": reply.anthropic_output_tokens,
        "invocationLatency": 120,
        "firstByteLatency": 40,
    }


def _chunk(data: bytes) -> bytes:
    """A `chunk` event: {"bytes": base64, "p": padding}, as orjson would write it."""
    payload = b'{"bytes":"%b","p":"%b"}' % (base64.b64encode(data), _padding().encode())
    return encode_frame(_headers("chunk"), payload)


def invoke_events(reply: Reply, message_id: str) -> Iterator[bytes]:
    """The event stream of InvokeModelWithResponseStream (Anthropic models)."""
    for sse in fake_anthropic.message_events(reply, message_id):
        if sse.startswith(b"event: ping"):
            continue
        data = sse[sse.index(b"\ndata: ") + 7 : -2]
        if data.startswith(b'{"type":"message_stop"'):
            event = orjson.loads(data)
            event["amazon-bedrock-invocationMetrics"] = _metrics(reply)
            data = orjson.dumps(event)
        yield _chunk(data)


def mistral_body(reply: Reply) -> bytes:
    """A Mistral InvokeModel body: the text and why it stopped, no usage."""
    return orjson.dumps({"outputs": [{"text": reply.text, "stop_reason": "stop"}]})


def mistral_events(reply: Reply) -> Iterator[bytes]:
    """Mistral's InvokeModelWithResponseStream: one chunk per piece, the last one with the stop
    reason and the invocation metrics."""
    pieces = reply.pieces or ("",)
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        output = {"text": piece, "stop_reason": "stop" if last else None}
        event: dict[str, Any] = {"outputs": [output]}
        if last:
            event["amazon-bedrock-invocationMetrics"] = _metrics(reply)
        yield _chunk(orjson.dumps(event))


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


def _stop_reason(reply: Reply) -> str:
    return "tool_use" if reply.tool_call is not None else "end_turn"


def converse_body(reply: Reply) -> bytes:
    content: list[dict[str, Any]] = []
    if reply.thinking_pieces:
        reasoning = {"text": reply.thinking, "signature": REASONING_SIGNATURE}
        content.append({"reasoningContent": {"reasoningText": reasoning}})
    if reply.tool_call is not None:
        call = reply.tool_call
        content.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.input}})
    else:
        content.append({"text": reply.text})
    return orjson.dumps(
        {
            "metrics": {"latencyMs": 312},
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": _stop_reason(reply),
            "usage": _converse_usage(reply),
        }
    )


def _block(index: int, delta: dict[str, Any]) -> bytes:
    return _event(
        "contentBlockDelta", {"contentBlockIndex": index, "delta": delta, "p": _padding()}
    )


def converse_events(reply: Reply) -> Iterator[bytes]:
    yield _event("messageStart", {"p": _padding(), "role": "assistant"})
    index = 0
    if reply.thinking_pieces:
        for piece in reply.thinking_pieces:
            yield _block(0, {"reasoningContent": {"text": piece}})
        yield _block(0, {"reasoningContent": {"signature": REASONING_SIGNATURE}})
        yield _event("contentBlockStop", {"contentBlockIndex": 0, "p": _padding()})
        index = 1
    if reply.tool_call is not None:
        call = reply.tool_call
        start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
        yield _event(
            "contentBlockStart", {"contentBlockIndex": index, "start": start, "p": _padding()}
        )
        for piece in call.argument_pieces:
            yield _block(index, {"toolUse": {"input": piece}})
    else:
        for piece in reply.pieces:
            yield _block(index, {"text": piece})
    yield _event("contentBlockStop", {"contentBlockIndex": index, "p": _padding()})
    yield _event("messageStop", {"p": _padding(), "stopReason": _stop_reason(reply)})
    metadata = {"metrics": {"latencyMs": 298}, "p": _padding(), "usage": _converse_usage(reply)}
    yield _event("metadata", metadata)
