"""The conversation a request carries and the tool calls an answer asks for, per API format.

Three questions every format answers (gateway/formats/base.py `ApiFormat`), read here from
each API's own shapes:

- the *first turn* (the instructions and the first user message): a session's fingerprint
  (usage/sessions.py), the same for every later turn of one conversation;
- the *last user message* as text, for hooks (`user_message`): the last one with text, so a
  turn that only carries tool results gives what the user said before it, in every format;
- the *tool calls* of a complete (possibly reassembled) answer, as ``{"name", "params"}``,
  for hooks (`tool_calls`).

Shapes: OpenAI Chat (`messages`), OpenAI Responses (`instructions`, `input`), Anthropic
Messages (`system`, `messages`; also Vertex rawPredict and Bedrock InvokeModel of Anthropic
models), Gemini (`systemInstruction`, `contents` of `parts`; also Vertex generateContent),
Bedrock Converse (`system`, `messages` of content blocks; Amazon Nova's InvokeModel too) and
the single-prompt InvokeModel bodies of other vendors (`prompt`, `inputText`, `message`).

Sans-io and tolerant: untrusted JSON of any shape gives an answer (maybe empty), never an
error; nothing here walks deeper than the shapes name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from irisgate.wire import nesting

__all__ = [
    "anthropic_tool_calls",
    "chat_first_turn",
    "chat_tool_calls",
    "chat_user_message",
    "converse_tool_calls",
    "gemini_first_turn",
    "gemini_tool_calls",
    "gemini_user_message",
    "invoke_first_turn",
    "invoke_tool_calls",
    "invoke_user_message",
    "messages_first_turn",
    "messages_user_message",
    "responses_first_turn",
    "responses_tool_calls",
    "responses_user_message",
]

#: a single-prompt InvokeModel body: Llama / Mistral (`prompt`), Titan (`inputText`),
#: Cohere Command (`message`)
_PROMPT_KEYS = ("prompt", "inputText", "message")


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(content: Any) -> str:
    """A message content's text: a string, or the `text` members of its parts / blocks."""
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in _dicts(content) if isinstance(p.get("text"), str))


def _call(name: Any, params: Any) -> dict[str, Any]:
    if isinstance(params, str):  # OpenAI sends arguments as a JSON string
        with contextlib.suppress(orjson.JSONDecodeError):  # else kept as the model wrote it
            params = nesting.loads(params.encode())
    return {"name": name if isinstance(name, str) else "", "params": params}


# -- role-tagged messages: OpenAI Chat and Responses, Anthropic, Converse -----------------------


def _role_first_turn(system: Any, messages: Any) -> list[Any]:
    """[instructions, first user message content]; a system / developer message counts as
    the instructions when the body has none of its own."""
    if isinstance(messages, str):
        return [system, messages]
    first_user: Any = None
    for message in messages if isinstance(messages, list) else ():  # stops at the first user
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            system = system or message.get("content")
        elif role == "user":
            first_user = message.get("content")
            break
    return [system, first_user]


def _last_user_text(messages: Any) -> str:
    """The last user message with text: a turn carrying only tool results (Anthropic and
    Converse send them as user messages) is not what the user said."""
    if isinstance(messages, str):
        return messages
    for message in reversed(list(_dicts(messages))):
        if message.get("role") == "user" and (text := _text(message.get("content"))):
            return text
    return ""


def chat_first_turn(body: Mapping[str, Any]) -> list[Any]:
    return _role_first_turn("", body.get("messages"))


def chat_user_message(body: Mapping[str, Any]) -> str:
    return _last_user_text(body.get("messages"))


def chat_tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`message.tool_calls` (and the legacy `function_call`) of every choice."""
    calls: list[dict[str, Any]] = []
    for choice in _dicts(response.get("choices")):
        message = choice.get("message")
        if not isinstance(message, dict):
            continue
        for call in _dicts(message.get("tool_calls")):
            function = call.get("function")
            if isinstance(function, dict):
                calls.append(_call(function.get("name"), function.get("arguments")))
        legacy = message.get("function_call")
        if isinstance(legacy, dict):
            calls.append(_call(legacy.get("name"), legacy.get("arguments")))
    return calls


def responses_first_turn(body: Mapping[str, Any]) -> list[Any]:
    return _role_first_turn(body.get("instructions") or "", body.get("input"))


def responses_user_message(body: Mapping[str, Any]) -> str:
    return _last_user_text(body.get("input"))


def responses_tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `function_call` items of `output`."""
    return [
        _call(item.get("name"), item.get("arguments"))
        for item in _dicts(response.get("output"))
        if item.get("type") == "function_call"
    ]


def messages_first_turn(body: Mapping[str, Any]) -> list[Any]:
    """Anthropic Messages and Bedrock Converse: top-level `system`, then `messages`."""
    return _role_first_turn(body.get("system") or "", body.get("messages"))


def messages_user_message(body: Mapping[str, Any]) -> str:
    return _last_user_text(body.get("messages"))


def anthropic_tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `tool_use` content blocks of a `message` (server tools, run by Anthropic, are not
    the client's to run and are left out)."""
    return [
        _call(block.get("name"), block.get("input"))
        for block in _dicts(response.get("content"))
        if block.get("type") == "tool_use"
    ]


def converse_tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `toolUse` blocks of a Converse answer's `output.message.content`."""
    output = response.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    calls: list[dict[str, Any]] = []
    for block in _dicts(content):
        use = block.get("toolUse")
        if isinstance(use, dict):
            calls.append(_call(use.get("name"), use.get("input")))
    return calls


# -- Gemini `contents` ----------------------------------------------------------------------


def _is_user(content: Mapping[str, Any]) -> bool:
    return bool(content.get("role", "user") == "user")  # a single-turn request may omit the role


#: how Gemini CLI's setup turn starts: its date, OS and folder listing are the same for every
#: run in one place on one day, so the conversation starts with the user content after it
_GEMINI_CLI_SETUP = "This is the Gemini CLI. We are setting up the context"


def gemini_first_turn(body: Mapping[str, Any]) -> list[Any]:
    """[systemInstruction, the first user content's parts] (Gemini CLI's setup turn skipped
    when a user content follows it)."""
    system = body.get("systemInstruction") or body.get("system_instruction") or ""
    contents = body.get("contents")
    if isinstance(contents, dict):  # the REST API takes a single Content too
        contents = [contents]
    users = iter(
        () if not isinstance(contents, list) else (c for c in contents if isinstance(c, dict))
    )
    first = next((c for c in users if _is_user(c)), None)
    if first is not None and _text(first.get("parts")).startswith(_GEMINI_CLI_SETUP):
        first = next((c for c in users if _is_user(c)), first)
    return [system, first.get("parts") if first is not None else None]


def gemini_user_message(body: Mapping[str, Any]) -> str:
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    for content in reversed(list(_dicts(contents))):  # past turns of function responses only
        if _is_user(content) and (text := _text(content.get("parts"))):
            return text
    return ""


def gemini_tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `functionCall` parts of the first candidate: the calls the client is asked to
    run (as `count_tool_calls` counts them)."""
    candidates = list(_dicts(response.get("candidates")))
    content = candidates[0].get("content") if candidates else None
    parts = content.get("parts") if isinstance(content, dict) else None
    calls: list[dict[str, Any]] = []
    for part in _dicts(parts):
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append(_call(call.get("name"), call.get("args")))
    return calls


# -- Bedrock InvokeModel: the model vendor's own body ---------------------------------------


def _single_prompt(body: Mapping[str, Any]) -> str | None:
    for key in _PROMPT_KEYS:
        value = body.get(key)
        if isinstance(value, str):
            return value
    return None


def invoke_first_turn(body: Mapping[str, Any]) -> list[Any]:
    """Anthropic and Nova bodies as messages; a single-prompt body (Llama, Mistral, Titan,
    Cohere) is its whole prompt, which already holds the conversation so far."""
    prompt = _single_prompt(body)
    if prompt is not None and "messages" not in body:
        return [body.get("system") or "", prompt]
    return messages_first_turn(body)


def invoke_user_message(body: Mapping[str, Any]) -> str:
    prompt = _single_prompt(body)
    if prompt is not None and "messages" not in body:
        return prompt
    return messages_user_message(body)


def invoke_tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Anthropic `tool_use` blocks, else Amazon Nova's Converse-shaped `toolUse` blocks."""
    return anthropic_tool_calls(response) or converse_tool_calls(response)
