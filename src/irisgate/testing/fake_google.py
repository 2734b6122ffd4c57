"""Google's `generateContent` wire format (AI Studio and Vertex AI), rendered from a `Reply`.

A body is a `GenerateContentResponse`: ``candidates`` (one, ``content.role`` ``model``,
``parts`` with the text or a ``functionCall``), ``usageMetadata`` and ``modelVersion`` /
``responseId`` (Vertex adds ``createTime``). A stream sends one such object per text piece:
with ``alt=sse`` as ``data: {…}\\r\\n\\r\\n`` events, without it as one JSON array
``[{…},\\r\\n{…}]``. Every chunk carries the running ``usageMetadata``; the last one has
``finishReason`` and the final counts. Errors are
``{"error": {"code", "message", "status"}}``.

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


def check_request(body: Mapping[str, Any]) -> str | None:
    """The INVALID_ARGUMENT message a request earns, or None."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
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


def _parts(reply: Reply) -> list[dict[str, Any]]:
    if reply.tool_call is not None:
        call = reply.tool_call
        return [{"functionCall": {"name": call.name, "args": call.input}}]
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


def response(reply: Reply, response_id: str, *, vertex: bool = False) -> bytes:
    """A non-stream `generateContent` body."""
    return _chunk(
        reply,
        _parts(reply),
        response_id,
        output=reply.visible_tokens,
        finished=True,
        vertex=vertex,
    )


def chunks(reply: Reply, response_id: str, *, vertex: bool = False) -> list[bytes]:
    """The `GenerateContentResponse` chunks of a streamed answer (JSON, unframed)."""
    if reply.tool_call is not None:
        return [response(reply, response_id, vertex=vertex)]
    pieces = reply.pieces or ("",)
    last = len(pieces) - 1
    return [
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
