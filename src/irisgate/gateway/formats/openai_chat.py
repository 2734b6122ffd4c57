"""OpenAI Chat Completions: token usage, stream reassembly and the include_usage filter.

Sans-io parsing only. `usage_from_response` reads a `chat.completion` body;
`ChatStreamAccumulator` rebuilds that body from `chat.completion.chunk` events;
`UsageChunkFilter` hides from the client the extra usage chunk that the gateway asked for on
its behalf with `stream_options.include_usage`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from irisgate.gateway.formats.streamresult import (
    StreamResult,
    as_dict,
    as_int,
    load_object,
)
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser, split_events

__all__ = [
    "ChatStreamAccumulator",
    "UsageChunkFilter",
    "count_tool_calls",
    "parse_usage",
    "usage_from_response",
]

# Chunk members that describe the whole completion; the last non-null value of each is kept.
_META_KEYS = ("id", "created", "model", "system_fingerprint", "service_tier")
# Non-standard reasoning text deltas: DeepSeek / vLLM send `reasoning_content`, others
# (OpenRouter, Ollama) `reasoning`. Kept under the name the upstream used.
_REASONING_KEYS = ("reasoning_content", "reasoning")


def parse_usage(usage: Mapping[str, Any] | None) -> Usage:
    """Map a Chat Completions `usage` object to `Usage`; None or a non-object gives empty Usage.

    `prompt_tokens` is already the whole prompt, cached part included, and `completion_tokens`
    the whole completion, reasoning included. Cached prompt tokens come from
    `prompt_tokens_details.cached_tokens` (DeepSeek's `prompt_cache_hit_tokens` when absent);
    prompt tokens written to the cache from `prompt_tokens_details.cache_write_tokens` (a part
    of `prompt_tokens`, counted as `cache_write_5m_tokens`: priced at the model's cache-write
    price where genai-prices has one, else as ordinary input); image tokens from
    `prompt_tokens_details.image_tokens` / `completion_tokens_details.image_tokens` where the
    upstream reports them.
    """
    u = as_dict(usage)
    if not u:
        return Usage()
    prompt = as_dict(u.get("prompt_tokens_details"))
    completion = as_dict(u.get("completion_tokens_details"))
    cached = prompt.get("cached_tokens")
    if cached is None:
        cached = u.get("prompt_cache_hit_tokens")
    return Usage(
        input_tokens=as_int(u.get("prompt_tokens")),
        output_tokens=as_int(u.get("completion_tokens")),
        cache_read_tokens=as_int(cached),
        cache_write_5m_tokens=as_int(prompt.get("cache_write_tokens")),
        reasoning_tokens=as_int(completion.get("reasoning_tokens")),
        image_input_tokens=as_int(prompt.get("image_tokens")),
        image_output_tokens=as_int(completion.get("image_tokens")),
    )


def usage_from_response(obj: Mapping[str, Any]) -> Usage:
    """Usage of a non-streamed `chat.completion` body (empty Usage when it carries none)."""
    return parse_usage(obj.get("usage"))


def count_tool_calls(obj: Mapping[str, Any]) -> int:
    """Tool calls a `chat.completion` body asks for: every `message.tool_calls` entry of every
    choice, plus one per legacy `message.function_call`."""
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return 0
    count = 0
    for choice in choices:
        message = as_dict(as_dict(choice).get("message"))
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            count += len(calls)
        if isinstance(message.get("function_call"), dict):
            count += 1
    return count


class _Choice:
    """What the deltas of one choice index added up to so far."""

    __slots__ = (
        "content",
        "finish_reason",
        "function_call",
        "logprobs",
        "reasoning",
        "refusal",
        "role",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] | None = None  # None: no content delta seen
        self.refusal: list[str] | None = None
        self.reasoning: dict[str, list[str]] = {}
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.finish_reason: Any = None
        self.logprobs: dict[str, list[Any]] | None = None

    def add(self, delta: Mapping[str, Any]) -> None:
        role = delta.get("role")
        if role:
            self.role = role
        text = delta.get("content")
        if isinstance(text, str):
            if self.content is None:
                self.content = []
            self.content.append(text)
        text = delta.get("refusal")
        if isinstance(text, str):
            if self.refusal is None:
                self.refusal = []
            self.refusal.append(text)
        for key in _REASONING_KEYS:
            text = delta.get(key)
            if isinstance(text, str):
                self.reasoning.setdefault(key, []).append(text)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._add_tool_call(call)
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            if self.function_call is None:
                self.function_call = {"name": "", "arguments": []}
            _merge_function(self.function_call, legacy)

    def _add_tool_call(self, call: Mapping[str, Any]) -> None:
        index = as_int(call.get("index"))
        merged = self.tool_calls.get(index)
        if merged is None:
            merged = {"id": None, "type": "function", "function": {"name": "", "arguments": []}}
            self.tool_calls[index] = merged
        if call.get("id"):
            merged["id"] = call["id"]
        if call.get("type"):
            merged["type"] = call["type"]
        function = call.get("function")
        if isinstance(function, dict):
            _merge_function(merged["function"], function)

    def add_logprobs(self, logprobs: Mapping[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        for key, items in logprobs.items():
            if isinstance(items, list):
                self.logprobs.setdefault(key, []).extend(items)

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role or "assistant",
            "content": None if self.content is None else "".join(self.content),
            "refusal": None if self.refusal is None else "".join(self.refusal),
        }
        for key, parts in self.reasoning.items():
            message[key] = "".join(parts)
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": call["type"],
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": "".join(call["function"]["arguments"]),
                    },
                }
                for _, call in sorted(self.tool_calls.items())
            ]
        if self.function_call is not None:
            message["function_call"] = {
                "name": self.function_call["name"],
                "arguments": "".join(self.function_call["arguments"]),
            }
        return message


def _merge_function(into: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Name: the first non-empty one wins (sent once); arguments: fragments concatenated."""
    name = delta.get("name")
    if isinstance(name, str) and name and not into["name"]:
        into["name"] = name
    arguments = delta.get("arguments")
    if isinstance(arguments, str):
        into["arguments"].append(arguments)


class ChatStreamAccumulator:
    """Rebuilds a `chat.completion` from the data payloads of a Chat Completions stream.

    Feed it each SSE event's data with `feed_event`; `[DONE]` marks the end and is not parsed.
    It never raises on upstream input: a payload that is not a JSON object is counted in
    `malformed_events` and skipped. Content, refusal and reasoning text are concatenated per
    choice; tool calls are merged from their deltas by `index` (id and name from the first
    delta carrying them, argument fragments concatenated); the last non-null `usage` wins
    (some upstreams repeat a running total on every chunk). An `{"error": ...}` chunk is kept
    as the response's `error` member. `result()` may be called at any time, also after a cut:
    `finished` is True once `[DONE]` arrived or every choice reported a `finish_reason`.
    """

    __slots__ = ("_choices", "_done", "_error", "_meta", "_usage", "malformed_events")

    def __init__(self) -> None:
        self._meta: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: dict[str, Any] | None = None
        self._error: Any = None
        self._done = False
        self.malformed_events = 0

    def feed_event(self, data: bytes) -> None:
        """Consume one SSE data payload (one chunk, or `[DONE]`)."""
        if data[:6] == b"[DONE]":
            self._done = True
            return
        chunk = load_object(data)
        if chunk is None:
            self.malformed_events += 1
            return
        meta = self._meta
        for key in _META_KEYS:
            value = chunk.get(key)
            if value is not None:
                meta[key] = value
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        if "error" in chunk:
            self._error = chunk["error"]
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    self._add_choice(choice)

    def _add_choice(self, choice: Mapping[str, Any]) -> None:
        index = as_int(choice.get("index"))
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta:
            state.add(delta)
        finish_reason = choice.get("finish_reason")
        if finish_reason is not None:
            state.finish_reason = finish_reason
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            state.add_logprobs(logprobs)

    def result(self) -> StreamResult:
        """The usage, the reassembled `chat.completion` and its tool call count so far."""
        meta = self._meta
        response: dict[str, Any] = {
            "id": meta.get("id"),
            "object": "chat.completion",
            "created": meta.get("created"),
            "model": meta.get("model"),
            "choices": [
                {
                    "index": index,
                    "message": state.message(),
                    "logprobs": state.logprobs,
                    "finish_reason": state.finish_reason,
                }
                for index, state in sorted(self._choices.items())
            ],
            "usage": self._usage,
        }
        for key in ("system_fingerprint", "service_tier"):
            if key in meta:
                response[key] = meta[key]
        if self._error is not None:
            response["error"] = self._error
        tool_calls = count_tool_calls(response)
        finished = self._done or (
            bool(self._choices)
            and all(state.finish_reason is not None for state in self._choices.values())
        )
        reported = self._usage is not None
        return StreamResult(
            parse_usage(self._usage), response, tool_calls, finished, reported, reported
        )


# `"usage":null` with its separating comma, whichever side the comma is on; spaces allowed.
_USAGE_NULL = re.compile(
    rb',[ \t]*"usage"[ \t]*:[ \t]*null(?=[ \t]*[,}])'
    rb'|"usage"[ \t]*:[ \t]*null[ \t]*,[ \t]*'
    rb'|"usage"[ \t]*:[ \t]*null(?=[ \t]*})'
)


class UsageChunkFilter:
    """Undoes, on the raw byte stream, a `stream_options.include_usage` the client did not ask for.

    Feed it the upstream body in pieces of any size: `feed(data)` returns the bytes to forward
    now, `flush()` the rest at end of stream. Whole SSE events are forwarded byte-for-byte
    except that (1) the extra usage chunk - an event whose JSON has `"choices": []` and a
    non-null `usage` - is dropped, and (2) the `"usage":null` member (with its comma, spaced or
    not) is cut from every other event. The client thus gets what the upstream sends without
    include_usage. Only events containing `"usage"` are edited, and only those that also look
    like the usage chunk (`"choices":[]`) are JSON-parsed, so the per-event cost stays tiny.

    Usage accounting: the recommended wiring feeds `ChatStreamAccumulator` from the unfiltered
    upstream bytes (its own `SSEParser`), which already include the usage chunk. For callers
    that only see the filtered output, the data payload of the dropped chunk is kept in
    `usage_event` (None until one was dropped): pass it to `ChatStreamAccumulator.feed_event`.

    An event longer than `MAX_EVENT` (no real chunk comes close) is not held back whole:
    the filter forwards what it holds and passes the rest of the stream through unchanged.
    """

    __slots__ = ("_pending", "passing", "usage_event")

    #: bytes of one event held back at most
    MAX_EVENT = 1 << 20

    def __init__(self) -> None:
        self._pending = b""
        self.usage_event: bytes | None = None
        self.passing = False  # gave up filtering: an event was longer than MAX_EVENT

    def feed(self, data: bytes) -> bytes:
        """Consume the next piece of the upstream body; return what to forward to the client."""
        if self.passing:
            return data
        pending = self._pending
        if b"\n" in data or b"\r" in data or pending.endswith(b"\r"):
            blocks, self._pending = split_events(pending + data if pending else data)
        else:
            blocks, self._pending = [], pending + data
        if len(self._pending) > self.MAX_EVENT:
            self.passing = True
            blocks.append(self._pending)  # forwarded as it is, like all that follows
            self._pending = b""
            return b"".join([self._filter(block) for block in blocks[:-1]] + blocks[-1:])
        if len(blocks) == 1:
            return self._filter(blocks[0])
        return b"".join([self._filter(block) for block in blocks])

    def flush(self) -> bytes:
        """End of stream: the held-back remainder (an unterminated last event), filtered."""
        rest, self._pending = self._pending, b""
        return self._filter(rest) if rest else b""

    def _filter(self, block: bytes) -> bytes:
        if b'"usage"' not in block:
            return block
        if b'"choices":[]' in block or b'"choices": []' in block:
            data = self._usage_chunk_data(block)
            if data is not None:
                self.usage_event = data
                return b""
        cut = block.rfind(b',"usage":null')
        if cut >= 0:
            return block[:cut] + block[cut + 13 :]
        matches = list(_USAGE_NULL.finditer(block))
        if not matches:
            return block
        match = matches[-1]
        return block[: match.start()] + block[match.end() :]

    @staticmethod
    def _usage_chunk_data(block: bytes) -> bytes | None:
        """The block's data if it is the include_usage chunk, else None."""
        parser = SSEParser()
        events = parser.feed(block) or parser.feed(b"\n\n")
        if len(events) != 1:
            return None
        chunk = load_object(events[0].data)
        if chunk is None:
            return None
        if chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict):
            return events[0].data
        return None
