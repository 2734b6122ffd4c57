"""Amazon Bedrock runtime answers: token usage and stream reassembly (sans-io).

`InvokeModel` bodies are the model vendor's own; for Anthropic models they are Messages API
`message` objects, read with `anthropic_messages`. `InvokeModelWithResponseStream` sends event
stream messages of type `chunk` whose payload is ``{"bytes": "<base64>"}``, the base64 holding
one vendor event (Anthropic: `message_start`, `content_block_delta`, ...); the last one also
carries `amazon-bedrock-invocationMetrics` with Bedrock's own token counts, used when the
vendor events report none. `Converse` answers carry `usage` (`inputTokens` excludes cache
reads and writes, as Anthropic's does); `ConverseStream` sends `messageStart`,
`contentBlockStart`, `contentBlockDelta`, `contentBlockStop`, `messageStop` and a final
`metadata` event with `usage`.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats import anthropic_messages
from irisgate.gateway.formats.eventstream import EventStreamDecoder, Message
from irisgate.gateway.formats.streamresult import StreamResult, as_dict, as_int, load_object
from irisgate.usage.tokens import Usage

__all__ = [
    "converse_stream_result",
    "converse_tool_calls",
    "converse_usage",
    "invoke_stream_result",
    "metrics_usage",
    "other_vendor_usage",
]


def converse_usage(usage: object) -> Usage:
    """A Converse `usage` object as `Usage` (the prompt includes cache reads and writes)."""
    u = as_dict(usage)
    read = as_int(u.get("cacheReadInputTokens"))
    write = as_int(u.get("cacheWriteInputTokens"))
    return Usage(
        input_tokens=as_int(u.get("inputTokens")) + read + write,
        output_tokens=as_int(u.get("outputTokens")),
        cache_read_tokens=read,
        cache_write_5m_tokens=write,
    )


def metrics_usage(metrics: object) -> Usage:
    """`amazon-bedrock-invocationMetrics` as `Usage`."""
    m = as_dict(metrics)
    read = as_int(m.get("cacheReadInputTokenCount"))
    write = as_int(m.get("cacheWriteInputTokenCount"))
    return Usage(
        input_tokens=as_int(m.get("inputTokenCount")) + read + write,
        output_tokens=as_int(m.get("outputTokenCount")),
        cache_read_tokens=read,
        cache_write_5m_tokens=write,
    )


def other_vendor_usage(body: Mapping[str, Any]) -> Usage:
    """Usage of a non-Anthropic InvokeModel body; empty when the vendor reports none."""
    if "amazon-bedrock-invocationMetrics" in body:
        return metrics_usage(body["amazon-bedrock-invocationMetrics"])
    usage = body.get("usage")
    if isinstance(usage, dict) and "inputTokens" in usage:  # Amazon Nova
        return converse_usage(usage)
    if "prompt_token_count" in body:  # Meta Llama
        return Usage(
            input_tokens=as_int(body.get("prompt_token_count")),
            output_tokens=as_int(body.get("generation_token_count")),
        )
    return Usage()


def converse_tool_calls(body: Mapping[str, Any]) -> int:
    content = as_dict(as_dict(body.get("output")).get("message")).get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for block in content if "toolUse" in as_dict(block))


def _events(body: bytes) -> tuple[list[Message], bool]:
    """The decodable messages of a relayed stream, and whether it ended cleanly."""
    decoder = EventStreamDecoder()
    messages = decoder.feed(body)
    return messages, decoder.error is None and decoder.pending == 0


def invoke_stream_result(body: bytes) -> StreamResult:
    """Reassemble an InvokeModelWithResponseStream answer (Anthropic events inside)."""
    messages, clean = _events(body)
    inner = anthropic_messages.MessagesStreamAccumulator()
    metrics: Usage | None = None
    error: dict[str, Any] | None = None
    for message in messages:
        headers = message.headers
        if headers.get(":event-type") != "chunk":
            if headers.get(":message-type") == "exception":
                error = {message.header(":exception-type"): load_object(message.payload)}
            continue
        try:
            encoded = orjson.loads(message.payload)["bytes"]
            raw = binascii.a2b_base64(encoded, strict_mode=True)
        except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
            continue
        if b"amazon-bedrock-invocationMetrics" in raw:  # only the last event: parse it twice
            event = load_object(raw)
            if event is not None:
                metrics = metrics_usage(event.get("amazon-bedrock-invocationMetrics"))
        inner.feed_event("", raw)  # the accumulator reads the event's own `type`
    outcome = inner.result()
    usage = outcome.usage
    if metrics is not None and (usage.is_empty() or not usage.output_tokens):
        usage = metrics
    response = dict(outcome.response)
    if error is not None:
        response["error"] = error
    return StreamResult(usage, response, outcome.tool_calls, outcome.finished and clean)


class _ConverseStream:
    """ConverseStream events folded back into a Converse response."""

    def __init__(self) -> None:
        self.role = "assistant"
        self.blocks: dict[int, dict[str, Any]] = {}
        self.tool_input: dict[int, list[str]] = {}
        self.response: dict[str, Any] = {}
        self.usage: Any = None
        self.finished = False

    def feed(self, kind: str, event: Mapping[str, Any]) -> None:
        if kind == "contentBlockDelta":
            self._delta(as_int(event.get("contentBlockIndex")), as_dict(event.get("delta")))
        elif kind == "contentBlockStart":
            start = as_dict(as_dict(event.get("start")).get("toolUse"))
            if start:
                index = as_int(event.get("contentBlockIndex"))
                self.blocks[index] = {"toolUse": dict(start)}
        elif kind == "messageStart":
            role = event.get("role")
            if isinstance(role, str):
                self.role = role
        elif kind == "messageStop":
            self.response["stopReason"] = event.get("stopReason")
        elif kind == "metadata":
            self.usage = event.get("usage")
            self.response["usage"] = self.usage
            if "metrics" in event:
                self.response["metrics"] = event["metrics"]
            self.finished = True

    def _delta(self, index: int, delta: Mapping[str, Any]) -> None:
        text = delta.get("text")
        if isinstance(text, str):
            block = self.blocks.setdefault(index, {"text": ""})
            block["text"] = str(block.get("text", "")) + text
            return
        tool = as_dict(delta.get("toolUse")).get("input")
        if isinstance(tool, str):
            self.blocks.setdefault(index, {"toolUse": {}})
            self.tool_input.setdefault(index, []).append(tool)
            return
        reasoning = as_dict(as_dict(delta.get("reasoningContent")))
        if isinstance(reasoning.get("text"), str):
            block = self.blocks.setdefault(index, {"reasoningContent": {"reasoningText": {}}})
            inner = block["reasoningContent"]["reasoningText"]
            inner["text"] = inner.get("text", "") + reasoning["text"]

    def result(self) -> StreamResult:
        content = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if index in self.tool_input:
                raw = "".join(self.tool_input[index])
                try:
                    block["toolUse"]["input"] = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError:
                    block["toolUse"]["input"] = raw
            content.append(block)
        body = {"output": {"message": {"role": self.role, "content": content}}, **self.response}
        return StreamResult(
            converse_usage(self.usage), body, converse_tool_calls(body), self.finished
        )


def converse_stream_result(body: bytes) -> StreamResult:
    messages, clean = _events(body)
    stream = _ConverseStream()
    for message in messages:
        if message.header(":message-type") != "event":
            continue
        event = load_object(message.payload)
        if event is not None:
            stream.feed(message.header(":event-type"), event)
    outcome = stream.result()
    outcome.finished = outcome.finished and clean
    return outcome
