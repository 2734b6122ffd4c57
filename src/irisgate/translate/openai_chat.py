"""OpenAI Chat Completions ↔ the neutral shape (ir.py), both sides.

Client side: a `/v1/chat/completions` body becomes an `ir.Request`; an `ir.Response` or a
stream of `ir.Event`s becomes a `chat.completion` body or `chat.completion.chunk` SSE frames
ending with `data: [DONE]`. Provider side: an `ir.Request` becomes a Chat Completions body
(streams ask for the usage chunk), and the provider's body or SSE stream becomes an
`ir.Response` or events.

Chat Completions has no field for reasoning text: reasoning from another provider is not
shown to a Chat client (its tokens are in `completion_tokens_details.reasoning_tokens`), and
earlier reasoning in a conversation is not sent to a Chat provider. A stream's usage rides
on the chunk that carries `finish_reason` (no separate chunk with empty `choices`, which
clients that never asked for usage would not expect).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from irisgate.translate import ir
from irisgate.translate.effort import EFFORTS, effort_of
from irisgate.translate.errortext import nested, provider_message, shown
from irisgate.translate.media import data_url, image_from_url
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

NAME = "openai_chat"

#: request members read into the neutral request
_CARRIED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    }
)
#: members with no effect on the answer's content: accepted and not forwarded
_IGNORED = frozenset({"user", "store", "metadata", "service_tier", "safety_identifier"})
#: members accepted at these values only (what the API does when they are absent)
_DEFAULTS: dict[str, tuple[object, ...]] = {
    "n": (1, None),
    "logprobs": (False, None),
    "top_logprobs": (0, None),
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "modalities": (["text"], None),
}

_FINISH_IN: dict[str, ir.StopReason] = {
    "stop": "end",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_FINISH_OUT: dict[str, str] = {
    "end": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause": "stop",
}


# -- client side: the caller speaks Chat Completions ------------------------------------------


def read_request(body: dict[str, Any], *, model: str, stream: bool) -> ir.Request:
    """The neutral request of a Chat Completions body (raises `ir.Untranslatable`)."""
    for key, value in body.items():
        if key in _CARRIED or key in _IGNORED:
            continue
        allowed = _DEFAULTS.get(key)
        if allowed is None or value not in allowed:
            raise ir.Untranslatable(
                f"'{shown(key)}' cannot be translated to another provider's API"
            )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ir.Untranslatable("'messages' must be a non-empty array")
    system, turns = _read_messages(messages)
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        raise ir.Untranslatable(f"'reasoning_effort' must be one of {', '.join(EFFORTS)}")
    return ir.Request(
        model=model,
        messages=turns,
        system=system,
        tools=_read_tools(body.get("tools")),
        tool_choice=_read_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=_optional(body, "parallel_tool_calls", bool),
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=_read_stop(body.get("stop")),
        response_format=_read_response_format(body.get("response_format")),
        reasoning_effort=effort,
        stream=stream,
    )


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise ir.Untranslatable(f"'{key}' must be a {kind.__name__}")
    return value


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ir.Untranslatable(f"'{key}' must be a number")
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ir.Untranslatable(f"'{key}' must be a positive integer")
        return value
    return None


def _read_stop(stop: object) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(stop)
    raise ir.Untranslatable("'stop' must be a string or an array of strings")


def _read_messages(messages: list[Any]) -> tuple[str, tuple[ir.Message, ...]]:
    system: list[str] = []
    turns: list[ir.Message] = []
    names: dict[str, str] = {}  # tool call id -> the tool's name
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ir.Untranslatable(f"'{where}' must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_only(message.get("content"), f"{where}.content"))
        elif role == "user":
            turns.append(ir.Message("user", _user_parts(message.get("content"), where)))
        elif role == "assistant":
            parts = _assistant_parts(message, where)
            names.update((p.id, p.name) for p in parts if isinstance(p, ir.ToolCall))
            turns.append(ir.Message("assistant", parts))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ir.Untranslatable(f"'{where}.tool_call_id' must be a string")
            text = _text_only(message.get("content"), f"{where}.content")
            result = ir.ToolResult(call_id, names.get(call_id, ""), (ir.Text(text),))
            turns.append(ir.Message("user", (result,)))
        else:
            raise ir.Untranslatable(f"'{where}.role' {str(role)[:20]!r} cannot be translated")
    return "\n\n".join(system), tuple(turns)


def _text_only(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ir.Untranslatable(f"'{where}' may hold text parts only")
            texts.append(_string(part.get("text"), f"{where}[].text"))
        return "".join(texts)
    raise ir.Untranslatable(f"'{where}' must be a string or an array of text parts")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ir.Untranslatable(f"'{where}' must be a string")
    return value


def _user_parts(content: object, where: str) -> tuple[ir.Part, ...]:
    if isinstance(content, str):
        return (ir.Text(content),)
    if not isinstance(content, list):
        raise ir.Untranslatable(f"'{where}.content' must be a string or an array")
    parts: list[ir.Part] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(ir.Text(_string(part.get("text"), f"{at}.text")))
        elif kind == "image_url":
            url = nested(part, "image_url", "url")
            parts.append(image_from_url(_string(url, f"{at}.image_url.url"), f"{at}.image_url"))
        else:
            raise ir.Untranslatable(
                f"'{at}': content of type {str(kind)[:30]!r} cannot be translated"
            )
    return tuple(parts)


def _assistant_parts(message: dict[str, Any], where: str) -> tuple[ir.Part, ...]:
    parts: list[ir.Part] = []
    content = message.get("content")
    if content is not None:
        if isinstance(content, list):
            texts = [
                _string(p.get("text") if p.get("type") == "text" else p.get("refusal"), where)
                for p in content
                if isinstance(p, dict)
            ]
            content = "".join(texts)
        if not isinstance(content, str):
            raise ir.Untranslatable(f"'{where}.content' must be a string or an array")
        if content:
            parts.append(ir.Text(content))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ir.Untranslatable(f"'{where}.tool_calls' must be an array")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise ir.Untranslatable(f"'{at}' must be a function call")
        parts.append(
            ir.ToolCall(
                _string(call.get("id"), f"{at}.id"),
                _string(function.get("name"), f"{at}.function.name"),
                _string(function.get("arguments", ""), f"{at}.function.arguments"),
            )
        )
    return tuple(parts)


def _read_tools(tools: object) -> tuple[ir.Tool, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise ir.Untranslatable("'tools' must be an array")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise ir.Untranslatable(f"'tools[{i}]': only function tools can be translated")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise ir.Untranslatable(f"'tools[{i}].function.parameters' must be an object")
        description = function.get("description") or ""
        out.append(
            ir.Tool(
                _string(function.get("name"), f"tools[{i}].function.name"),
                _string(description, f"tools[{i}].function.description"),
                parameters,
            )
        )
    return tuple(out)


def _read_tool_choice(choice: object) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(choice)
    name = nested(choice, "function", "name")
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(name, str):
        return ir.ToolChoice("tool", name)
    raise ir.Untranslatable("'tool_choice' must be auto, none, required or a function")


def _read_response_format(value: object) -> ir.ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ir.ResponseFormat("json_object")
    spec = value.get("json_schema") if isinstance(value, dict) else None
    if kind == "json_schema" and isinstance(spec, dict):
        schema = spec.get("schema")
        return ir.ResponseFormat(
            "json_schema",
            name=str(spec.get("name") or "response"),
            schema=schema if isinstance(schema, dict) else None,
            strict=spec.get("strict") is True,
        )
    raise ir.Untranslatable("'response_format' must be text, json_object or json_schema")


def write_response(r: ir.Response, tools: tuple[ir.Tool, ...] = ()) -> dict[str, Any]:
    """A `chat.completion` body of a neutral answer."""
    text = "".join(p.text for p in r.parts if isinstance(p, ir.Text))
    calls = [_call_out(p) for p in r.parts if isinstance(p, ir.ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": r.id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": r.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH_OUT[r.stop]}
        ],
        "usage": usage_out(r.usage),
    }


def _call_out(call: ir.ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def usage_out(usage: Usage) -> dict[str, Any]:
    """Usage in Chat Completions' terms: `prompt_tokens` includes cached input."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class Encoder:
    """Neutral events → `chat.completion.chunk` SSE frames, as they come."""

    def __init__(self, model: str, tools: tuple[ir.Tool, ...] = ()) -> None:
        self._model = model
        self._id = "chatcmpl-irisgate"
        self._created = int(time.time())
        self._calls: dict[int, int] = {}  # block index -> tool_calls[].index
        self._started = False
        self._finished = False

    def encode(self, event: ir.Event) -> bytes:
        if isinstance(event, ir.TextDelta):
            return self._opening() + self._chunk({"content": event.text})
        if isinstance(event, ir.ToolCallStart):
            k = self._calls[event.index] = len(self._calls)
            function = {"name": event.name, "arguments": ""}
            call = {"index": k, "id": event.id, "type": "function", "function": function}
            return self._opening() + self._chunk({"tool_calls": [call]})
        if isinstance(event, ir.ToolArgsDelta):
            position = self._calls.get(event.index)
            if position is None or not event.fragment:
                return b""
            call = {"index": position, "function": {"arguments": event.fragment}}
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, ir.Start):
            self._id = event.id or self._id
            self._model = event.model or self._model
            return self._opening()
        if isinstance(event, ir.Finish):
            self._finished = True
            extra = {"usage": usage_out(event.usage)}
            return self._opening() + self._chunk({}, _FINISH_OUT[event.stop], extra)
        if isinstance(event, ir.StreamError):
            error = {"message": event.message, "type": "upstream_error", "code": event.status}
            return _frame({"error": error})
        return b""  # reasoning and block ends have no Chat Completions counterpart

    def close(self) -> bytes:
        return b"data: [DONE]\n\n" if self._finished else b""

    def _opening(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None
    ) -> bytes:
        chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **(extra or {}),
        }
        return _frame(chunk)


def _frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


# -- provider side: the provider speaks Chat Completions --------------------------------------


def provider_path(model: str, stream: bool) -> str:
    return "/v1/chat/completions"


def write_request(r: ir.Request) -> dict[str, Any]:
    """The Chat Completions body of a neutral request."""
    messages: list[dict[str, Any]] = []
    if r.system:
        messages.append({"role": "system", "content": r.system})
    for message in r.messages:
        if message.role == "user":
            messages.extend(_user_out(message))
        else:
            messages.append(_assistant_out(message))
    body: dict[str, Any] = {"model": r.model, "messages": messages}
    if r.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in r.tools
        ]
        if r.tool_choice is not None:
            body["tool_choice"] = _tool_choice_out(r.tool_choice)
        if r.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = r.parallel_tool_calls
    optional = {
        "max_completion_tokens": r.max_tokens,
        "temperature": r.temperature,
        "top_p": r.top_p,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    if r.stop:
        body["stop"] = list(r.stop)
    if r.response_format is not None:
        body["response_format"] = _response_format_out(r.response_format)
    effort = r.reasoning_effort or (
        effort_of(r.reasoning_budget) if r.reasoning_budget is not None else None
    )
    if effort is not None:
        body["reasoning_effort"] = effort
    if r.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _user_out(message: ir.Message) -> list[dict[str, Any]]:
    """A user turn: its tool results as `tool` messages first, then what the user wrote."""
    out: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ir.ToolResult):
            out.append(
                {"role": "tool", "tool_call_id": part.call_id, "content": _result_text(part)}
            )
        elif isinstance(part, ir.Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ir.Image):
            content.append({"type": "image_url", "image_url": {"url": data_url(part)}})
    if content:
        if len(content) == 1 and content[0]["type"] == "text":
            out.append({"role": "user", "content": content[0]["text"]})
        else:
            out.append({"role": "user", "content": content})
    return out


def _result_text(result: ir.ToolResult) -> str:
    if any(isinstance(p, ir.Image) for p in result.content):
        raise ir.Untranslatable(
            "an image in a tool result cannot be translated: Chat Completions tool messages "
            "take text only"
        )
    text = "".join(p.text for p in result.content if isinstance(p, ir.Text))
    return f"Error: {text}" if result.is_error else text


def _assistant_out(message: ir.Message) -> dict[str, Any]:
    text = "".join(p.text for p in message.parts if isinstance(p, ir.Text))
    calls = [_call_out(p) for p in message.parts if isinstance(p, ir.ToolCall)]
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_choice_out(choice: ir.ToolChoice) -> object:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def _response_format_out(fmt: ir.ResponseFormat) -> dict[str, Any]:
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "strict": fmt.strict}
    if fmt.schema is not None:
        spec["schema"] = fmt.schema
    return {"type": "json_schema", "json_schema": spec}


def read_response(body: dict[str, Any]) -> ir.Response:
    """The neutral answer of a `chat.completion` body."""
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, dict) else None
    message = message if isinstance(message, dict) else {}
    parts: list[ir.Text | ir.ToolCall | ir.Reasoning] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ir.Reasoning(text=reasoning))
    for key in ("content", "refusal"):
        text = message.get(key)
        if isinstance(text, str) and text:
            parts.append(ir.Text(text))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(
                ir.ToolCall(
                    str(call.get("id") or ""),
                    str(function.get("name") or ""),
                    str(function.get("arguments") or ""),
                )
            )
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    stop = "refusal" if message.get("refusal") else _FINISH_IN.get(str(finish), "end")
    return ir.Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=tuple(parts),
        stop=stop,
        usage=usage_in(body.get("usage")),
    )


def usage_in(usage: object) -> Usage:
    """Chat Completions usage as irisgate counts it."""
    if not isinstance(usage, dict):
        return Usage()
    cached = nested(usage, "prompt_tokens_details", "cached_tokens")
    written = nested(usage, "prompt_tokens_details", "cache_write_tokens")
    reasoning = nested(usage, "completion_tokens_details", "reasoning_tokens")
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cache_read_tokens=_count(cached),
        cache_write_5m_tokens=_count(written),
        reasoning_tokens=_count(reasoning),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Decoder:
    """A Chat Completions SSE stream → neutral events, fed bytes split anywhere."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._next = 0  # the next block index
        self._text: int | None = None  # the open text block
        self._reasoning: int | None = None
        self._calls: dict[int, int] = {}  # tool_calls[].index -> block index
        self._open: int | None = None
        self._stop: ir.StopReason | None = None
        self._usage = Usage()
        self._done = False

    def feed(self, data: bytes) -> list[ir.Event]:
        events: list[ir.Event] = []
        for sse in self._sse.feed(data):
            if self._done:
                break
            if sse.data == b"[DONE]":
                events.extend(self._end())
                continue
            try:
                chunk = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                continue  # not an event of this API (a proxy's comment): nothing to translate
            if isinstance(chunk, dict):
                self._chunk(chunk, events)
        return events

    def finish(self) -> list[ir.Event]:
        if self._done:
            return []
        if self._stop is not None:  # finished, but the provider sent no [DONE]
            return self._end()
        self._done = True
        return [ir.StreamError(502, "the provider's stream ended before the answer was complete")]

    def _end(self) -> list[ir.Event]:
        self._done = True
        events: list[ir.Event] = self._close_open()
        if self._stop is None:
            events.append(
                ir.StreamError(502, "the provider's stream ended without a finish reason")
            )
        else:
            events.append(ir.Finish(self._stop, self._usage))
        return events

    def _chunk(self, chunk: dict[str, Any], events: list[ir.Event]) -> None:
        error = chunk.get("error")
        if isinstance(error, dict):
            self._done = True
            message = error.get("message")
            events.append(ir.StreamError(500, str(message)[:1000] if message else "provider error"))
            return
        if not self._started:
            self._started = True
            events.append(ir.Start(str(chunk.get("id") or ""), str(chunk.get("model") or "")))
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_in(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self._delta(delta, events)
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self._stop = _FINISH_IN.get(finish, "end")

    def _delta(self, delta: dict[str, Any], events: list[ir.Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            if self._reasoning is None:
                self._reasoning = self._begin(events)
            events.append(ir.ReasoningDelta(self._reasoning, text=reasoning))
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                if self._text is None or self._open != self._text:
                    self._text = self._begin(events)
                events.append(ir.TextDelta(self._text, text))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._call(call, events)

    def _call(self, call: dict[str, Any], events: list[ir.Event]) -> None:
        k = call.get("index", 0)
        k = k if isinstance(k, int) and not isinstance(k, bool) else len(self._calls)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        index = self._calls.get(k)
        if index is None:
            index = self._calls[k] = self._begin(events)
            name = str(function.get("name") or "")
            events.append(ir.ToolCallStart(index, str(call.get("id") or ""), name))
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            events.append(ir.ToolArgsDelta(index, fragment))

    def _begin(self, events: list[ir.Event]) -> int:
        """A new block: the open one ends first."""
        events.extend(self._close_open())
        index = self._open = self._next
        self._next += 1
        return index

    def _close_open(self) -> list[ir.Event]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [ir.BlockEnd(index)]


def read_error(status: int, body: bytes) -> str:
    """The message of an OpenAI error body (`{"error": {"message": …}}`)."""
    return provider_message(status, body, lambda parsed: nested(parsed, "error", "message"))
