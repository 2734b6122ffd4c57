"""The text a request or an answer carries, per API format, for estimating token counts.

When a stream ends without the upstream's own usage (the client went away, the upstream broke
off), irisgate counts the tokens itself (`irisgate.usage.estimate`). What is counted is what
a model reads or writes as text: message text, refusals, reasoning text, tool call names and
arguments, tool results, instructions / system prompts, and the tool definitions (as compact
JSON). Images, audio and files are not text and are left out; so are ids, roles and settings.

Sans-io and tolerant: untrusted JSON of any shape gives some list of strings, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.usage.estimate import Prompt

__all__ = [
    "Prompt",
    "anthropic_answer",
    "anthropic_prompt",
    "chat_answer",
    "chat_prompt",
    "responses_answer",
    "responses_prompt",
]

# Members whose strings are text a model reads or writes; the walk descends only through these
# (never into `image_url`, `source`, `file_data`, `signature`, `id`, `type`, `role` ...).
_TEXT_MEMBERS = frozenset(
    {
        "content",
        "text",
        "refusal",
        "arguments",
        "input",
        "output",
        "name",
        "thinking",
        "summary",
        "reasoning",
        "reasoning_content",
        "tool_calls",
        "function_call",
        "function",
        "partial_json",
    }
)
# Tool inputs may be JSON objects (Anthropic `tool_use.input`): counted as their compact JSON.
_STRUCTURED = frozenset({"input", "arguments"})


def _walk(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, list):
        for item in value:
            _walk(item, out)
    elif isinstance(value, dict):
        for key, member in value.items():
            if key in _STRUCTURED and isinstance(member, dict):
                out.append(orjson.dumps(member).decode())
            elif key in _TEXT_MEMBERS:
                _walk(member, out)


def _tools(body: Mapping[str, Any], out: list[str]) -> None:
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out.append(orjson.dumps(tools).decode())


def _items(value: object) -> int:
    return len(value) if isinstance(value, list) else (1 if value else 0)


def chat_prompt(body: Mapping[str, Any]) -> Prompt:
    """OpenAI Chat Completions: `messages` (text parts, tool calls, tool results) and `tools`."""
    out: list[str] = []
    messages = body.get("messages")
    _walk(messages, out)
    _tools(body, out)
    return Prompt(out, _items(messages))


def chat_answer(response: Mapping[str, Any]) -> list[str]:
    """The text of every choice of a (reassembled) `chat.completion`."""
    out: list[str] = []
    choices = response.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                _walk(choice.get("message"), out)
    return out


def responses_prompt(body: Mapping[str, Any]) -> Prompt:
    """OpenAI Responses: `instructions`, `input` (a string or items) and `tools`."""
    out: list[str] = []
    _walk(body.get("instructions"), out)
    items = body.get("input")
    _walk(items, out)
    _tools(body, out)
    return Prompt(out, _items(items))


def responses_answer(response: Mapping[str, Any]) -> list[str]:
    """The text of a (possibly rebuilt) `response` object's `output` items."""
    out: list[str] = []
    _walk(response.get("output"), out)
    return out


def anthropic_prompt(body: Mapping[str, Any]) -> Prompt:
    """Anthropic Messages: `system`, `messages` (text, tool use and results) and `tools`."""
    out: list[str] = []
    _walk(body.get("system"), out)  # a string, or text blocks
    messages = body.get("messages")
    _walk(messages, out)
    _tools(body, out)
    return Prompt(out, _items(messages))


def anthropic_answer(response: Mapping[str, Any]) -> list[str]:
    """The text of a (reassembled, possibly partial) `message`'s content blocks."""
    out: list[str] = []
    _walk({"content": response.get("content")}, out)
    return out
