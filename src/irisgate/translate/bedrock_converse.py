"""Bedrock Converse / ConverseStream <-> the neutral shape, provider side only.

`write_request` builds the body of `/model/{modelId}/converse` (or `/converse-stream`; the
gateway routes them under `/bedrock`), `read_response` reads a Converse answer and `Decoder`
a ConverseStream answer: an AWS event stream (`application/vnd.amazon.eventstream`) of
messageStart, contentBlockStart (tool use only), contentBlockDelta (text, toolUse input,
reasoningContent), contentBlockStop, messageStop and metadata (usage) events, or an exception
message.

Converse is one shape for every Bedrock model. Reasoning is asked for in Anthropic's terms
(`additionalModelRequestFields.thinking`), so only for Claude models; a reasoning block's
signature (or redacted content) is only sent back to Converse. Converse has no JSON mode, no
"none" tool choice and no switch for parallel calls: those raise `Untranslatable`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from irisgate.translate import ir
from irisgate.translate.effort import ANSWER_TOKENS, MIN_BUDGET, budget_of
from irisgate.translate.errortext import MESSAGE_LIMIT, provider_message, shown
from irisgate.translate.jsonvalues import (
    CUT_SHORT,
    TOO_DEEP,
    arguments_object,
    as_dict,
    as_int,
    as_list,
    as_str,
    json_text,
    stream_object,
)
from irisgate.usage.tokens import Usage
from irisgate.wire import nesting
from irisgate.wire.eventstream import EventStreamDecoder

FORMAT = "bedrock_converse"
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


# --- request ---------------------------------------------------------------------------------


def provider_path(model: str, stream: bool) -> str:
    """The path on bedrock-runtime (irisgate's own routes put `/bedrock` before it)."""
    return f"/model/{quote(model, safe='')}/{'converse-stream' if stream else 'converse'}"


def _is_claude(model: str) -> bool:
    return "anthropic." in model or "claude" in model.lower()


def write_request(r: ir.Request) -> dict[str, Any]:
    if r.response_format is not None:
        raise ir.Untranslatable(
            "JSON mode and response schemas have no counterpart in Bedrock Converse"
        )
    if r.parallel_tool_calls is False:
        raise ir.Untranslatable(
            "'parallel_tool_calls: false' has no counterpart in Bedrock Converse"
        )
    body: dict[str, Any] = {"messages": _write_messages(r.messages)}
    if r.system:
        body["system"] = [{"text": r.system}]
    tool_config = _write_tools(r)
    if tool_config:
        body["toolConfig"] = tool_config
    inference: dict[str, Any] = {}
    for key, value in (
        ("maxTokens", r.max_tokens),
        ("temperature", r.temperature),
        ("topP", r.top_p),
    ):
        if value is not None:
            inference[key] = value
    if r.stop:
        inference["stopSequences"] = list(r.stop)
    budget = r.reasoning_budget
    if budget is None and r.reasoning_effort is not None:
        budget = budget_of(r.reasoning_effort)
    if budget is not None:
        body["additionalModelRequestFields"] = {"thinking": _thinking(r.model, budget, inference)}
    if inference:
        body["inferenceConfig"] = inference
    return body


def _thinking(model: str, budget: int, inference: dict[str, Any]) -> dict[str, Any]:
    """Claude's thinking request; the answer's token limit must leave room beyond it."""
    if not _is_claude(model):
        raise ir.Untranslatable(
            f"reasoning effort cannot be translated for {model!r}: Bedrock Converse takes it "
            "only for Claude models"
        )
    limit = inference.get("maxTokens")
    if limit is None:
        inference["maxTokens"] = budget + ANSWER_TOKENS
    else:
        budget = min(budget, limit - 1)
    if budget < MIN_BUDGET:
        raise ir.Untranslatable(
            f"the token limit {limit} leaves too little for reasoning (Claude thinks with at least "
            f"{MIN_BUDGET} tokens)"
        )
    return {"type": "enabled", "budget_tokens": budget}


def _write_tools(r: ir.Request) -> dict[str, Any]:
    choice = r.tool_choice
    if choice is not None and choice.mode == "none":
        raise ir.Untranslatable("tool choice 'none' has no counterpart in Bedrock Converse")
    if not r.tools:
        return {}
    config: dict[str, Any] = {
        "tools": [
            {
                "toolSpec": {
                    "name": t.name,
                    "description": t.description or t.name,
                    "inputSchema": {"json": t.parameters},
                }
            }
            for t in r.tools
        ]
    }
    if choice is not None:
        config["toolChoice"] = (
            {"tool": {"name": choice.name}}
            if choice.mode == "tool"
            else {"auto" if choice.mode == "auto" else "any": {}}
        )
    return config


def _write_messages(messages: tuple[ir.Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, message in enumerate(messages):
        content = [b for p in message.parts for b in _write_block(p, f"messages[{n}]")]
        if not content:
            continue
        if out and out[-1]["role"] == message.role:
            out[-1]["content"] += content
        else:
            out.append({"role": message.role, "content": content})
    return out


def _image(image: ir.Image, where: str) -> dict[str, Any]:
    if image.url:
        raise ir.Untranslatable(
            f"'{where}' is an image URL: Bedrock Converse takes images inline (base64)"
        )
    kind = _IMAGE_FORMATS.get(image.media_type)
    if kind is None:
        raise ir.Untranslatable(
            f"'{where}' is a '{shown(image.media_type)}' image: Converse takes png, jpeg, gif, webp"
        )
    return {"image": {"format": kind, "source": {"bytes": image.data}}}


def _write_block(part: ir.Part, where: str) -> list[dict[str, Any]]:
    if isinstance(part, ir.Text):
        return [{"text": part.text}] if part.text.strip() else []  # Converse refuses blank text
    if isinstance(part, ir.Image):
        return [_image(part, where)]
    if isinstance(part, ir.ToolCall):
        tool_input = arguments_object(part.arguments, f"{where} tool call {part.id} arguments")
        return [{"toolUse": {"toolUseId": part.id, "name": part.name, "input": tool_input}}]
    if isinstance(part, ir.ToolResult):
        content = [
            {"text": p.text} if isinstance(p, ir.Text) else _image(p, where) for p in part.content
        ]
        status = "error" if part.is_error else "success"
        return [
            {
                "toolResult": {
                    "toolUseId": part.call_id,
                    "content": content or [{"text": ""}],
                    "status": status,
                }
            }
        ]
    if part.origin != FORMAT:
        return []  # another API's reasoning: Converse takes back only its own, signed
    if part.redacted:
        return [{"reasoningContent": {"redactedContent": part.redacted}}]
    reasoning = (
        {"text": part.text, "signature": part.signature} if part.signature else {"text": part.text}
    )
    return [{"reasoningContent": {"reasoningText": reasoning}}]


# --- answer ----------------------------------------------------------------------------------

_STOPS: dict[str, ir.StopReason] = {
    "end_turn": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "max_tokens",
}


def _read_usage(value: object) -> Usage:
    u = as_dict(value)
    read, write = as_int(u.get("cacheReadInputTokens")), as_int(u.get("cacheWriteInputTokens"))
    return Usage(
        input_tokens=as_int(u.get("inputTokens")) + read + write,
        output_tokens=as_int(u.get("outputTokens")),
        cache_read_tokens=read,
        cache_write_5m_tokens=write,
    )


def _stop_sequence(body: dict[str, Any]) -> str:
    return as_str(as_dict(body.get("additionalModelResponseFields")).get("stop_sequence"))


def read_response(body: dict[str, Any]) -> ir.Response:
    parts: list[ir.Text | ir.ToolCall | ir.Reasoning] = []
    for raw in as_list(as_dict(as_dict(body.get("output")).get("message")).get("content")):
        block = as_dict(raw)
        if isinstance(block.get("text"), str):
            parts.append(ir.Text(block["text"]))
        elif "toolUse" in block:
            use = as_dict(block["toolUse"])
            parts.append(
                ir.ToolCall(
                    as_str(use.get("toolUseId")),
                    as_str(use.get("name")),
                    json_text(use.get("input", {})),
                )
            )
        elif "reasoningContent" in block:
            reasoning = as_dict(block["reasoningContent"])
            text = as_dict(reasoning.get("reasoningText"))
            parts.append(
                ir.Reasoning(
                    as_str(text.get("text")),
                    as_str(text.get("signature")),
                    as_str(reasoning.get("redactedContent")),
                    origin=FORMAT,
                )
            )
    return ir.Response(
        id=f"converse-{uuid.uuid4().hex}",
        model="",
        parts=tuple(parts),
        stop=_STOPS.get(as_str(body.get("stopReason")), "end"),
        usage=_read_usage(body.get("usage")),
        stop_sequence=_stop_sequence(body),
    )


#: ConverseStream exception events -> the HTTP status the same error has as a plain answer
_EXCEPTIONS = {
    "throttlingException": 429,
    "validationException": 400,
    "serviceUnavailableException": 503,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
}


class Decoder:
    """The bytes of a ConverseStream answer in, `ir.Event`s out (split at any byte)."""

    def __init__(self) -> None:
        self._frames = EventStreamDecoder()
        self._blocks: dict[int, int] = {}  # open contentBlockIndex -> block index
        self._next = 0
        self._stop: ir.StopReason | None = None
        self._stop_sequence = ""
        self._ended = False

    def feed(self, data: bytes) -> list[ir.Event]:
        out: list[ir.Event] = []
        for message in self._frames.feed(data):
            if self._ended:
                break
            try:
                payload = stream_object(message.payload) if message.payload else {}
            except nesting.TooDeep:
                self._fail(502, TOO_DEEP, out)
                break
            if payload is None:
                continue
            if message.header(":message-type") != "event":
                kind = message.header(":exception-type") or message.header(":error-code")
                text = as_str(payload.get("message")) or message.header(":error-message")
                said = shown(f"{kind}: {text}" if text else kind, MESSAGE_LIMIT)
                self._fail(_EXCEPTIONS.get(kind, 500), said, out)
            else:
                self._event(message.header(":event-type"), payload, out)
        if self._frames.error is not None and not self._ended:
            self._fail(502, f"the provider's event stream broke: {self._frames.error}", out)
        return out

    def _fail(self, status: int, message: str, out: list[ir.Event]) -> None:
        out.append(ir.StreamError(status, message or "the provider reported an error"))
        self._ended = True

    def finish(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        if self._stop is None:
            return [ir.StreamError(502, CUT_SHORT)]
        return [ir.Finish(self._stop, Usage(), self._stop_sequence)]  # no metadata event came

    def _block(self, position: int) -> int:
        index = self._blocks.get(position)
        if index is None:
            index = self._blocks[position] = self._next
            self._next += 1
        return index

    def _event(self, kind: str, event: dict[str, Any], out: list[ir.Event]) -> None:
        position = as_int(event.get("contentBlockIndex"))
        if kind == "messageStart":
            out.append(ir.Start(f"converse-{uuid.uuid4().hex}", ""))
        elif kind == "contentBlockStart":
            use = as_dict(as_dict(event.get("start")).get("toolUse"))
            if use and position not in self._blocks:
                out.append(
                    ir.ToolCallStart(
                        self._block(position), as_str(use.get("toolUseId")), as_str(use.get("name"))
                    )
                )
        elif kind == "contentBlockDelta":
            self._delta(position, as_dict(event.get("delta")), out)
        elif kind == "contentBlockStop":
            if position in self._blocks:
                out.append(ir.BlockEnd(self._blocks.pop(position)))
        elif kind == "messageStop":
            self._stop = _STOPS.get(as_str(event.get("stopReason")), "end")
            self._stop_sequence = _stop_sequence(event)
        elif kind == "metadata":
            for position in sorted(self._blocks):
                out.append(ir.BlockEnd(self._blocks.pop(position)))
            out.append(
                ir.Finish(self._stop or "end", _read_usage(event.get("usage")), self._stop_sequence)
            )
            self._ended = True

    def _delta(self, position: int, delta: dict[str, Any], out: list[ir.Event]) -> None:
        if isinstance(delta.get("text"), str):
            out.append(ir.TextDelta(self._block(position), delta["text"]))
        elif "toolUse" in delta:
            if position in self._blocks:  # a tool's input only after its contentBlockStart
                out.append(
                    ir.ToolArgsDelta(
                        self._blocks[position], as_str(as_dict(delta["toolUse"]).get("input"))
                    )
                )
        elif "reasoningContent" in delta:
            reasoning = as_dict(delta["reasoningContent"])
            signature, redacted = (
                as_str(reasoning.get("signature")),
                as_str(reasoning.get("redactedContent")),
            )
            out.append(
                ir.ReasoningDelta(
                    self._block(position),
                    as_str(reasoning.get("text")),
                    signature=signature,
                    redacted=redacted,
                    origin=FORMAT if signature or redacted else "",
                )
            )


def read_error(status: int, body: bytes) -> str:
    """The message of a Bedrock error body (`{"message": …}`; some services spell it
    `Message`)."""
    return provider_message(status, body, _error_message)


def _error_message(parsed: Any) -> object:
    if not isinstance(parsed, dict):
        return None
    return parsed.get("message") or parsed.get("Message")
