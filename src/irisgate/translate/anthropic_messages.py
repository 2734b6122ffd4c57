"""Anthropic Messages ↔ the neutral shape (ir.py), both sides.

Client side: a `/v1/messages` body becomes an `ir.Request`; an answer becomes a `message`
body or the Messages SSE events (`message_start` … `message_stop`). Provider side: an
`ir.Request` becomes a Messages body, the provider's body or stream becomes neutral.

Decisions (docs/translation.md has the whole table): `cache_control` is a caching hint with
no effect on the answer and is not carried to other APIs; `response_format` (JSON mode) has
no counterpart here and is refused; thinking blocks go back only to Anthropic (their
signature means nothing elsewhere); a request without `max_tokens` (required here) gets
`ANSWER_TOKENS` plus the thinking budget. Another API's opaque reasoning value (Gemini's
thought signature, Converse's reasoning signature) reaches a Messages client as a thinking
block whose `signature` holds it marked (`carried`), and goes back to its own API only.
"""

from __future__ import annotations

from typing import Any

import orjson

from irisgate.translate import carried, ir
from irisgate.translate.effort import ANSWER_TOKENS, MIN_BUDGET, budget_of, effort_of
from irisgate.translate.errortext import nested, provider_message, shown
from irisgate.translate.media import inline_image
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

NAME = "anthropic_messages"

_CARRIED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
    }
)
#: members with no effect on the answer's content: accepted and not forwarded
#: (`context_management` asks Anthropic to edit a long context on its side: another
#: provider gets the history exactly as the client sent it)
_IGNORED = frozenset({"metadata", "service_tier", "context_management"})

_STOP_IN: dict[str, ir.StopReason] = {
    "end_turn": "end",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause_turn": "pause",
    "model_context_window_exceeded": "max_tokens",
}
_STOP_OUT: dict[str, str] = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause": "pause_turn",
}
#: the HTTP status of an error type Anthropic sends inside a stream
_ERROR_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "invalid_request_error": 400,
    "request_too_large": 413,
}


# -- client side: the caller speaks Messages --------------------------------------------------


def read_request(body: dict[str, Any], *, model: str, stream: bool) -> ir.Request:
    """The neutral request of a Messages body (raises `ir.Untranslatable`)."""
    for key in body:
        if key not in _CARRIED and key not in _IGNORED:
            raise ir.Untranslatable(
                f"'{shown(key)}' cannot be translated to another provider's API"
            )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ir.Untranslatable("'messages' must be a non-empty array")
    tool_choice, parallel = _read_tool_choice(body.get("tool_choice"))
    budget = _read_thinking(body.get("thinking"))
    effort, response_format = _read_output_config(body.get("output_config"))
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ir.Untranslatable("'max_tokens' must be a positive integer")
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ir.Untranslatable("'stop_sequences' must be an array of strings")
    system = [_read_system(body.get("system"))]
    turns: list[ir.Message] = []
    for i, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") == "system":  # mid-conversation
            system.append(_read_system(message.get("content"), f"messages[{i}].content"))
        else:
            turns.append(_read_message(message, f"messages[{i}]"))
    return ir.Request(
        model=model,
        messages=tuple(turns),
        system="\n\n".join(s for s in system if s),
        tools=_read_tools(body.get("tools")),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=tuple(stop),
        response_format=response_format,
        reasoning_effort=effort or (effort_of(budget) if budget is not None else None),
        reasoning_budget=budget,
        stream=stream,
    )


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ir.Untranslatable(f"'{key}' must be a number")
    return float(value)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ir.Untranslatable(f"'{where}' must be a string")
    return value


def _read_system(system: object, where: str = "system") -> str:
    """System text (the `system` member, or a `system` message's content): a string or text
    blocks, joined with blank lines."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise ir.Untranslatable(f"'{where}[{i}]' must be a text block")
            texts.append(_string(block.get("text"), f"{where}[{i}].text"))
        return "\n\n".join(texts)
    raise ir.Untranslatable(f"'{where}' must be a string or an array of text blocks")


def _read_thinking(thinking: object) -> int | None:
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind in ("disabled", "adaptive"):  # adaptive: the model decides (its effort may say)
        return None
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    if kind == "enabled" and isinstance(budget, int) and not isinstance(budget, bool):
        return budget
    raise ir.Untranslatable("'thinking' must be disabled, adaptive or enabled with 'budget_tokens'")


def _read_output_config(config: object) -> tuple[str | None, ir.ResponseFormat | None]:
    """`output_config`: the effort (low, medium, high; max reads as high) and the answer's
    JSON schema (`format`). `task_budget`, a hint for Anthropic's own pacing, is not carried."""
    if config is None:
        return None, None
    if not isinstance(config, dict):
        raise ir.Untranslatable("'output_config' must be an object")
    for key in config:
        if key not in ("effort", "format", "task_budget"):
            raise ir.Untranslatable(f"'output_config.{shown(key)}' cannot be translated")
    effort = config.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "max"):
        raise ir.Untranslatable("'output_config.effort' must be low, medium, high or max")
    fmt = config.get("format")
    response_format = None
    if fmt is not None:
        schema = fmt.get("schema") if isinstance(fmt, dict) else None
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(schema, dict)
        ):
            raise ir.Untranslatable("'output_config.format' must be a json_schema with a schema")
        response_format = ir.ResponseFormat("json_schema", "response", schema, strict=True)
    return ("high" if effort == "max" else effort), response_format


def _read_message(message: object, where: str) -> ir.Message:
    if not isinstance(message, dict):
        raise ir.Untranslatable(f"'{where}' must be an object")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise ir.Untranslatable(f"'{where}.role' must be user or assistant")
    content = message.get("content")
    if isinstance(content, str):
        return ir.Message(role, (ir.Text(content),))
    if not isinstance(content, list):
        raise ir.Untranslatable(f"'{where}.content' must be a string or an array")
    return ir.Message(
        role, tuple(_read_block(b, f"{where}.content[{j}]") for j, b in enumerate(content))
    )


def _read_block(block: object, where: str) -> ir.Part:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(block, dict):
        raise ir.Untranslatable(f"'{where}' must be an object")
    if kind == "text":
        return ir.Text(_string(block.get("text"), f"{where}.text"))
    if kind == "image":
        return _read_image(block.get("source"), f"{where}.source")
    if kind == "tool_use":
        arguments = block.get("input", {})
        if not isinstance(arguments, dict):
            raise ir.Untranslatable(f"'{where}.input' must be an object")
        return ir.ToolCall(
            _string(block.get("id"), f"{where}.id"),
            _string(block.get("name"), f"{where}.name"),
            orjson.dumps(arguments).decode(),
        )
    if kind == "tool_result":
        return _read_result(block, where)
    if kind == "thinking":
        text = _string(block.get("thinking", ""), f"{where}.thinking")
        signature = _string(block.get("signature", ""), f"{where}.signature")
        back = carried.unwrap(signature, text)  # another API's, given to the client here
        return back if back is not None else ir.Reasoning(text, signature, origin=NAME)
    if kind == "redacted_thinking":
        return ir.Reasoning(redacted=_string(block.get("data"), f"{where}.data"), origin=NAME)
    raise ir.Untranslatable(f"'{where}': a block of type {str(kind)[:30]!r} cannot be translated")


def _read_image(source: object, where: str) -> ir.Image:
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "base64":
        media_type = _string(source.get("media_type"), f"{where}.media_type")
        return inline_image(media_type, _string(source.get("data"), f"{where}.data"), where)
    if isinstance(source, dict) and kind == "url":
        url = _string(source.get("url"), f"{where}.url")
        if not url.startswith("https://"):
            raise ir.Untranslatable(f"'{where}.url' must be an https URL")
        return ir.Image(media_type="", url=url)
    raise ir.Untranslatable(f"'{where}' must be a base64 or url image source")


def _read_result(block: dict[str, Any], where: str) -> ir.ToolResult:
    content = block.get("content", "")
    parts: list[ir.Text | ir.Image] = []
    if isinstance(content, str):
        parts.append(ir.Text(content))
    elif isinstance(content, list):
        for j, item in enumerate(content):
            part = _read_block(item, f"{where}.content[{j}]")
            if not isinstance(part, ir.Text | ir.Image):
                raise ir.Untranslatable(f"'{where}.content[{j}]' must be text or an image")
            parts.append(part)
    else:
        raise ir.Untranslatable(f"'{where}.content' must be a string or an array")
    return ir.ToolResult(
        _string(block.get("tool_use_id"), f"{where}.tool_use_id"),
        "",
        tuple(parts),
        is_error=block.get("is_error") is True,
    )


def _read_tools(tools: object) -> tuple[ir.Tool, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise ir.Untranslatable("'tools' must be an array")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise ir.Untranslatable(
                f"'tools[{i}]': the server tool {str(kind)[:40]!r} needs an Anthropic provider"
            )
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise ir.Untranslatable(f"'tools[{i}].input_schema' must be an object")
        out.append(
            ir.Tool(
                _string(tool.get("name"), f"tools[{i}].name"),
                _string(tool.get("description", ""), f"tools[{i}].description"),
                schema,
            )
        )
    return tuple(out)


def _read_tool_choice(choice: object) -> tuple[ir.ToolChoice | None, bool | None]:
    if choice is None:
        return None, None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or kind not in ("auto", "any", "tool", "none"):
        raise ir.Untranslatable("'tool_choice.type' must be auto, any, tool or none")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "tool":
        return ir.ToolChoice("tool", _string(choice.get("name"), "tool_choice.name")), parallel
    mode = {"auto": "auto", "any": "required", "none": "none"}[kind]
    return ir.ToolChoice(mode), parallel  # type: ignore[arg-type]  # one of the modes


def write_response(r: ir.Response, tools: tuple[ir.Tool, ...] = ()) -> dict[str, Any]:
    """A Messages `message` body of a neutral answer."""
    content = [block for part in r.parts if (block := _block_out(part)) is not None]
    return {
        "id": r.id,
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": content,
        "stop_reason": _STOP_OUT[r.stop],
        "stop_sequence": r.stop_sequence or None,
        "usage": usage_out(r.usage),
    }


def _block_out(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ir.ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": _input(part)}
    if isinstance(part, ir.Reasoning):
        if part.origin == NAME and part.redacted:
            return {"type": "redacted_thinking", "data": part.redacted}
        signature = part.signature if part.origin == NAME else carried.wrap(part)
        if part.text or signature:
            return {"type": "thinking", "thinking": part.text, "signature": signature}
    return None


def _input(call: ir.ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the object Messages carries."""
    if not call.arguments.strip():
        return {}
    try:
        value = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        raise ir.Untranslatable(f"the arguments of tool call '{call.id}' are not JSON") from None
    if not isinstance(value, dict):
        raise ir.Untranslatable(f"the arguments of tool call '{call.id}' are not a JSON object")
    return value


def usage_out(usage: Usage) -> dict[str, Any]:
    """Usage in Messages' terms: `input_tokens` excludes cache reads and writes."""
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - cached),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }


class Encoder:
    """Neutral events → Messages SSE events, as they come."""

    def __init__(self, model: str, tools: tuple[ir.Tool, ...] = ()) -> None:
        self._model = model
        self._started = False
        self._blocks: dict[int, int] = {}  # neutral block index -> content block index
        self._kinds: dict[int, str] = {}  # neutral block index -> the block's type
        self._open: set[int] = set()

    def encode(self, event: ir.Event) -> bytes:
        if isinstance(event, ir.Start):
            return self._opening(event.id)
        if isinstance(event, ir.TextDelta):
            out = self._opening() + self._begin(event.index, {"type": "text", "text": ""})
            return out + self._delta(event.index, {"type": "text_delta", "text": event.text})
        if isinstance(event, ir.ToolCallStart):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            return self._opening() + self._begin(event.index, block)
        if isinstance(event, ir.ToolArgsDelta):
            delta = {"type": "input_json_delta", "partial_json": event.fragment}
            return self._delta(event.index, delta)
        if isinstance(event, ir.ReasoningDelta):
            return self._opening() + self._reasoning(event)
        if isinstance(event, ir.BlockEnd):
            return self._end(event.index)
        if isinstance(event, ir.Finish):
            return self._opening() + self._finish(event)
        if isinstance(event, ir.StreamError):
            kind = "overloaded_error" if event.status == 529 else "api_error"
            return _event(
                "error", {"type": "error", "error": {"type": kind, "message": event.message}}
            )
        return b""

    def close(self) -> bytes:
        return b""

    def _opening(self, message_id: str = "") -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": message_id or "msg_irisgate",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _begin(self, index: int, block: dict[str, Any]) -> bytes:
        if index in self._blocks:
            return b""
        position = self._blocks[index] = len(self._blocks)
        self._kinds[index] = block["type"]
        self._open.add(index)
        start = {"type": "content_block_start", "index": position, "content_block": block}
        return _event("content_block_start", start)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        position = self._blocks.get(index)
        if position is None or index not in self._open:
            return b""
        payload = {"type": "content_block_delta", "index": position, "delta": delta}
        return _event("content_block_delta", payload)

    def _reasoning(self, event: ir.ReasoningDelta) -> bytes:
        own = event.origin == NAME
        if event.redacted and own:
            block = {"type": "redacted_thinking", "data": event.redacted}
            return self._begin(event.index, block)
        out = self._begin(event.index, {"type": "thinking", "thinking": "", "signature": ""})
        if self._kinds.get(event.index) != "thinking":
            return out
        if event.text:
            out += self._delta(event.index, {"type": "thinking_delta", "thinking": event.text})
        if own:
            signature = event.signature
        else:  # another API's value, marked, in the field Messages clients send back
            signature = carried.wrap(
                ir.Reasoning(
                    signature=event.signature, redacted=event.redacted, origin=event.origin
                )
            )
        if signature:
            out += self._delta(event.index, {"type": "signature_delta", "signature": signature})
        return out

    def _end(self, index: int) -> bytes:
        if index not in self._open:
            return b""
        self._open.discard(index)
        payload = {"type": "content_block_stop", "index": self._blocks[index]}
        return _event("content_block_stop", payload)

    def _finish(self, event: ir.Finish) -> bytes:
        out = b"".join(self._end(index) for index in sorted(self._open))
        delta = {"stop_reason": _STOP_OUT[event.stop], "stop_sequence": event.stop_sequence or None}
        payload = {"type": "message_delta", "delta": delta, "usage": usage_out(event.usage)}
        out += _event("message_delta", payload)
        return out + _event("message_stop", {"type": "message_stop"})


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


# -- provider side: the provider speaks Messages ----------------------------------------------


def provider_path(model: str, stream: bool) -> str:
    return "/v1/messages"


def write_request(r: ir.Request) -> dict[str, Any]:
    """The Messages body of a neutral request."""
    if r.response_format is not None:
        raise ir.Untranslatable(
            "'response_format' (JSON output) cannot be translated: the Anthropic Messages API "
            "has no JSON mode"
        )
    body: dict[str, Any] = {"model": r.model, "messages": _messages_out(r.messages)}
    budget = _budget(r)
    max_tokens = r.max_tokens if r.max_tokens is not None else ANSWER_TOKENS + (budget or 0)
    if budget is not None and max_tokens <= budget:
        budget = max_tokens - 1  # OpenAI's maximum counts reasoning: share it
        if budget < MIN_BUDGET:
            raise ir.Untranslatable(
                f"reasoning needs a token maximum above {MIN_BUDGET} for an Anthropic model"
            )
    body["max_tokens"] = max_tokens
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if r.system:
        body["system"] = r.system
    if r.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in r.tools
        ]
        choice = _tool_choice_out(r.tool_choice, r.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    optional = {"temperature": r.temperature, "top_p": r.top_p}
    body.update((k, v) for k, v in optional.items() if v is not None)
    if r.stop:
        body["stop_sequences"] = list(r.stop)
    if r.stream:
        body["stream"] = True
    return body


def _budget(r: ir.Request) -> int | None:
    if r.reasoning_budget is not None:
        return max(MIN_BUDGET, r.reasoning_budget)
    if r.reasoning_effort is None or r.reasoning_effort == "minimal":
        return None  # "minimal": as little thinking as Anthropic allows, which is none
    return budget_of(r.reasoning_effort)


def _messages_out(messages: tuple[ir.Message, ...]) -> list[dict[str, Any]]:
    """Messages with consecutive turns of one role merged (Anthropic alternates roles) and
    tool results first in their turn (as Anthropic requires)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        blocks = [_content_out(part) for part in message.parts]
        content = [b for b in blocks if b is not None]
        if message.role == "user":
            content.sort(key=lambda b: b["type"] != "tool_result")
        if out and out[-1]["role"] == message.role:
            merged = out[-1]["content"] + content
            if message.role == "user":
                merged.sort(key=lambda b: b["type"] != "tool_result")
            out[-1]["content"] = merged
        elif content:
            out.append({"role": message.role, "content": content})
    return out


def _content_out(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ir.Image):
        return _image_out(part)
    if isinstance(part, ir.ToolResult):
        content = [_content_out(p) for p in part.content]
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": part.call_id,
            "content": [c for c in content if c is not None],
        }
        if part.is_error:
            result["is_error"] = True
        return result
    if isinstance(part, ir.Reasoning):  # only Anthropic's own, signed, thinking goes back
        if part.origin != NAME:
            return None
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.redacted}
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        return None
    return {"type": "tool_use", "id": part.id, "name": part.name, "input": _input(part)}


def _image_out(image: ir.Image) -> dict[str, Any]:
    if image.url:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    source = {"type": "base64", "media_type": image.media_type, "data": image.data}
    return {"type": "image", "source": source}


def _tool_choice_out(choice: ir.ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    mode = choice.mode if choice is not None else "auto"
    out: dict[str, Any] = {"type": {"required": "any"}.get(mode, mode)}
    if mode == "tool" and choice is not None:
        out["name"] = choice.name
    if parallel is False and mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


def read_response(body: dict[str, Any]) -> ir.Response:
    """The neutral answer of a Messages `message` body."""
    parts: list[ir.Text | ir.ToolCall | ir.Reasoning] = []
    for block in body.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(ir.Text(str(block.get("text") or "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            parts.append(ir.ToolCall(str(block.get("id")), str(block.get("name")), arguments))
        elif kind == "thinking":
            parts.append(
                ir.Reasoning(
                    text=str(block.get("thinking") or ""),
                    signature=str(block.get("signature") or ""),
                    origin=NAME,
                )
            )
        elif kind == "redacted_thinking":
            parts.append(ir.Reasoning(redacted=str(block.get("data") or ""), origin=NAME))
    return ir.Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=tuple(parts),
        stop=_STOP_IN.get(str(body.get("stop_reason")), "end"),
        usage=usage_in(body.get("usage")),
        stop_sequence=str(body.get("stop_sequence") or ""),
    )


def usage_in(usage: object, into: Usage | None = None) -> Usage:
    """Messages usage as irisgate counts it (input includes cache reads and writes); with
    `into`, the counts present update it (a stream reports them in two events)."""
    out = into if into is not None else Usage()
    if not isinstance(usage, dict):
        return out
    fresh = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    if "input_tokens" in usage or "cache_read_input_tokens" in usage:
        out.input_tokens = fresh + read + written
        out.cache_read_tokens = read
        one_hour = _count(nested(usage, "cache_creation", "ephemeral_1h_input_tokens"))
        out.cache_write_1h_tokens = min(one_hour, written)
        out.cache_write_5m_tokens = written - out.cache_write_1h_tokens
    if "output_tokens" in usage:
        out.output_tokens = _count(usage.get("output_tokens"))
    return out


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Decoder:
    """A Messages SSE stream → neutral events, fed bytes split anywhere."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._usage = Usage()
        self._stop: ir.StopReason = "end"
        self._stop_sequence = ""
        self._done = False

    def feed(self, data: bytes) -> list[ir.Event]:
        events: list[ir.Event] = []
        for sse in self._sse.feed(data):
            if self._done:
                break
            try:
                payload = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                continue  # not an event of this API: nothing to translate
            if isinstance(payload, dict):
                self._event(payload, events)
        return events

    def finish(self) -> list[ir.Event]:
        if self._done:
            return []
        self._done = True
        return [ir.StreamError(502, "the provider's stream ended before the answer was complete")]

    def _event(self, payload: dict[str, Any], events: list[ir.Event]) -> None:
        kind = payload.get("type")
        index = payload.get("index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        if kind == "content_block_delta":
            self._delta(index, payload.get("delta"), events)
        elif kind == "content_block_start":
            self._start(index, payload.get("content_block"), events)
        elif kind == "content_block_stop":
            events.append(ir.BlockEnd(index))
        elif kind == "message_start":
            message = payload.get("message")
            usage_in(nested(message, "usage"), self._usage)
            message_id, model = nested(message, "id"), nested(message, "model")
            events.append(ir.Start(str(message_id or ""), str(model or "")))
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                self._stop = _STOP_IN.get(str(delta.get("stop_reason")), "end")
                self._stop_sequence = str(delta.get("stop_sequence") or "")
            usage_in(payload.get("usage"), self._usage)
        elif kind == "message_stop":
            self._done = True
            events.append(ir.Finish(self._stop, self._usage, self._stop_sequence))
        elif kind == "error":
            self._done = True
            error = payload.get("error")
            error_type = nested(error, "type")
            message = nested(error, "message")
            status = _ERROR_STATUS.get(str(error_type), 500)
            events.append(ir.StreamError(status, str(message or error_type or "provider error")))

    def _start(self, index: int, block: object, events: list[ir.Event]) -> None:
        if not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind == "tool_use":
            events.append(ir.ToolCallStart(index, str(block.get("id")), str(block.get("name"))))
        elif kind == "redacted_thinking":
            events.append(
                ir.ReasoningDelta(index, redacted=str(block.get("data") or ""), origin=NAME)
            )
        elif kind == "text" and block.get("text"):
            events.append(ir.TextDelta(index, str(block["text"])))

    def _delta(self, index: int, delta: object, events: list[ir.Event]) -> None:
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            events.append(ir.TextDelta(index, str(delta.get("text") or "")))
        elif kind == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            if fragment:
                events.append(ir.ToolArgsDelta(index, fragment))
        elif kind == "thinking_delta":
            events.append(ir.ReasoningDelta(index, text=str(delta.get("thinking") or "")))
        elif kind == "signature_delta":
            signature = str(delta.get("signature") or "")
            events.append(ir.ReasoningDelta(index, signature=signature, origin=NAME))


def read_error(status: int, body: bytes) -> str:
    """The message of a Messages error body (`{"type": "error", "error": {"message": …}}`)."""
    return provider_message(status, body, lambda parsed: nested(parsed, "error", "message"))
