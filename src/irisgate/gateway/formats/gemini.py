"""Gemini `generateContent` (Google AI Studio and Vertex AI): token usage and stream reassembly.

Sans-io parsing only. A streamed answer is a sequence of `GenerateContentResponse` chunks, sent
either as SSE (`alt=sse`: one `data:` event per chunk) or as one JSON array whose elements are
the chunks; `GenerateContentAccumulator` takes chunks from either and rebuilds one response.

Usage (`usageMetadata`) maps to `Usage` so every format means the same thing: the prompt is
`promptTokenCount + toolUsePromptTokenCount` (cached content is part of `promptTokenCount`),
the completion is `candidatesTokenCount + thoughtsTokenCount` (Google bills thoughts as
output), cache reads are `cachedContentTokenCount`, reasoning is `thoughtsTokenCount`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats.streamresult import (
    EMPTY,
    StreamResult,
    as_dict,
    as_int,
    load_object,
)
from irisgate.usage.tokens import Usage

__all__ = [
    "GenerateContentAccumulator",
    "count_tool_calls",
    "parse_usage",
    "read_json_array_stream",
    "usage_from_response",
]


def parse_usage(metadata: object) -> Usage:
    """Map a `usageMetadata` object to `Usage`; anything else gives an empty Usage."""
    u = as_dict(metadata)
    if not u:
        return Usage()
    thoughts = as_int(u.get("thoughtsTokenCount"))
    images = sum(
        as_int(as_dict(d).get("tokenCount"))
        for d in (u.get("promptTokensDetails") or ())
        if as_dict(d).get("modality") == "IMAGE"
    )
    return Usage(
        input_tokens=as_int(u.get("promptTokenCount")) + as_int(u.get("toolUsePromptTokenCount")),
        output_tokens=as_int(u.get("candidatesTokenCount")) + thoughts,
        cache_read_tokens=as_int(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
        image_input_tokens=images,
    )


def usage_from_response(obj: Mapping[str, Any]) -> Usage:
    return parse_usage(obj.get("usageMetadata"))


def count_tool_calls(obj: Mapping[str, Any]) -> int:
    """`functionCall` parts of the first candidate: the calls the client is asked to run."""
    candidates = obj.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return 0
    parts = as_dict(as_dict(candidates[0]).get("content")).get("parts")
    if not isinstance(parts, list):
        return 0
    return sum(1 for part in parts if "functionCall" in as_dict(part))


class GenerateContentAccumulator:
    """Rebuilds one `GenerateContentResponse` from its stream chunks.

    Text parts of each candidate are concatenated (thought parts apart from answer parts);
    other parts (function calls, inline data) are kept in order. `usageMetadata` is cumulative
    in the stream, so the last one seen wins. The stream counts as finished once a candidate
    carries a `finishReason`. Never raises on upstream input.
    """

    __slots__ = ("_candidates", "_finished", "_top", "_usage", "malformed_events")

    def __init__(self) -> None:
        self._top: dict[str, Any] = {}
        self._candidates: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._finished = False
        self.malformed_events = 0

    def feed_event(self, event_type: str, data: bytes) -> None:
        """Consume one SSE event (its type is irrelevant: Gemini names none)."""
        chunk = load_object(data)
        if chunk is None:
            self.malformed_events += 1
            return
        self.feed_chunk(chunk)

    def feed_chunk(self, chunk: Mapping[str, Any]) -> None:
        for key in ("modelVersion", "responseId", "createTime", "promptFeedback"):
            if key in chunk:
                self._top[key] = chunk[key]
        if "usageMetadata" in chunk:
            self._usage = chunk["usageMetadata"]
        candidates = chunk.get("candidates")
        if isinstance(candidates, list):
            for position, candidate in enumerate(candidates):
                if isinstance(candidate, dict):
                    self._add_candidate(position, candidate)

    def _add_candidate(self, position: int, candidate: Mapping[str, Any]) -> None:
        index = as_int(candidate.get("index", position))
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = {"parts": [], "rest": {}, "role": "model"}
        rest, content = state["rest"], EMPTY
        for key, value in candidate.items():
            if key == "content":
                content = as_dict(value)
            else:
                rest[key] = value
        if "finishReason" in candidate:
            self._finished = True
        role = content.get("role")
        if isinstance(role, str):
            state["role"] = role
        parts = content.get("parts")
        if not isinstance(parts, list):
            return
        merged: list[dict[str, Any]] = state["parts"]
        for part in parts:
            if not isinstance(part, dict):
                continue
            text = part.get("text")
            last = merged[-1] if merged else None
            if (
                isinstance(text, str)
                and last is not None
                and isinstance(last.get("text"), str)
                and bool(last.get("thought")) == bool(part.get("thought"))
            ):
                last["text"] += text
            else:
                merged.append(dict(part))

    def result(self) -> StreamResult:
        response: dict[str, Any] = {"candidates": []}
        for index in sorted(self._candidates):
            state = self._candidates[index]
            content = {"role": state["role"], "parts": state["parts"]}
            response["candidates"].append({"content": content, **state["rest"]})
        if self._usage is not None:
            response["usageMetadata"] = self._usage
        response.update(self._top)
        return StreamResult(
            parse_usage(self._usage), response, count_tool_calls(response), self._finished
        )


def read_json_array_stream(body: bytes) -> StreamResult | None:
    """A stream sent as one JSON array of chunks (no `alt=sse`); None if `body` is not one.

    A stream cut off mid-array is read up to its last complete chunk.
    """
    text = body.lstrip()
    if not text.startswith(b"["):
        return None
    try:
        chunks = orjson.loads(text)
    except orjson.JSONDecodeError:
        chunks = _complete_prefix(text)
    if not isinstance(chunks, list):
        return None
    accumulator = GenerateContentAccumulator()
    for chunk in chunks:
        if isinstance(chunk, dict):
            accumulator.feed_chunk(chunk)
    return accumulator.result()


def _complete_prefix(text: bytes) -> list[Any]:
    """The complete top-level elements of a cut-off JSON array."""
    end = len(text)
    while end > 1:
        end = text.rfind(b"}", 0, end)
        if end < 0:
            break
        try:
            value = orjson.loads(text[: end + 1] + b"]")
        except orjson.JSONDecodeError:
            continue
        return value if isinstance(value, list) else []
    return []
