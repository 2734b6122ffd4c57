"""What the chat app needs from an API format: a chat adapter (sans-io).

A format that can hold a conversation points to one of these adapters (`chat_adapter` on the
format plug-in; None where it cannot, e.g. Bedrock InvokeModel, whose body depends on the model
vendor). An adapter knows three things of its API and nothing of the chat app:

- `path(model)`: the gateway path (with query) of one streamed turn;
- `request(turn)`: the request body built from a `ChatTurn`, the conversation in the chat's
  neutral shape (user text and images, assistant tool rounds, tools offered, effort);
- `decoder()`: a `ChatDecoder` fed the answer's bytes as they arrive, giving the chat's own
  events: ``text`` and ``reasoning`` pieces, then at the end the ``call``s the model made,
  ``replay`` (what must go back with those calls: thinking blocks with their signatures,
  Gemini's parts with their thought signatures), ``usage`` and ``end`` (how it ended:
  ``completed``, ``truncated``, ``refused``; empty when the stream was cut), or ``error``.

`effort_off` says what sending no effort means (Anthropic-style APIs: no thinking at all).
`features` says which of ``stream``, ``tools``, ``images`` and ``reasoning`` the API offers
(the model picker shows them; whether a given model reasons or sees is the chat's decision).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from irisgate.gateway.formats import (
    anthropic_messages,
    bedrock,
    gemini,
    openai_chat,
    openai_responses,
)
from irisgate.gateway.formats.streamresult import as_int
from irisgate.translate.effort import ANSWER_TOKENS, THINKING_BUDGET
from irisgate.usage.tokens import Usage
from irisgate.wire.eventstream import EventStreamDecoder
from irisgate.wire.sse import SSEParser

Event = dict[str, Any]

#: what a chat adapter may offer
FEATURES: tuple[str, ...] = ("stream", "tools", "images", "reasoning")
#: the most calls one round may make (irisgate.chat.parts keeps as many)
MAX_CALLS = 64


@dataclass(frozen=True, slots=True)
class ChatImage:
    media_type: str  # image/png, image/jpeg, image/gif, image/webp
    data: str  # base64


@dataclass(frozen=True, slots=True)
class ChatCall:
    id: str
    name: str  # the tool's name on the wire
    arguments: dict[str, Any]
    output: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ChatRound:
    """One model answer that asked for tools, with the tools' results."""

    text: str
    calls: tuple[ChatCall, ...]
    #: what this API wants back with the calls (from the decoder's ``replay`` event)
    replay: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "user" or "assistant"
    text: str = ""
    images: tuple[ChatImage, ...] = ()
    rounds: tuple[ChatRound, ...] = ()  # assistant: tool rounds before `text`


@dataclass(frozen=True, slots=True)
class ChatTool:
    name: str  # as the APIs accept it: letters, digits, _ and -, at most 64
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    model: str
    messages: tuple[ChatMessage, ...]
    instructions: str = ""
    tools: tuple[ChatTool, ...] = ()
    effort: str = ""  # "", low, medium, high: "" sends no reasoning parameter


class ChatDecoder(Protocol):
    def feed(self, data: bytes) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


class ChatAdapter(Protocol):
    features: frozenset[str]
    #: what the effort control's empty choice means with this API
    effort_off: str

    def serves(self, model: str) -> bool:
        """Whether this API holds conversations with `model` (Vertex AI: Claude models by
        rawPredict, the others by generateContent)."""
        ...

    def path(self, model: str) -> str: ...

    def request(self, turn: ChatTurn) -> dict[str, Any]: ...

    def decoder(self) -> ChatDecoder: ...


def _is_claude(model: str) -> bool:
    return model.rsplit("/", 1)[-1].lower().startswith("claude")


# --- shared pieces ------------------------------------------------------------------------


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def usage_event(usage: Usage) -> Event:
    return {
        "type": "usage",
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
    }


def _arguments(raw: Any) -> tuple[dict[str, Any], str]:
    """A call's arguments (a JSON object, as text or already parsed) and what is wrong."""
    if isinstance(raw, dict):
        return raw, ""
    if raw is None or raw == "":
        return {}, ""
    if not isinstance(raw, str):
        return {}, "the tool arguments were not a JSON object"
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return {}, f"the tool arguments were not valid JSON ({exc})"
    if not isinstance(parsed, dict):
        return {}, "the tool arguments were not a JSON object"
    return parsed, ""


def call_event(call_id: str, name: str, raw: Any) -> Event:
    arguments, problem = _arguments(raw)
    event: Event = {"type": "call", "id": call_id, "name": name, "arguments": arguments}
    if problem:
        event["problem"] = problem
    return event


def _data_url(image: ChatImage) -> str:
    return f"data:{image.media_type};base64,{image.data}"


def _merged(messages: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Consecutive messages of one role joined (APIs that insist on alternating roles)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if out and out[-1]["role"] == message["role"]:
            out[-1] = {**out[-1], key: [*out[-1][key], *message[key]]}
        else:
            out.append(message)
    return out


class _SSEDecoder(ABC):
    """Feeds `data:` JSON objects of an SSE stream to `event(kind, data)`."""

    def __init__(self) -> None:
        self._parser = SSEParser()
        self.out: list[Event] = []

    def feed(self, data: bytes) -> list[Event]:
        for sse in self._parser.feed(data):
            if not sse.data or sse.data == b"[DONE]":
                continue
            try:
                parsed = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                self.event(sse.event, parsed)
        out, self.out = self.out, []
        return out

    @abstractmethod
    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Turn one event of the API's stream into chat events on `self.out`."""

    def finish(self) -> list[Event]:
        out, self.out = self.out, []
        return out


def _error_text(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or orjson.dumps(error).decode())
    if isinstance(error, str):
        return error
    return str(data.get("message") or "upstream error")


# --- OpenAI Chat Completions ----------------------------------------------------------------


class OpenAIChatAdapter:
    features = frozenset(FEATURES)
    effort_off = "Reasoning: default"

    def serves(self, model: str) -> bool:
        return True

    def path(self, model: str) -> str:
        return "/v1/chat/completions"

    def _user(self, message: ChatMessage) -> Any:
        if not message.images:
            return message.text
        parts: list[dict[str, Any]] = (
            [{"type": "text", "text": message.text}] if message.text else []
        )
        parts += [{"type": "image_url", "image_url": {"url": _data_url(i)}} for i in message.images]
        return parts

    def _assistant(self, message: ChatMessage) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for round_ in message.rounds:
            calls = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
                }
                for c in round_.calls
            ]
            out.append({"role": "assistant", "content": round_.text or None, "tool_calls": calls})
            out += [
                {"role": "tool", "tool_call_id": c.id, "content": c.output} for c in round_.calls
            ]
        if message.text:
            out.append({"role": "assistant", "content": message.text})
        return out

    def request(self, turn: ChatTurn) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if turn.instructions:
            messages.append({"role": "system", "content": turn.instructions})
        for m in turn.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": self._user(m)})
            else:
                messages += self._assistant(m)
        body: dict[str, Any] = {
            "model": turn.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": messages,
        }
        if turn.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.schema,
                    },
                }
                for t in turn.tools
            ]
        if turn.effort:
            body["reasoning_effort"] = turn.effort
        return body

    def decoder(self) -> ChatDecoder:
        return _OpenAIChatDecoder()


_OPENAI_OUTCOMES = {"length": "truncated", "content_filter": "refused"}


class _OpenAIChatDecoder(_SSEDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[int, dict[str, str]] = {}
        self.outcome = ""
        self.usage: Usage | None = None

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if "error" in data:
            self.out.append({"type": "error", "message": _error_text(data)})
            return
        if isinstance(data.get("usage"), dict):
            self.usage = openai_chat.usage_from_response(data)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            return
        choice = as_dict(choices[0])
        delta = as_dict(choice.get("delta"))
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.out.append({"type": "text", "text": content})
        # OpenAI-compatible servers (DeepSeek, vLLM, OpenRouter…) stream reasoning here
        thought = delta.get("reasoning_content", delta.get("reasoning"))
        if isinstance(thought, str) and thought:
            self.out.append({"type": "reasoning", "text": thought})
        for raw in delta.get("tool_calls") or ():
            piece = as_dict(raw)
            index = as_int(piece.get("index"))
            if index not in self.calls and len(self.calls) >= MAX_CALLS:
                continue
            call = self.calls.setdefault(index, {"id": "", "name": "", "json": ""})
            function = as_dict(piece.get("function"))
            if isinstance(piece.get("id"), str):
                call["id"] = piece["id"]
            if isinstance(function.get("name"), str):
                call["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                call["json"] += function["arguments"]
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.outcome = _OPENAI_OUTCOMES.get(reason, "completed")

    def finish(self) -> list[Event]:
        out = super().finish()
        for n, index in enumerate(sorted(self.calls)):
            call = self.calls[index]
            out.append(call_event(call["id"] or f"call_{n}", call["name"], call["json"]))
        if self.usage is not None:
            out.append(usage_event(self.usage))
        out.append({"type": "end", "outcome": self.outcome})
        return out


# --- Anthropic Messages (also on Vertex AI) -------------------------------------------------


class AnthropicAdapter:
    features = frozenset(FEATURES)
    effort_off = "Thinking: off"

    def serves(self, model: str) -> bool:
        return True

    def path(self, model: str) -> str:
        return "/v1/messages"

    def _user(self, message: ChatMessage) -> Any:
        if not message.images:
            return message.text
        parts: list[dict[str, Any]] = [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": i.media_type, "data": i.data},
            }
            for i in message.images
        ]
        if message.text:
            parts.append({"type": "text", "text": message.text})
        return parts

    def _assistant(self, message: ChatMessage) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for round_ in message.rounds:
            content: list[dict[str, Any]] = [
                dict(r) for r in round_.replay if r.get("type") in ("thinking", "redacted_thinking")
            ]
            if round_.text:
                content.append({"type": "text", "text": round_.text})
            content += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in round_.calls
            ]
            out.append({"role": "assistant", "content": content})
            results = []
            for c in round_.calls:
                result: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": c.id,
                    "content": c.output,
                }
                if c.is_error:
                    result["is_error"] = True
                results.append(result)
            out.append({"role": "user", "content": results})
        if message.text:
            out.append({"role": "assistant", "content": message.text})
        return out

    def request(self, turn: ChatTurn) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in turn.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": self._user(m)})
            else:
                messages += self._assistant(m)
        body: dict[str, Any] = {
            "model": turn.model,
            "max_tokens": ANSWER_TOKENS,
            "stream": True,
            "messages": messages,
        }
        if turn.instructions:
            body["system"] = turn.instructions
        if turn.tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.schema}
                for t in turn.tools
            ]
        if turn.effort:
            budget = THINKING_BUDGET[turn.effort]
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] = budget + ANSWER_TOKENS
        return body

    def decoder(self) -> ChatDecoder:
        return _AnthropicDecoder()


class VertexAnthropicAdapter(AnthropicAdapter):
    """Claude on Vertex AI: Messages bodies without `model` (it is in the path) and with
    Vertex's `anthropic_version`; project and region are the provider's."""

    def serves(self, model: str) -> bool:
        return _is_claude(model)

    def path(self, model: str) -> str:
        return (
            "/v1/projects/_aperture_auto_vertex_project_id_/locations/"
            "_aperture_auto_vertex_region_/publishers/anthropic/models/"
            f"{quote(model, safe='')}:streamRawPredict"
        )

    def request(self, turn: ChatTurn) -> dict[str, Any]:
        body = super().request(turn)
        del body["model"]
        body["anthropic_version"] = "vertex-2023-10-16"
        return body


_ANTHROPIC_OUTCOMES = {"max_tokens": "truncated", "refusal": "refused"}


class _AnthropicDecoder(_SSEDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.blocks: dict[int, dict[str, Any]] = {}
        self.outcome = ""
        self.usage: dict[str, Any] = {}

    def event(self, kind: str, data: dict[str, Any]) -> None:
        kind = str(data.get("type") or kind)
        if kind == "content_block_start":
            self._start(as_int(data.get("index")), as_dict(data.get("content_block")))
        elif kind == "content_block_delta":
            self._delta(self.blocks.get(as_int(data.get("index")), {}), as_dict(data.get("delta")))
        elif kind == "message_start":
            self.usage = as_dict(as_dict(data.get("message")).get("usage"))
        elif kind == "message_delta":
            reason = as_dict(data.get("delta")).get("stop_reason")
            if isinstance(reason, str) and reason:
                self.outcome = _ANTHROPIC_OUTCOMES.get(reason, "completed")
            later = {k: v for k, v in as_dict(data.get("usage")).items() if v is not None}
            self.usage = {**self.usage, **later}
        elif kind == "error":
            self.out.append({"type": "error", "message": _error_text(data)})

    def _start(self, index: int, block: dict[str, Any]) -> None:
        if index in self.blocks or len(self.blocks) >= MAX_CALLS * 2:
            return
        kind = block.get("type")
        text = block.get("text")
        if kind == "tool_use":
            name = block.get("name", "")
            self.blocks[index] = {"type": kind, "id": block.get("id", ""), "name": name, "json": ""}
        elif kind == "thinking":
            thought = block.get("thinking") or ""
            self.blocks[index] = {"type": kind, "thinking": thought, "signature": ""}
            if thought:
                self.out.append({"type": "reasoning", "text": thought})
        elif kind == "redacted_thinking":
            self.blocks[index] = {"type": kind, "data": block.get("data", "")}
        elif kind == "text" and isinstance(text, str) and text:
            self.out.append({"type": "text", "text": text})

    def _delta(self, block: dict[str, Any], delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            self.out.append({"type": "text", "text": delta["text"]})
        elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            if block.get("type") == "thinking":
                block["thinking"] += delta["thinking"]
            self.out.append({"type": "reasoning", "text": delta["thinking"]})
        elif kind == "signature_delta" and block.get("type") == "thinking":
            block["signature"] = str(delta.get("signature", ""))
        elif kind == "input_json_delta" and block.get("type") == "tool_use":
            block["json"] += str(delta.get("partial_json", ""))

    def finish(self) -> list[Event]:
        out = super().finish()
        replay = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if block["type"] == "tool_use":
                out.append(call_event(str(block["id"]), str(block["name"]), block["json"]))
            else:
                replay.append(block)
        if replay and any(e["type"] == "call" for e in out):
            out.append({"type": "replay", "items": replay})
        if self.usage:
            out.append(usage_event(anthropic_messages.usage_from_response({"usage": self.usage})))
        out.append({"type": "end", "outcome": self.outcome})
        return out


# --- OpenAI Responses -------------------------------------------------------------------------


class ResponsesAdapter:
    features = frozenset(FEATURES)
    effort_off = "Reasoning: default"

    def serves(self, model: str) -> bool:
        return True

    def path(self, model: str) -> str:
        return "/v1/responses"

    def request(self, turn: ChatTurn) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        for m in turn.messages:
            if m.role == "user":
                content: list[dict[str, Any]] = (
                    [{"type": "input_text", "text": m.text}] if m.text else []
                )
                content += [{"type": "input_image", "image_url": _data_url(i)} for i in m.images]
                items.append({"role": "user", "content": content})
                continue
            for round_ in m.rounds:
                items += [dict(r) for r in round_.replay if r.get("type") == "reasoning"]
                if round_.text:
                    items.append({"role": "assistant", "content": round_.text})
                for c in round_.calls:
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": c.id,
                            "name": c.name,
                            "arguments": orjson.dumps(c.arguments).decode(),
                        }
                    )
                items += [
                    {"type": "function_call_output", "call_id": c.id, "output": c.output}
                    for c in round_.calls
                ]
            if m.text:
                items.append({"role": "assistant", "content": m.text})
        body: dict[str, Any] = {"model": turn.model, "stream": True, "input": items}
        if turn.instructions:
            body["instructions"] = turn.instructions
        if turn.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.schema,
                }
                for t in turn.tools
            ]
        if turn.effort:
            body["reasoning"] = {"effort": turn.effort, "summary": "auto"}
        return body

    def decoder(self) -> ChatDecoder:
        return _ResponsesDecoder()


class _ResponsesDecoder(_SSEDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Event] = []
        self.replay: list[dict[str, Any]] = []
        self.outcome = ""
        self.usage: Usage | None = None

    def event(self, kind: str, data: dict[str, Any]) -> None:
        kind = str(data.get("type") or kind)
        delta = data.get("delta")
        if kind == "response.output_text.delta" and isinstance(delta, str):
            self.out.append({"type": "text", "text": delta})
        elif kind in (
            "response.reasoning_summary_text.delta",
            "response.reasoning_text.delta",
        ) and isinstance(delta, str):
            self.out.append({"type": "reasoning", "text": delta})
        elif kind == "response.output_item.done":
            item = as_dict(data.get("item"))
            if item.get("type") == "function_call" and len(self.calls) < MAX_CALLS:
                call_id = str(item.get("call_id") or item.get("id") or f"call_{len(self.calls)}")
                self.calls.append(
                    call_event(call_id, str(item.get("name", "")), item.get("arguments"))
                )
            elif item.get("type") == "reasoning" and len(self.replay) < MAX_CALLS:
                self.replay.append(item)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = as_dict(data.get("response"))
            self.usage = openai_responses.usage_from_response(response)
            if kind == "response.completed":
                self.outcome = "completed"
            elif kind == "response.incomplete":
                reason = as_dict(response.get("incomplete_details")).get("reason")
                self.outcome = "refused" if reason == "content_filter" else "truncated"
            else:
                self.out.append({"type": "error", "message": _error_text(response)})
        elif kind == "error":
            self.out.append({"type": "error", "message": _error_text({"error": data})})

    def finish(self) -> list[Event]:
        out = super().finish() + self.calls
        if self.replay and self.calls:
            out.append({"type": "replay", "items": self.replay})
        if self.usage is not None:
            out.append(usage_event(self.usage))
        out.append({"type": "end", "outcome": self.outcome})
        return out


# --- Gemini generateContent (Google AI Studio and Vertex AI) ----------------------------------

#: Gemini thinking budgets per effort (tokens)
GEMINI_BUDGET: dict[str, int] = {"low": 1024, "medium": 8192, "high": 24576}
_GEMINI_OUTCOMES = {
    "MAX_TOKENS": "truncated",
    "SAFETY": "refused",
    "RECITATION": "refused",
    "BLOCKLIST": "refused",
    "PROHIBITED_CONTENT": "refused",
    "SPII": "refused",
    "IMAGE_SAFETY": "refused",
}


class GeminiAdapter:
    features = frozenset(FEATURES)
    effort_off = "Reasoning: default"

    def serves(self, model: str) -> bool:
        return True

    def path(self, model: str) -> str:
        return f"/v1beta/models/{quote(model, safe='')}:streamGenerateContent?alt=sse"

    def _model_parts(self, round_: ChatRound) -> list[dict[str, Any]]:
        # the parts as the model sent them (their thought signatures must come back)
        replayed = [dict(r) for r in round_.replay if "functionCall" in r or "text" in r]
        if any("functionCall" in r for r in replayed):
            return replayed
        parts: list[dict[str, Any]] = [{"text": round_.text}] if round_.text else []
        return parts + [
            {"functionCall": {"id": c.id, "name": c.name, "args": c.arguments}}
            for c in round_.calls
        ]

    def request(self, turn: ChatTurn) -> dict[str, Any]:
        contents: list[dict[str, Any]] = []
        for m in turn.messages:
            if m.role == "user":
                parts: list[dict[str, Any]] = [{"text": m.text}] if m.text else []
                parts += [
                    {"inlineData": {"mimeType": i.media_type, "data": i.data}} for i in m.images
                ]
                contents.append({"role": "user", "parts": parts})
                continue
            for round_ in m.rounds:
                contents.append({"role": "model", "parts": self._model_parts(round_)})
                results = []
                for c in round_.calls:
                    response = {"error": c.output} if c.is_error else {"output": c.output}
                    results.append(
                        {"functionResponse": {"id": c.id, "name": c.name, "response": response}}
                    )
                contents.append({"role": "user", "parts": results})
            if m.text:
                contents.append({"role": "model", "parts": [{"text": m.text}]})
        body: dict[str, Any] = {"contents": _merged((c for c in contents if c["parts"]), "parts")}
        if turn.instructions:
            body["systemInstruction"] = {"parts": [{"text": turn.instructions}]}
        if turn.tools:
            declarations = [
                {"name": t.name, "description": t.description, "parametersJsonSchema": t.schema}
                for t in turn.tools
            ]
            body["tools"] = [{"functionDeclarations": declarations}]
        if turn.effort:
            body["generationConfig"] = {
                "thinkingConfig": {
                    "includeThoughts": True,
                    "thinkingBudget": GEMINI_BUDGET[turn.effort],
                }
            }
        return body

    def decoder(self) -> ChatDecoder:
        return _GeminiDecoder()


class VertexGeminiAdapter(GeminiAdapter):
    def serves(self, model: str) -> bool:
        return not _is_claude(model)

    def path(self, model: str) -> str:
        return (
            "/v1/projects/_aperture_auto_vertex_project_id_/locations/"
            "_aperture_auto_vertex_region_/publishers/google/models/"
            f"{quote(model, safe='')}:streamGenerateContent?alt=sse"
        )


class _GeminiDecoder(_SSEDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Event] = []
        self.parts: list[dict[str, Any]] = []  # the answer's non-thought parts, for replay
        self.outcome = ""
        self.usage: Usage | None = None

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if "error" in data:
            self.out.append({"type": "error", "message": _error_text(data)})
            return
        if "usageMetadata" in data:
            self.usage = gemini.parse_usage(data["usageMetadata"])
        if as_dict(data.get("promptFeedback")).get("blockReason"):
            self.outcome = "refused"
        candidates = data.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            return
        candidate = as_dict(candidates[0])
        for raw in as_dict(candidate.get("content")).get("parts") or ():
            part = as_dict(raw)
            text = part.get("text")
            if part.get("thought") is True:
                if isinstance(text, str) and text:
                    self.out.append({"type": "reasoning", "text": text})
                continue
            if isinstance(text, str):
                if text:
                    self.out.append({"type": "text", "text": text})
                self._keep(part)
            elif "functionCall" in part and len(self.calls) < MAX_CALLS:
                call = as_dict(part["functionCall"])
                call_id = str(call.get("id") or f"call_{len(self.calls)}")
                self.calls.append(call_event(call_id, str(call.get("name", "")), call.get("args")))
                self._keep({**part, "functionCall": {**call, "id": call_id}})
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            self.outcome = _GEMINI_OUTCOMES.get(reason, "completed")

    def _keep(self, part: dict[str, Any]) -> None:
        last = self.parts[-1] if self.parts else None
        if (
            last is not None
            and "text" in part
            and "text" in last
            and not part.get("thoughtSignature")
        ):
            last["text"] = str(last["text"]) + str(part["text"])
        elif len(self.parts) < MAX_CALLS * 2:
            self.parts.append(dict(part))

    def finish(self) -> list[Event]:
        out = super().finish() + self.calls
        if self.calls:
            out.append({"type": "replay", "items": self.parts})
        if self.usage is not None:
            out.append(usage_event(self.usage))
        out.append({"type": "end", "outcome": self.outcome})
        return out


# --- Bedrock Converse -------------------------------------------------------------------------

_BEDROCK_IMAGES = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_CONVERSE_OUTCOMES = {
    "max_tokens": "truncated",
    "model_context_window_exceeded": "truncated",
    "guardrail_intervened": "refused",
    "content_filtered": "refused",
}


class ConverseAdapter:
    """Bedrock ConverseStream: one shape for every Bedrock model. Reasoning is asked for in
    Anthropic's terms (`additionalModelRequestFields.thinking`), the models that reason there."""

    features = frozenset(FEATURES)
    effort_off = "Thinking: off"

    def serves(self, model: str) -> bool:
        return True

    def path(self, model: str) -> str:
        return f"/bedrock/model/{quote(model, safe='')}/converse-stream"

    def request(self, turn: ChatTurn) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m in turn.messages:
            if m.role == "user":
                content: list[dict[str, Any]] = [
                    {
                        "image": {
                            "format": _BEDROCK_IMAGES[i.media_type],
                            "source": {"bytes": i.data},
                        }
                    }
                    for i in m.images
                ]
                if m.text:
                    content.append({"text": m.text})
                messages.append({"role": "user", "content": content})
                continue
            for round_ in m.rounds:
                said: list[dict[str, Any]] = [
                    dict(r) for r in round_.replay if "reasoningContent" in r
                ]
                if round_.text:
                    said.append({"text": round_.text})
                said += [
                    {"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}}
                    for c in round_.calls
                ]
                messages.append({"role": "assistant", "content": said})
                results = [
                    {
                        "toolResult": {
                            "toolUseId": c.id,
                            "content": [{"text": c.output}],
                            "status": "error" if c.is_error else "success",
                        }
                    }
                    for c in round_.calls
                ]
                messages.append({"role": "user", "content": results})
            if m.text:
                messages.append({"role": "assistant", "content": [{"text": m.text}]})
        body: dict[str, Any] = {
            "messages": _merged((x for x in messages if x["content"]), "content")
        }
        if turn.instructions:
            body["system"] = [{"text": turn.instructions}]
        if turn.tools:
            body["toolConfig"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t.name,
                            "description": t.description,
                            "inputSchema": {"json": t.schema},
                        }
                    }
                    for t in turn.tools
                ]
            }
        if turn.effort:
            budget = THINKING_BUDGET[turn.effort]
            body["inferenceConfig"] = {"maxTokens": budget + ANSWER_TOKENS}
            body["additionalModelRequestFields"] = {
                "thinking": {"type": "enabled", "budget_tokens": budget}
            }
        return body

    def decoder(self) -> ChatDecoder:
        return _ConverseDecoder()


class _ConverseDecoder:
    def __init__(self) -> None:
        self._frames = EventStreamDecoder()
        self.tools: dict[int, dict[str, Any]] = {}
        self.reasoning: dict[int, dict[str, str]] = {}
        self.outcome = ""
        self.usage: Usage | None = None
        self.error = ""

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        for message in self._frames.feed(data):
            try:
                payload = orjson.loads(message.payload) if message.payload else {}
            except orjson.JSONDecodeError:
                continue
            if not isinstance(payload, dict):
                continue
            if message.header(":message-type") != "event":
                text = str(payload.get("message") or message.header(":exception-type") or "error")
                out.append({"type": "error", "message": text})
                continue
            self._event(message.header(":event-type"), payload, out)
        if self._frames.error is not None and not self.error:
            self.error = self._frames.error
            out.append(
                {"type": "error", "message": f"the answer's event stream broke: {self.error}"}
            )
        return out

    def _event(self, kind: str, event: dict[str, Any], out: list[Event]) -> None:
        index = as_int(event.get("contentBlockIndex"))
        if kind == "contentBlockStart":
            start = as_dict(as_dict(event.get("start")).get("toolUse"))
            if start and len(self.tools) < MAX_CALLS:
                self.tools[index] = {
                    "id": start.get("toolUseId", ""),
                    "name": start.get("name", ""),
                    "json": "",
                }
        elif kind == "contentBlockDelta":
            delta = as_dict(event.get("delta"))
            if isinstance(delta.get("text"), str):
                out.append({"type": "text", "text": delta["text"]})
            elif "toolUse" in delta and index in self.tools:
                self.tools[index]["json"] += str(as_dict(delta["toolUse"]).get("input", ""))
            elif "reasoningContent" in delta:
                reasoning = as_dict(delta["reasoningContent"])
                block = self.reasoning.setdefault(index, {"text": "", "signature": ""})
                if isinstance(reasoning.get("text"), str):
                    block["text"] += reasoning["text"]
                    out.append({"type": "reasoning", "text": reasoning["text"]})
                if isinstance(reasoning.get("signature"), str):
                    block["signature"] = reasoning["signature"]
        elif kind == "messageStop":
            reason = event.get("stopReason")
            if isinstance(reason, str):
                self.outcome = _CONVERSE_OUTCOMES.get(reason, "completed")
        elif kind == "metadata":
            self.usage = bedrock.converse_usage(event.get("usage"))

    def finish(self) -> list[Event]:
        out: list[Event] = [
            call_event(str(t["id"]), str(t["name"]), t["json"])
            for _, t in sorted(self.tools.items())
        ]
        if out and self.reasoning:
            replay = [
                {"reasoningContent": {"reasoningText": dict(block)}}
                for _, block in sorted(self.reasoning.items())
            ]
            out.append({"type": "replay", "items": replay})
        if self.usage is not None:
            out.append(usage_event(self.usage))
        out.append({"type": "end", "outcome": self.outcome})
        return out


OPENAI_CHAT = OpenAIChatAdapter()
ANTHROPIC = AnthropicAdapter()
RESPONSES = ResponsesAdapter()
GEMINI = GeminiAdapter()
VERTEX_GEMINI = VertexGeminiAdapter()
VERTEX_ANTHROPIC = VertexAnthropicAdapter()
CONVERSE = ConverseAdapter()
