"""The parts of a chat message beyond its text, checked before they are kept.

- `attachments` (user messages): the images attached, ``{id}`` each: an attachment uploaded
  to the conversation first (`irisgate.chat.attachments`, which checks size and type). At
  most `MAX_IMAGES` per message. Messages kept before attachments had their own endpoint
  hold ``{name, media_type, data}`` (base64) instead, and are still read.
- `tool_calls` (assistant messages): the tool rounds of the turn, ``{text, calls: [{id, name,
  arguments, output, is_error}]}``: the text the model wrote before calling, each call's input
  and the output the chat sent back. At most `MAX_ROUNDS` rounds (the chat's loop bound).

Anything else is a 400 naming the field (`irisgate.handlers.ApiError`).
"""

from __future__ import annotations

from typing import Any

from irisgate.handlers import ApiError

#: The most characters of a tool's output the chat keeps and sends back to the model.
OUTPUT_LIMIT = 100_000

MAX_IMAGES = 4
MAX_ROUNDS = 8
MAX_CALLS_PER_ROUND = 64
_NAME_LIMIT = 200
_TEXT_LIMIT = 1_000_000


def _string(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"'{where}' must be a string")
    if len(value) > limit:
        raise ApiError(400, f"'{where}' is longer than {limit} characters")
    return value


def _list(value: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, f"'{where}' must be a list")
    if len(value) > limit:
        raise ApiError(400, f"'{where}' has more than {limit} entries")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"'{where}' must be an object")
    return value


def _image(value: Any, where: str) -> str:
    item = _object(value, where)
    return _string(item.get("id"), f"{where}.id", _NAME_LIMIT)


def attachments(value: Any) -> list[str]:
    """The ids of the images of a user message, checked for shape (whose they are is checked
    against the store)."""
    items = _list(value, "attachments", MAX_IMAGES)
    return list(dict.fromkeys(_image(item, f"attachments[{i}]") for i, item in enumerate(items)))


def _call(value: Any, where: str) -> dict[str, Any]:
    item = _object(value, where)
    arguments = item.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ApiError(400, f"'{where}.arguments' must be an object")
    is_error = item.get("is_error", False)
    if not isinstance(is_error, bool):
        raise ApiError(400, f"'{where}.is_error' must be true or false")
    return {
        "id": _string(item.get("id"), f"{where}.id", _NAME_LIMIT),
        "name": _string(item.get("name"), f"{where}.name", _NAME_LIMIT),
        "arguments": arguments,
        "output": _string(item.get("output", ""), f"{where}.output", OUTPUT_LIMIT + 200),
        "is_error": is_error,
    }


def _round(value: Any, where: str) -> dict[str, Any]:
    item = _object(value, where)
    calls = _list(item.get("calls"), f"{where}.calls", MAX_CALLS_PER_ROUND)
    return {
        "text": _string(item.get("text", ""), f"{where}.text", _TEXT_LIMIT),
        "calls": [_call(call, f"{where}.calls[{i}]") for i, call in enumerate(calls)],
    }


def tool_rounds(value: Any) -> tuple[dict[str, Any], ...]:
    """The tool rounds of an assistant turn, checked."""
    items = _list(value, "tool_calls", MAX_ROUNDS)
    return tuple(_round(item, f"tool_calls[{i}]") for i, item in enumerate(items))
