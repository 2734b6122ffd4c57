"""OpenAI Responses API: token usage and stream reassembly.

Sans-io parsing only. `usage_from_response` reads a `response` object (the non-streamed body,
or the `response` member of a terminal stream event); `ResponsesStreamAccumulator` follows the
semantic stream events and yields the final `response`, rebuilt from the output item events
when the stream was cut off before its terminal event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from irisgate.gateway.formats.streamresult import (
    StreamResult,
    as_dict,
    as_int,
    load_object,
)
from irisgate.usage.tokens import Usage

__all__ = [
    "ResponsesStreamAccumulator",
    "count_tool_calls",
    "parse_usage",
    "usage_from_response",
]

_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_SNAPSHOTS = frozenset({"response.created", "response.in_progress", "response.queued"})
# Output items that are calls for the client to run (custom tools are free-form functions).
_TOOL_CALL_ITEMS = frozenset({"function_call", "custom_tool_call"})
_WEB_SEARCH_ITEMS = frozenset({"web_search_call"})
# Delta events that extend a content part, with the part's shape when no part event came first.
_PART_DELTAS: dict[str, tuple[str, str]] = {
    "response.output_text.delta": ("output_text", "text"),
    "response.refusal.delta": ("refusal", "refusal"),
    "response.reasoning_text.delta": ("reasoning_text", "text"),
}
# Delta events that extend an item's arguments / input string.
_ARGUMENT_DELTAS = frozenset(
    {
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.mcp_call_arguments.delta",
    }
)


def parse_usage(usage: Mapping[str, Any] | None) -> Usage:
    """Map a Responses `usage` object to `Usage`; None or a non-object gives empty Usage.

    `input_tokens` already includes `input_tokens_details.cached_tokens` and
    `input_tokens_details.cache_write_tokens` (the prompt tokens written to the cache, counted
    as `cache_write_5m_tokens` whatever their retention, `cache_write_tokens_details`' 30 min or
    12 h: priced at the model's cache-write price where genai-prices has one, else as ordinary
    input), and
    `output_tokens` includes `output_tokens_details.reasoning_tokens`.
    """
    u = as_dict(usage)
    if not u:
        return Usage()
    details_in = as_dict(u.get("input_tokens_details"))
    details_out = as_dict(u.get("output_tokens_details"))
    return Usage(
        input_tokens=as_int(u.get("input_tokens")),
        output_tokens=as_int(u.get("output_tokens")),
        cache_read_tokens=as_int(details_in.get("cached_tokens")),
        cache_write_5m_tokens=as_int(details_in.get("cache_write_tokens")),
        reasoning_tokens=as_int(details_out.get("reasoning_tokens")),
        image_input_tokens=as_int(details_in.get("image_tokens")),
        image_output_tokens=as_int(details_out.get("image_tokens")),
    )


def usage_from_response(obj: Mapping[str, Any]) -> Usage:
    """Usage of a `response` object, with `web_search_count` = its `web_search_call` items."""
    usage = parse_usage(obj.get("usage"))
    usage.web_search_count = _count_items(obj.get("output"), _WEB_SEARCH_ITEMS)
    return usage


def count_tool_calls(obj: Mapping[str, Any]) -> int:
    """Tool calls a `response` object asks for: its `function_call` and `custom_tool_call`
    output items."""
    return _count_items(obj.get("output"), _TOOL_CALL_ITEMS)


def _count_items(output: object, types: frozenset[str]) -> int:
    if not isinstance(output, list):
        return 0
    return sum(1 for item in output if isinstance(item, dict) and item.get("type") in types)


class _Item:
    """One output item as its events built it: the item skeleton plus text seen so far."""

    __slots__ = ("args", "done", "item", "parts", "summary", "texts")

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.done = False  # output_item.done delivered the complete item
        self.parts: dict[int, dict[str, Any]] = {}  # content_index -> part skeleton
        self.texts: dict[int, list[str]] = {}  # content_index -> text deltas
        self.summary: dict[int, list[str]] = {}  # summary_index -> summary text deltas
        self.args: list[str] = []

    def assemble(self) -> dict[str, Any]:
        if self.done:
            return self.item
        item = dict(self.item)
        if self.parts:
            content = []
            for index in sorted(self.parts):
                part = dict(self.parts[index])
                texts = self.texts.get(index)
                if texts is not None:
                    part["refusal" if part.get("type") == "refusal" else "text"] = "".join(texts)
                content.append(part)
            item["content"] = content
        if self.summary:
            item["summary"] = [
                {"type": "summary_text", "text": "".join(self.summary[index])}
                for index in sorted(self.summary)
            ]
        if self.args:
            key = "input" if item.get("type") == "custom_tool_call" else "arguments"
            item[key] = "".join(self.args)
        return item


class ResponsesStreamAccumulator:
    """Follows a Responses API event stream and rebuilds its final `response` object.

    Feed it every SSE event with `feed_event(event_type, data)`; the event's type is read from
    the JSON `type` member (`event_type`, the SSE `event:` name, is the fallback). It never
    raises on upstream input: payloads that are not JSON objects are counted in
    `malformed_events`. The `response` of a terminal event (`response.completed`,
    `response.incomplete`, `response.failed`) is authoritative when one arrives; otherwise the
    latest `response.created` / `in_progress` snapshot is returned with its `output` rebuilt from
    `output_item.*`, `content_part.*` and the text / argument / summary delta events (a cut
    stream: `finished` is False and `usage` is whatever the snapshot carried, usually none).
    An `error` event is kept as the response's `error` member. `tool_calls` counts
    `function_call` and `custom_tool_call` output items.
    """

    __slots__ = ("_error", "_final", "_items", "_snapshot", "malformed_events")

    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._final: dict[str, Any] | None = None
        self._items: dict[int, _Item] = {}
        self._error: Any = None
        self.malformed_events = 0

    def feed_event(self, event_type: str, data: bytes) -> None:
        """Consume one SSE event: its `event:` name and its data payload."""
        event = load_object(data)
        if event is None:
            self.malformed_events += 1
            return
        kind = event.get("type")
        if not isinstance(kind, str):
            kind = event_type
        part_shape = _PART_DELTAS.get(kind)
        if part_shape is not None:
            item = self._item(event)
            index = as_int(event.get("content_index"))
            if index not in item.parts:
                item.parts[index] = {"type": part_shape[0], part_shape[1]: ""}
            item.texts.setdefault(index, []).append(_text(event.get("delta")))
        elif kind in _ARGUMENT_DELTAS:
            self._item(event).args.append(_text(event.get("delta")))
        elif kind in _TERMINAL:
            self._final = _response_of(event)
        elif kind in _SNAPSHOTS:
            self._snapshot = _response_of(event)
        else:
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, event)

    def _on_summary_delta(self, event: Mapping[str, Any]) -> None:
        summary = self._item(event).summary
        summary.setdefault(as_int(event.get("summary_index")), []).append(_text(event.get("delta")))

    def _on_part(self, event: Mapping[str, Any]) -> None:
        part = event.get("part")
        if isinstance(part, dict):
            item = self._item(event)
            index = as_int(event.get("content_index"))
            item.parts[index] = part
            if event.get("type") == "response.content_part.done":
                item.texts.pop(index, None)  # the part carries its full text

    def _on_annotation(self, event: Mapping[str, Any]) -> None:
        annotation = event.get("annotation")
        part = self._item(event).parts.get(as_int(event.get("content_index")))
        if part is not None and annotation is not None:
            annotations = part.get("annotations")
            if not isinstance(annotations, list):
                annotations = part["annotations"] = []
            annotations.append(annotation)

    def _on_error(self, event: Mapping[str, Any]) -> None:
        self._error = {key: value for key, value in event.items() if key != "type"}

    def _item(self, event: Mapping[str, Any]) -> _Item:
        index = as_int(event.get("output_index"))
        item = self._items.get(index)
        if item is None:  # deltas for an item whose output_item.added was not seen
            item = self._items[index] = _Item({"id": event.get("item_id")})
        return item

    def _on_item_added(self, event: Mapping[str, Any]) -> None:
        value = event.get("item")
        if isinstance(value, dict):
            self._items[as_int(event.get("output_index"))] = _Item(value)

    def _on_item_done(self, event: Mapping[str, Any]) -> None:
        value = event.get("item")
        if not isinstance(value, dict):
            return
        index = as_int(event.get("output_index"))
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = _Item(value)
        item.item = value
        item.done = True

    def result(self) -> StreamResult:
        """Usage, final (or rebuilt) `response` and tool call count of the stream so far."""
        finished = self._final is not None
        output = [self._items[index].assemble() for index in sorted(self._items)]
        if self._final is not None:
            response = self._final
            if not response.get("output") and output:
                response = {**response, "output": output}
        else:
            response = dict(self._snapshot) if self._snapshot else {"object": "response"}
            response["output"] = output
        if self._error is not None and not response.get("error"):
            response = {**response, "error": self._error}
        tool_calls = count_tool_calls(response)
        reported = isinstance(response.get("usage"), dict)
        return StreamResult(
            usage_from_response(response), response, tool_calls, finished, reported, reported
        )


_HANDLERS: dict[str, Callable[[ResponsesStreamAccumulator, Mapping[str, Any]], None]] = {
    "response.reasoning_summary_text.delta": ResponsesStreamAccumulator._on_summary_delta,
    "response.output_item.added": ResponsesStreamAccumulator._on_item_added,
    "response.output_item.done": ResponsesStreamAccumulator._on_item_done,
    "response.content_part.added": ResponsesStreamAccumulator._on_part,
    "response.content_part.done": ResponsesStreamAccumulator._on_part,
    "response.output_text.annotation.added": ResponsesStreamAccumulator._on_annotation,
    "error": ResponsesStreamAccumulator._on_error,
}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _response_of(event: Mapping[str, Any]) -> dict[str, Any]:
    response = event.get("response")
    return response if isinstance(response, dict) else {}
