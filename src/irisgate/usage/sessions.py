"""Session ids: which requests belong to one agent session.

In order: an explicit `x-session-id` header; Claude Code's session inside
`metadata.user_id` (`..._session_<uuid>` or a JSON string with `session_id`); Codex's
`session_id` / `conversation_id` headers; else a fingerprint of the caller and the start of
the conversation (its first turn, as the request's API format reads it: `ApiFormat.first_turn`),
so every turn of one chat lands in one session and two conversations in two.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from irisgate.wire import nesting

_CLAUDE_SESSION = re.compile(r"session_([0-9A-Za-z-]{8,64})")
SESSION_HEADERS = ("x-session-id", "session_id", "session-id", "conversation_id")


def session_id(
    headers: Mapping[str, str],
    body: dict[str, Any],
    login: str,
    first_turn: Callable[[dict[str, Any]], list[Any]],
) -> str:
    """`first_turn` is the request's API format's (`ApiFormat.first_turn`): read only when
    neither a header nor Claude Code's metadata names the session."""
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:128]
    found = _from_metadata(body.get("metadata"))
    if found:
        return found
    return fingerprint(first_turn(body), login)


def _from_metadata(metadata: Any) -> str | None:
    if not isinstance(metadata, dict):
        return None
    user_id = metadata.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        return None
    if user_id.startswith("{"):
        try:
            parsed = nesting.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        value = parsed.get("session_id") if isinstance(parsed, dict) else None
        return str(value)[:128] if value else None
    match = _CLAUDE_SESSION.search(user_id)
    return match.group(1) if match else None


def fingerprint(first_turn: list[Any], login: str) -> str:
    """Hash of the caller and the conversation's first instructions and user message."""
    digest = hashlib.blake2b(login.encode() + b"\0", digest_size=8)
    digest.update(orjson.dumps(first_turn, option=orjson.OPT_SORT_KEYS))
    return "fp_" + digest.hexdigest()
