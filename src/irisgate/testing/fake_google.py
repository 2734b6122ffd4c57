"""Google's `generateContent` wire format (AI Studio and Vertex AI), rendered from a `Reply`.

A body is a `GenerateContentResponse`: ``candidates`` (one, ``content.role`` ``model``,
``parts`` with the text or a ``functionCall``), ``usageMetadata`` and ``modelVersion`` /
``responseId`` (Vertex adds ``createTime``). A stream sends one such object per text piece:
with ``alt=sse`` as ``data: {…}\\r\\n\\r\\n`` events, without it as one JSON array
``[{…},\\r\\n{…}]``. Every chunk carries the running ``usageMetadata``; the last one has
``finishReason`` and the final counts. A request with
``generationConfig.thinkingConfig.includeThoughts`` gets its thinking first, one chunk per
piece as ``{"text", "thought": true}`` parts, and its function call (when the last user turn
asks for one, see `function_tool`) carries a ``thoughtSignature``, which Gemini wants back
with the call in the next request. A Gemini 3 model (``gemini-3…``) thinks whether or not
its thoughts are asked for: its function calls always carry the signature. Function
declarations are read from ``parameters`` or ``parametersJsonSchema``. A request to a model
that signs its calls (thinking asked for, or Gemini 3) whose current turn (from the last user
text on) holds a function call without that signature is refused (400), as Gemini 3 does.
Errors are ``{"error": {"code", "message", "status"}}``.

Token rule: the prompt is the words of every ``text`` in ``contents`` and
``systemInstruction`` (at least 1), plus the ``cached_tokens`` knob, which Google counts
inside ``promptTokenCount`` and reports again as ``cachedContentTokenCount``. The
``reasoning_tokens`` knob is reported as ``thoughtsTokenCount``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from irisgate.testing.fake_reply import Reply, count_words, first_function

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "API key not valid. Please pass a valid API key.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}
SSE_HEADERS = {"Content-Type": "text/event-stream", "X-Content-Type-Options": "nosniff"}


def error_body(status: int, message: str | None = None) -> bytes:
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    text = message if message is not None else _MESSAGES.get(status, "Error.")
    return orjson.dumps({"error": {"code": status, "message": text, "status": name}})


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield value["text"]
        yield from _texts(value.get("parts"))
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    words = sum(
        count_words(text)
        for key in ("contents", "systemInstruction")
        for text in _texts(body.get(key))
    )
    return max(words, 1)


def _turn_start(contents: list[Any]) -> int:
    """Where the current turn starts: the last user content with text."""
    for i in range(len(contents) - 1, -1, -1):
        content = contents[i]
        if not isinstance(content, dict) or content.get("role", "user") != "user":
            continue
        parts = content.get("parts")
        if any(isinstance(p, dict) and "text" in p for p in parts or ()):
            return i
    return 0


def check_request(body: Mapping[str, Any], model: str = "") -> str | None:
    """The INVALID_ARGUMENT message a request to `model` earns, or None."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    if signs_calls(body, model):  # Gemini 3: this turn's calls come back with their signature
        for i, content in enumerate(contents):
            if i < _turn_start(contents):
                continue
            parts = content.get("parts") if isinstance(content, dict) else None
            for j, part in enumerate(parts if isinstance(parts, list) else ()):
                if not isinstance(part, dict) or "functionCall" not in part:
                    continue
                if part.get("thoughtSignature") != THOUGHT_SIGNATURE:
                    return (
                        f"Function call is missing a thought_signature in functionCall "
                        f"parts. contents[{i}].parts[{j}]"
                    )
    return None


def count_tokens(tokens: int) -> bytes:
    """The `countTokens` answer."""
    details = [{"modality": "TEXT", "tokenCount": tokens}]
    return orjson.dumps({"totalTokens": tokens, "promptTokensDetails": details})


def function_tool(body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(name, parameters) of the function to call when the last user turn asks for one."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return None
    last = contents[-1]
    if not isinstance(last, dict) or last.get("role", "user") != "user":
        return None
    text = " ".join(_texts(last))  # every part: Gemini CLI sends its context, then the prompt
    if "call tool" not in text:
        return None
    tools = body.get("tools")
    # a declaration's schema is `parameters` (OpenAPI subset) or `parametersJsonSchema`
    # (JSON Schema, what Gemini CLI sends)
    declarations = [
        {**d, "parameters": d.get("parameters") or d.get("parametersJsonSchema")}
        for tool in (tools if isinstance(tools, list) else [])
        if isinstance(tool, dict)
        for d in (tool.get("functionDeclarations") or [])
        if isinstance(d, dict)
    ]
    name, schema = first_function(declarations, None, "parameters")
    return (name, schema) if name else None


def thinking_wanted(body: Mapping[str, Any]) -> bool:
    """Whether the request asks to see the model's thoughts."""
    config = body.get("generationConfig")
    thinking = config.get("thinkingConfig") if isinstance(config, dict) else None
    return isinstance(thinking, dict) and thinking.get("includeThoughts") is True


def signs_calls(body: Mapping[str, Any], model: str) -> bool:
    """Whether `model` puts a thought signature on its function calls for this request: when
    thinking is asked for, and always on Gemini 3 (it thinks by default)."""
    return thinking_wanted(body) or model.startswith("gemini-3")


#: the thought signature the fake puts on a function call made while thinking
THOUGHT_SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="


def usage_metadata(reply: Reply, output: int, *, vertex: bool) -> dict[str, Any]:
    prompt = reply.prompt_tokens + reply.cached_tokens
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if output:
        usage["candidatesTokenCount"] = output
    usage["totalTokenCount"] = prompt + output + reply.reasoning_tokens
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if reply.reasoning_tokens:
        usage["thoughtsTokenCount"] = reply.reasoning_tokens
    if vertex:
        usage["trafficType"] = "ON_DEMAND"
    return usage


def _parts(reply: Reply, signed: bool) -> list[dict[str, Any]]:
    if reply.tool_call is not None:
        call = reply.tool_call
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.input}}
        if signed or reply.thinking_pieces:
            part["thoughtSignature"] = THOUGHT_SIGNATURE
        return [part]
    return [{"text": reply.text}]


def _chunk(
    reply: Reply,
    parts: list[dict[str, Any]],
    response_id: str,
    *,
    output: int,
    finished: bool,
    vertex: bool,
) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finished:
        candidate["finishReason"] = "STOP"
    if not vertex:
        candidate["index"] = 0
    body: dict[str, Any] = {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(reply, output, vertex=vertex),
        "modelVersion": reply.model,
    }
    if vertex:
        created = datetime.fromtimestamp(reply.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body["createTime"] = created
    body["responseId"] = response_id
    return orjson.dumps(body)


def response(
    reply: Reply, response_id: str, *, vertex: bool = False, signed: bool = False
) -> bytes:
    """A non-stream `generateContent` body (`signed`: a function call carries a thought
    signature even without thoughts, as Gemini 3's do)."""
    return _chunk(
        reply,
        _parts(reply, signed),
        response_id,
        output=reply.visible_tokens,
        finished=True,
        vertex=vertex,
    )


def chunks(
    reply: Reply, response_id: str, *, vertex: bool = False, signed: bool = False
) -> list[bytes]:
    """The `GenerateContentResponse` chunks of a streamed answer (JSON, unframed)."""
    thoughts = [
        _chunk(
            reply,
            [{"text": piece, "thought": True}],
            response_id,
            output=0,
            finished=False,
            vertex=vertex,
        )
        for piece in reply.thinking_pieces
    ]
    if reply.tool_call is not None:
        return [*thoughts, response(reply, response_id, vertex=vertex, signed=signed)]
    pieces = reply.pieces or ("",)
    last = len(pieces) - 1
    return thoughts + [
        _chunk(
            reply,
            [{"text": piece}],
            response_id,
            output=i + 1 if reply.pieces else 0,
            finished=i == last,
            vertex=vertex,
        )
        for i, piece in enumerate(pieces)
    ]


def sse(chunk_bodies: list[bytes]) -> Iterator[bytes]:
    for body in chunk_bodies:
        yield b"data: " + body + b"\r\n\r\n"


def json_array(chunk_bodies: list[bytes]) -> Iterator[bytes]:
    for i, body in enumerate(chunk_bodies):
        yield (b"[" if i == 0 else b",\r\n") + body
    yield b"]"
