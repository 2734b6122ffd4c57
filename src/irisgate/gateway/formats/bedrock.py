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
from typing import Any

import orjson

from irisgate.gateway.formats import anthropic_messages
from irisgate.gateway.formats.streamresult import StreamResult, as_dict, as_int, load_object
from irisgate.usage.tokens import Usage
from irisgate.wire.eventstream import EventStreamDecoder, Message

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
    if "inputTextTokenCount" in body:  # Amazon Titan (embeddings; text models add results)
        results = body.get("results")
        output = (
            sum(as_int(as_dict(r).get("tokenCount")) for r in results)
            if isinstance(results, list)
            else 0
        )
        return Usage(input_tokens=as_int(body.get("inputTextTokenCount")), output_tokens=output)
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
    events: list[bytes] = []
    error: dict[str, Any] | None = None
    for headers, payload in messages:
        if headers.get(":event-type") != "chunk":
            if headers.get(":message-type") == "exception":
                error = {_text(headers, ":exception-type"): load_object(payload)}
            continue
        raw = _chunk_bytes(payload)
        if raw is not None:
            events.append(raw)
    metrics = _last_metrics(events)
    if events and not _is_anthropic(events[0]):
        outcome = _other_vendor(events, finished=metrics is not None)
    else:
        accumulator = anthropic_messages.MessagesStreamAccumulator()
        feed = accumulator.feed_event
        for raw in events:
            feed("", raw)  # the accumulator reads the event's own `type`
        outcome = accumulator.result()
    usage = outcome.usage
    if metrics is not None and (usage.is_empty() or not usage.output_tokens):
        usage = metrics
    response = dict(outcome.response)
    if error is not None:
        response["error"] = error
    return StreamResult(usage, response, outcome.tool_calls, outcome.finished and clean)


def _text(headers: Mapping[str, object], name: str) -> str:
    value = headers.get(name)
    return value if isinstance(value, str) else ""


def _last_metrics(events: list[bytes]) -> Usage | None:
    """The invocation metrics of the last event that carries them (Bedrock: the last one)."""
    for raw in reversed(events):
        if _METRICS_BYTES in raw:
            event = load_object(raw)
            if event is not None:
                return metrics_usage(event.get(_METRICS))
    return None


def _is_anthropic(raw: bytes) -> bool:
    """Anthropic events name their `type` (first, as Bedrock relays them)."""
    if raw.startswith(b'{"type":'):
        return True
    event = load_object(raw)
    return event is not None and isinstance(event.get("type"), str)


def _joined_outputs(chunks: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Mistral's chunks as one `outputs` list (texts joined, the last stop reason); None when
    a chunk is not of that shape."""
    outputs: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        pieces = chunk.get("outputs")
        if not isinstance(pieces, list):
            return None
        for index, output in enumerate(pieces):
            merged = outputs.setdefault(index, {"text": ""})
            for key, value in as_dict(output).items():
                if key == "text" and isinstance(value, str):
                    merged["text"] += value
                elif value is not None:
                    merged[key] = value
    return [outputs[i] for i in sorted(outputs)]


def _other_vendor(events: list[bytes], *, finished: bool) -> StreamResult:
    """Chunks of a vendor whose stream irisgate does not rebuild: kept in order as `chunks`,
    or Mistral's (`{"outputs": [{"text", "stop_reason"}]}`) joined into one `outputs` body.
    The stream counts as finished once the invocation metrics (sent last) came."""
    chunks = [c for c in map(load_object, events) if c is not None]
    outputs = _joined_outputs(chunks)
    response: dict[str, Any] = {"outputs": outputs} if outputs else {"chunks": chunks}
    if chunks and _METRICS in chunks[-1]:
        response[_METRICS] = chunks[-1][_METRICS]
    return StreamResult(Usage(), response, 0, finished)


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
