"""One call of a hook: POST the JSON payload with the hook's auth, within its timeout."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from irisgate.config.model import Hook


class HookFailed(Exception):
    """The hook could not be used: unreachable, timeout, non-2xx or an invalid answer.
    `reason` is one of a few fixed words (a metrics label): http_status, timeout,
    unreachable, invalid_answer."""

    def __init__(self, message: str, reason: str = "invalid_answer") -> None:
        super().__init__(message)
        self.reason = reason


def _auth_headers(hook: Hook) -> dict[str, str]:
    key = hook.apikey.value or ""
    if not key:
        return {}
    if hook.authorization == "x-api-key":
        return {"x-api-key": key}
    if hook.authorization == "x-goog-api-key":
        return {"x-goog-api-key": key}
    return {"authorization": f"Bearer {key}"}


async def call(http: aiohttp.ClientSession, hook: Hook, payload: bytes) -> Any:
    """The hook's JSON answer (whatever JSON it is); raises HookFailed."""
    headers = {"content-type": "application/json", **_auth_headers(hook)}
    timeout = aiohttp.ClientTimeout(total=hook.timeout_seconds)
    try:
        async with http.post(hook.url, data=payload, headers=headers, timeout=timeout) as resp:
            body = await resp.read()
            if not 200 <= resp.status < 300:
                raise HookFailed(f"hook {hook.name} answered HTTP {resp.status}", "http_status")
    except TimeoutError:
        wait = f"{hook.timeout_seconds:g}s"
        raise HookFailed(f"hook {hook.name} did not answer within {wait}", "timeout") from None
    except aiohttp.ClientError as exc:
        problem = f"hook {hook.name} is unreachable: {exc.__class__.__name__}"
        raise HookFailed(problem, "unreachable") from None
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise HookFailed(f"hook {hook.name} answered with invalid JSON") from None
