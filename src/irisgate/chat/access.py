"""Who may use the chat app: a granted role, no capability with `enable_chat_ui: false`, and
the config's `chat_ui` flag not set to false (reference §2.4, §9.5)."""

from __future__ import annotations

from starlette.requests import Request

from irisgate.config.model import Config
from irisgate.handlers import ApiError, Caller, identify, runtime_of

DISABLED = "access denied: chat is disabled for you (enable_chat_ui is false in your grants)"
FLAG_OFF = "access denied: the chat app is turned off (flags.chat_ui is false)"


def refusal(caller: Caller, config: Config) -> str | None:
    """Why this caller may not use chat, or None when they may."""
    if caller.access.role is None:
        return "access denied: no role granted"
    if config.flags.get("chat_ui") is False:
        return FLAG_OFF
    if not caller.access.chat_enabled:
        return DISABLED
    return None


def allowed(caller: Caller, config: Config) -> bool:
    return refusal(caller, config) is None


async def require_chat(request: Request) -> Caller:
    """The caller of a chat API endpoint, or a 403 naming why chat is not theirs."""
    caller = await identify(request)
    reason = refusal(caller, runtime_of(request).snapshot.config)
    if reason is not None:
        raise ApiError(403, reason)
    return caller
