"""The parts of a chat message beyond its text, checked before they are kept.

- `attachments` (user messages): images as the user attached them, ``{name, media_type,
  data}`` with `data` the base64 of the file. At most `MAX_IMAGES` per message, each at most
  `MAX_IMAGE_BYTES` (so its base64 stays within Anthropic's 5 MB per image), of a type every
  chat API takes (PNG, JPEG, GIF, WebP) and whose bytes are of that type.
- `tool_calls` (assistant messages): the tool rounds of the turn, ``{text, calls: [{id, name,
  arguments, output, is_error}]}``: the text the model wrote before calling, each call's input
  and the output the chat sent back. At most `MAX_ROUNDS` rounds (the chat's loop bound).

Anything else is a 400 naming the field (`irisgate.handlers.ApiError`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from irisgate.handlers import ApiError

#: The most characters of a tool's output the chat keeps and sends back to the model.
OUTPUT_LIMIT = 100_000

MAX_IMAGES = 4
MAX_IMAGE_BYTES = 3_750_000
#: media type -> how the file's bytes start (WebP: "RIFF" then "WEBP" at offset 8)
IMAGE_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
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


def _image(value: Any, where: str) -> dict[str, Any]:
    item = _object(value, where)
    name = _string(item.get("name", ""), f"{where}.name", _NAME_LIMIT)
    media_type = item.get("media_type")
    if not isinstance(media_type, str) or media_type not in IMAGE_TYPES:
        kinds = ", ".join(IMAGE_TYPES)
        raise ApiError(400, f"'{where}.media_type' must be one of {kinds}")
    data = _string(item.get("data"), f"{where}.data", MAX_IMAGE_BYTES * 4 // 3 + 4)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"'{where}.data' is not base64") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise ApiError(400, f"{name or where} is larger than {MAX_IMAGE_BYTES} bytes")
    if not raw.startswith(IMAGE_TYPES[media_type]) or (
        media_type == "image/webp" and raw[8:12] != b"WEBP"
    ):
        raise ApiError(400, f"'{where}.data' is not {media_type} data")
    return {"name": name, "media_type": media_type, "data": data}


def attachments(value: Any) -> tuple[dict[str, Any], ...]:
    """The images of a user message, checked."""
    items = _list(value, "attachments", MAX_IMAGES)
    return tuple(_image(item, f"attachments[{i}]") for i, item in enumerate(items))


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
