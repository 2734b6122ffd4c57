"""Anthropic Messages API: token usage and stream reassembly.

Sans-io parsing only. `usage_from_response` reads a `message` body (a `count_tokens` answer has
no `usage` member and yields an empty Usage); `MessagesStreamAccumulator` rebuilds the `message`
from `message_start`, `content_block_*`, `message_delta` and `message_stop` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats.streamresult import (
    StreamResult,
    as_dict,
    as_int,
    load_object,
)
from irisgate.usage.tokens import Usage

__all__ = [
    "MessagesStreamAccumulator",
    "count_tool_calls",
    "parse_usage",
    "usage_from_response",
]

# content_block_delta type -> the block member its text extends
_TEXT_DELTAS = {"text_delta": "text", "thinking_delta": "thinking"}


def parse_usage(usage: Mapping[str, Any] | None) -> Usage:
    """Map an Anthropic `usage` object to `Usage`; None or a non-object gives empty Usage.

    Anthropic's `input_tokens` excludes cached tokens, so the whole prompt is
    `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`. Cache writes are
    split by TTL from `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`;
    without that breakdown all of `cache_creation_input_tokens` counts as 5-minute writes, and
    a breakdown that does not add up to the total gives the difference to the 5-minute bucket.
    Reasoning tokens come from `output_tokens_details.thinking_tokens` where reported, web
    searches from `server_tool_use.web_search_requests`.
    """
    u = as_dict(usage)
    if not u:
        return Usage()
    cache_read = as_int(u.get("cache_read_input_tokens"))
    breakdown = u.get("cache_creation")
    written = u.get("cache_creation_input_tokens")
    if isinstance(breakdown, dict):
        five_m = as_int(breakdown.get("ephemeral_5m_input_tokens"))
        one_h = as_int(breakdown.get("ephemeral_1h_input_tokens"))
        if written is not None:
            one_h = min(one_h, as_int(written))
            five_m = as_int(written) - one_h
    else:
        five_m, one_h = as_int(written), 0
    return Usage(
        input_tokens=as_int(u.get("input_tokens")) + cache_read + five_m + one_h,
        output_tokens=as_int(u.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=five_m,
        cache_write_1h_tokens=one_h,
        reasoning_tokens=as_int(as_dict(u.get("output_tokens_details")).get("thinking_tokens")),
        web_search_count=as_int(as_dict(u.get("server_tool_use")).get("web_search_requests")),
    )


def usage_from_response(obj: Mapping[str, Any]) -> Usage:
    """Usage of a non-streamed `message` body; empty for bodies without `usage` (count_tokens)."""
    return parse_usage(obj.get("usage"))


def count_tool_calls(obj: Mapping[str, Any]) -> int:
    """Tool calls a `message` body asks for: its `tool_use` content blocks (server tool blocks,
    run by Anthropic, are not counted)."""
    content = obj.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for block in content if as_dict(block).get("type") == "tool_use")


class _Block:
    """One content block: the `content_block_start` skeleton plus the deltas seen so far."""

    __slots__ = ("block", "json", "text")

    def __init__(self, block: dict[str, Any]) -> None:
        self.block = block
        self.text: dict[str, list[str]] = {}  # "text" / "thinking" -> fragments
        self.json: list[str] | None = None  # input_json_delta fragments

    def add(self, delta: Mapping[str, Any]) -> None:
        kind = delta.get("type")
        key = _TEXT_DELTAS.get(kind) if isinstance(kind, str) else None
        if key is not None:
            fragment = delta.get(key)
            if isinstance(fragment, str):
                parts = self.text.get(key)
                if parts is None:
                    start = self.block.get(key)
                    parts = self.text[key] = [start] if isinstance(start, str) and start else []
                parts.append(fragment)
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if isinstance(fragment, str):
                if self.json is None:
                    self.json = []
                self.json.append(fragment)
        elif kind == "signature_delta":
            self.block["signature"] = delta.get("signature")
        elif kind == "citations_delta":
            citations = self.block.get("citations")
            if not isinstance(citations, list):
                citations = self.block["citations"] = []
            citations.append(delta.get("citation"))

    def assemble(self) -> dict[str, Any]:
        block = dict(self.block)
        for key, parts in self.text.items():
            block[key] = "".join(parts)
        if self.json is not None:
            raw = "".join(self.json)
            try:
                block["input"] = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                block["input"] = raw  # cut off mid-input: keep the partial JSON text
        return block


class MessagesStreamAccumulator:
    """Follows an Anthropic Messages event stream and rebuilds its `message` object.

    Feed it every SSE event with `feed_event(event_type, data)`; the type is read from the JSON
    `type` member (`event_type` is the fallback), and `ping` events are skipped unparsed. It
    never raises on upstream input: payloads that are not JSON objects are counted in
    `malformed_events`.

    `message_start` gives the message skeleton and the input-side usage. Content blocks are
    built from `content_block_start` plus their deltas: text and thinking concatenated, the
    thinking `signature` and text `citations` recorded, `tool_use` / `server_tool_use` input
    parsed from the concatenated `partial_json` (left as the raw string if a cut stream leaves
    it invalid); result blocks such as `web_search_tool_result` arrive whole in their start
    event. `message_delta` sets `stop_reason` and friends; its `usage` counts are cumulative, so
    each non-null member replaces the one seen before (output_tokens: the last one wins; input
    side members override message_start's when present). `message_stop` marks the stream
    finished; an `error` event is kept as the message's `error` member. A cut stream keeps its
    partial content and the usage seen so far; `output_reported` is False until a
    `message_delta` carried `output_tokens` (message_start's own count is only a placeholder).
    `tool_calls` counts `tool_use` blocks.
    """

    __slots__ = (
        "_blocks",
        "_error",
        "_input_seen",
        "_message",
        "_output_seen",
        "_stopped",
        "_usage",
        "malformed_events",
    )

    def __init__(self) -> None:
        self._message: dict[str, Any] = {}
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, Any] = {}
        self._error: Any = None
        self._stopped = False
        self._input_seen = False  # message_start carried usage
        self._output_seen = False  # a message_delta carried the output count
        self.malformed_events = 0

    def feed_event(self, event_type: str, data: bytes) -> None:
        """Consume one SSE event: its `event:` name and its data payload."""
        if event_type == "ping":
            return
        event = load_object(data)
        if event is None:
            self.malformed_events += 1
            return
        kind = event.get("type")
        if not isinstance(kind, str):
            kind = event_type
        if kind == "content_block_delta":  # by far the most frequent
            delta = event.get("delta")
            if isinstance(delta, dict):
                index = as_int(event.get("index"))
                block = self._blocks.get(index)
                if block is None:  # its content_block_start was not seen
                    block = self._blocks[index] = _Block({})
                block.add(delta)
        elif kind == "content_block_start":
            start = event.get("content_block")
            if isinstance(start, dict):
                self._blocks[as_int(event.get("index"))] = _Block(start)
        elif kind == "message_delta":
            self._on_message_delta(event)
        elif kind == "message_start":
            self._on_message_start(event)
        elif kind == "message_stop":
            self._stopped = True
        elif kind == "error":
            self._error = event.get("error")

    def _on_message_delta(self, event: Mapping[str, Any]) -> None:
        delta = event.get("delta")
        if isinstance(delta, dict):
            self._message.update(delta)
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("output_tokens") is not None:
            self._output_seen = True
        self._merge_usage(usage)

    def _on_message_start(self, event: Mapping[str, Any]) -> None:
        message = event.get("message")
        if isinstance(message, dict):
            self._message = message
            self._usage = {}
            self._input_seen = isinstance(message.get("usage"), dict)
            self._merge_usage(message.get("usage"))

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                if value is not None:
                    self._usage[key] = value

    def result(self) -> StreamResult:
        """Usage, reassembled `message` and tool call count of the stream so far."""
        message = dict(self._message)
        message.setdefault("type", "message")
        message.setdefault("role", "assistant")
        content = [self._blocks[index].assemble() for index in sorted(self._blocks)]
        message["content"] = content
        message["usage"] = dict(self._usage)
        if self._error is not None:
            message["error"] = self._error
        return StreamResult(
            parse_usage(self._usage),
            message,
            count_tool_calls(message),
            self._stopped,
            self._input_seen,
            self._output_seen,
        )
