"""Session ids: which requests belong to one agent session.

In order: an explicit `x-session-id` header; Claude Code's session inside
`metadata.user_id` (`..._session_<uuid>` or a JSON string with `session_id`); Codex's
`session_id` / `conversation_id` headers; else a fingerprint of the caller and the start of
the conversation, so every turn of one chat lands in one session.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.wire import nesting

_CLAUDE_SESSION = re.compile(r"session_([0-9A-Za-z-]{8,64})")
SESSION_HEADERS = ("x-session-id", "session_id", "session-id", "conversation_id")


def session_id(headers: Mapping[str, str], body: dict[str, Any], login: str) -> str:
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:128]
    found = _from_metadata(body.get("metadata"))
    if found:
        return found
    return fingerprint(body, login)


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


def fingerprint(body: dict[str, Any], login: str) -> str:
    """Hash of the caller and the conversation's first instructions and user message."""
    digest = hashlib.blake2b(login.encode() + b"\0", digest_size=8)
    digest.update(orjson.dumps(_first_turn(body), option=orjson.OPT_SORT_KEYS))
    return "fp_" + digest.hexdigest()


def _first_turn(body: dict[str, Any]) -> list[Any]:
    system = body.get("system") or body.get("instructions") or ""
    messages = body.get("messages")
    if not isinstance(messages, list):
        messages = body.get("input")
    if isinstance(messages, str):
        return [system, messages]
    first_user: Any = None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            system = system or message.get("content")
        elif isinstance(message, dict) and message.get("role") == "user":
            first_user = message.get("content")
            break
    return [system, first_user]
