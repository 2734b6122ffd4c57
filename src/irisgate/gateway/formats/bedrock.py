"""Amazon Bedrock runtime answers: token usage and stream reassembly (sans-io).

`InvokeModel` bodies are the model vendor's own; for Anthropic models they are Messages API
`message` objects, read with `anthropic_messages`; Nova and Llama bodies carry usage in their
own shapes; Mistral, Cohere, AI21 and Titan bodies may carry none, and then Bedrock's
response headers (`x-amzn-bedrock-input-token-count`, `…-output-token-count`) are the only
count (`header_usage`; the body wins when both exist). `InvokeModelWithResponseStream` sends
event stream messages of type `chunk` whose payload is ``{"bytes": "<base64>"}``, the base64
holding one vendor event (Anthropic: `message_start`, `content_block_delta`, ...; Mistral:
`{"outputs": [...]}`); the last one also carries `amazon-bedrock-invocationMetrics` with
Bedrock's own token counts, used when the vendor events report none. `Converse` answers
carry `usage` (`inputTokens` excludes cache reads and writes, as Anthropic's does);
`ConverseStream` sends `messageStart`, `contentBlockStart`, `contentBlockDelta`,
`contentBlockStop`, `messageStop` and a final `metadata` event with `usage`.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from irisgate.gateway.formats import anthropic_messages
from irisgate.gateway.formats.eventstream import EventStreamDecoder, Message
from irisgate.gateway.formats.streamresult import StreamResult, as_dict, as_int, load_object
from irisgate.usage.tokens import Usage

__all__ = [
    "converse_stream_result",
    "converse_tool_calls",
    "converse_usage",
    "header_usage",
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


#: Bedrock's usage response headers (InvokeModel, Converse), as the relay lower-cases them
INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"
CACHE_READ_HEADER = "x-amzn-bedrock-cache-read-input-token-count"
CACHE_WRITE_HEADER = "x-amzn-bedrock-cache-write-input-token-count"


def _header_int(headers: Mapping[str, str], name: str) -> int:
    value = headers.get(name, "").strip()
    return int(value) if value.isdigit() else 0


def header_usage(headers: Mapping[str, str]) -> Usage:
    """Bedrock's token count headers as `Usage`; empty when the answer has none.

    Like the invocation metrics, the input count excludes cache reads and writes, so the
    prompt is their sum. Values that are not decimal integers read as 0.
    """
    if INPUT_HEADER not in headers and OUTPUT_HEADER not in headers:
        return Usage()
    read = _header_int(headers, CACHE_READ_HEADER)
    write = _header_int(headers, CACHE_WRITE_HEADER)
    return Usage(
        input_tokens=_header_int(headers, INPUT_HEADER) + read + write,
        output_tokens=_header_int(headers, OUTPUT_HEADER),
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


_CHUNK_HEAD = b'{"bytes":"'
_METRICS = "amazon-bedrock-invocationMetrics"
_METRICS_BYTES = _METRICS.encode()


def _chunk_bytes(payload: bytes) -> bytes | None:
    """The vendor event inside a `chunk` payload (`{"bytes": "<base64>", "p": ...}`), or None.

    The layout Bedrock sends (`bytes` first) is sliced without a JSON parse: base64 holds no
    quote or backslash, so the string ends at the next quote, and anything unexpected (an
    escape, another member order) fails the strict decode and takes the JSON path.
    """
    if payload.startswith(_CHUNK_HEAD):
        end = payload.find(b'"', 10)
        if end > 0:
            try:
                return binascii.a2b_base64(payload[10:end], strict_mode=True)
            except binascii.Error:
                pass
    try:
        return binascii.a2b_base64(orjson.loads(payload)["bytes"], strict_mode=True)
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
        return None


def invoke_stream_result(body: bytes) -> StreamResult:
    """Reassemble an InvokeModelWithResponseStream answer.

    Anthropic events (the first chunk has a `type`) are rebuilt into a `message` as the
    Messages API streams are; other vendors' chunks (Mistral's `outputs`, Cohere, Titan,
    Llama) are kept as they came, Mistral's `outputs` texts joined. Usage is the vendor's
    when it reports some, else Bedrock's `amazon-bedrock-invocationMetrics` of the last chunk.
    """
    messages, clean = _events(body)
    vendor: _VendorStream | None = None
    metrics: Usage | None = None
    error: dict[str, Any] | None = None
    for message in messages:
        headers = message.headers
        if headers.get(":event-type") != "chunk":
            if headers.get(":message-type") == "exception":
                error = {message.header(":exception-type"): load_object(message.payload)}
            continue
        raw = _chunk_bytes(message.payload)
        if raw is None:
            continue
        if _METRICS_BYTES in raw:  # only the last event: parse it twice
            event = load_object(raw)
            if event is not None:
                metrics = metrics_usage(event.get(_METRICS))
        if vendor is None:
            vendor = _AnthropicStream() if _is_anthropic(raw) else _OtherStream()
        vendor.feed(raw)
    outcome = (vendor or _AnthropicStream()).result(metrics is not None)
    usage = outcome.usage
    if metrics is not None and (usage.is_empty() or not usage.output_tokens):
        usage = metrics
    response = dict(outcome.response)
    if error is not None:
        response["error"] = error
    return StreamResult(usage, response, outcome.tool_calls, outcome.finished and clean)


def _is_anthropic(raw: bytes) -> bool:
    """Anthropic events name their `type` (first, as Bedrock relays them)."""
    if raw.startswith(b'{"type":'):
        return True
    event = load_object(raw)
    return event is not None and isinstance(event.get("type"), str)


class _VendorStream(Protocol):
    def feed(self, raw: bytes) -> None: ...

    def result(self, saw_metrics: bool) -> StreamResult: ...


class _AnthropicStream:
    """Anthropic Messages events, read as the Messages API stream is."""

    __slots__ = ("_inner",)

    def __init__(self) -> None:
        self._inner = anthropic_messages.MessagesStreamAccumulator()

    def feed(self, raw: bytes) -> None:
        self._inner.feed_event("", raw)  # the accumulator reads the event's own `type`

    def result(self, saw_metrics: bool) -> StreamResult:
        return self._inner.result()


class _OtherStream:
    """Chunks of a vendor whose stream irisgate does not rebuild: kept in order as `chunks`;
    Mistral's (`{"outputs": [{"text", "stop_reason"}]}`) joined into one `outputs` body. The
    stream counts as finished once the invocation metrics (sent with the last chunk) came."""

    __slots__ = ("_chunks", "_outputs")

    def __init__(self) -> None:
        self._chunks: list[dict[str, Any]] = []
        self._outputs: dict[int, dict[str, Any]] | None = {}

    def feed(self, raw: bytes) -> None:
        chunk = load_object(raw)
        if chunk is None:
            return
        self._chunks.append(chunk)
        outputs = chunk.get("outputs")
        if self._outputs is None or not isinstance(outputs, list):
            self._outputs = None
            return
        for index, output in enumerate(outputs):
            merged = self._outputs.setdefault(index, {"text": ""})
            for key, value in as_dict(output).items():
                if key == "text" and isinstance(value, str):
                    merged["text"] += value
                elif value is not None:
                    merged[key] = value

    def result(self, saw_metrics: bool) -> StreamResult:
        response: dict[str, Any]
        if self._outputs:
            response = {"outputs": [self._outputs[i] for i in sorted(self._outputs)]}
        else:
            response = {"chunks": self._chunks}
        for chunk in self._chunks[-1:]:
            if _METRICS in chunk:
                response[_METRICS] = chunk[_METRICS]
        return StreamResult(Usage(), response, 0, saw_metrics)


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
