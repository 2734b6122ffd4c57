"""Reading the loosely typed JSON the adapters are given, and writing the JSON text they send.

A client's request is checked: a field of the wrong type raises `Untranslatable` naming it
(`expect_*`). A provider's answer is read leniently: a field missing, `null` or of the wrong
type reads as empty or 0 (`as_*`), as the gateway's own format readers do.
"""

from __future__ import annotations

from typing import Any

import orjson

from irisgate.translate.errortext import shown
from irisgate.translate.ir import Untranslatable
from irisgate.wire import nesting


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: object) -> int:
    """`value` if it is a JSON integer (integral floats accepted), else 0."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return 0


def expect_dict(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Untranslatable(f"'{where}' must be an object")
    return value


def expect_list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Untranslatable(f"'{where}' must be an array")
    return value


def expect_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise Untranslatable(f"'{where}' must be a string")
    return value


def expect_int(value: object, where: str) -> int | None:
    """An optional positive integer field (None when absent or null)."""
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise Untranslatable(f"'{where}' must be a non-negative integer")
    return value


def expect_number(value: object, where: str) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float):
        raise Untranslatable(f"'{where}' must be a number")
    return float(value)  # type: ignore[arg-type]  # int or float, checked above


def refuse_unknown(body: dict[str, Any], known: frozenset[str], where: str = "") -> None:
    """Raise for the first key of `body` the adapter does not carry over (none is dropped)."""
    for key in body:
        if key not in known:
            raise Untranslatable(f"'{where}{shown(key)}' cannot be translated to another API")


def json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise Untranslatable("a JSON value nests too deep to be translated") from None


#: what a decoder (or an encoder closed early) says when a stream ends before its answer did
CUT_SHORT = "the provider's stream ended before the answer was complete"
#: what a decoder says when a provider's stream event nests deeper than irisgate reads
TOO_DEEP = "the provider's answer held JSON nested too deep to translate"


def stream_object(data: bytes) -> dict[str, Any] | None:
    """A provider's stream event as a JSON object; None when it is not one (a stream reader
    skips it). Raises `nesting.TooDeep` past `nesting.MAX_DEPTH`: the stream must end."""
    try:
        value = nesting.loads(data)
    except nesting.TooDeep:
        raise
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def arguments_object(arguments: str, where: str) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as the object an API that wants one needs."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise Untranslatable(f"'{where}' is not valid JSON") from None
    if not isinstance(value, dict):
        raise Untranslatable(f"'{where}' is not a JSON object")
    return value
