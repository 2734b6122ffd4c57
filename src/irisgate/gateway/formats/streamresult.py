"""The outcome of reading one upstream answer, shared by every API format.

`StreamResult` is what each format's stream accumulator returns; the small coercion helpers
below let the format modules read untrusted upstream JSON without raising: a field that is
missing, `null` or of the wrong type reads as 0 / an empty mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from irisgate.usage.tokens import Usage

__all__ = ["EMPTY", "StreamResult", "as_dict", "as_int", "load_object"]

EMPTY: Mapping[str, Any] = MappingProxyType({})
"""A read-only empty mapping, returned by `as_dict` for anything that is not a JSON object."""


@dataclass(slots=True)
class StreamResult:
    """What an accumulator learned from one streamed (or cut off) answer.

    `usage` is the token usage seen (empty when the upstream never reported it);
    `response` is the stream reassembled into the format's non-streaming response body
    (`chat.completion`, `response`, `message`), partial when the stream was cut off;
    `tool_calls` counts the client-side tool calls the model asked for;
    `finished` is True only when the stream reached its terminal event (it says the stream was
    complete, not that the model succeeded: a `response.failed` stream is finished).
    `input_reported` / `output_reported` say whether the upstream's own counts of the prompt /
    the completion arrived; when one did not (a stream cut before its usage event), `usage`
    lacks it and the recorder estimates it (see `irisgate.usage.estimate`). Formats whose
    usage is not estimated leave both True.
    Treat `response` as read-only: it may share members with the accumulator's state.
    """

    usage: Usage
    response: dict[str, Any]
    tool_calls: int
    finished: bool
    input_reported: bool = True
    output_reported: bool = True


def as_int(value: object) -> int:
    """`value` if it is a JSON integer (integral floats accepted), else 0. Booleans read as 0."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return 0


def as_dict(value: object) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else the read-only `EMPTY` mapping."""
    return value if isinstance(value, dict) else EMPTY


def load_object(data: bytes) -> dict[str, Any] | None:
    """`data` parsed as JSON if it is a JSON object; None if it is invalid JSON or not an object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
