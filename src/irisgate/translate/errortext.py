"""A provider's error message as the caller may see it.

The message is the provider's own words, cut to a length and stripped of control characters;
an authentication failure is replaced by a fixed text, because a vendor's 401 or 403 may
quote part of the key irisgate sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

#: the longest provider message passed on
MESSAGE_LIMIT = 1000


def provider_message(status: int, body: bytes, pick: Callable[[Any], object]) -> str:
    """The message `pick` finds in the JSON error body, made safe to show."""
    if status in (401, 403):
        return f"the provider refused irisgate's credentials ({status})"
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    message = pick(parsed) if parsed is not None else None
    if not isinstance(message, str) or not message:
        return f"the provider answered {status}"
    cut = message[:MESSAGE_LIMIT]
    return "".join(c if c.isprintable() or c == "\n" else "\ufffd" for c in cut)


def shown(name: str, limit: int = 60) -> str:
    """A name the caller wrote (a member, a type), as an error message may quote it: cut to
    `limit` characters, control characters replaced."""
    cut = name[:limit] + ("…" if len(name) > limit else "")
    return "".join(c if c.isprintable() else "\ufffd" for c in cut)


def nested(value: Any, *keys: str) -> object:
    """value[k1][k2]… when each step is an object, else None."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
