"""One call of a hook: POST the JSON payload with the hook's auth, within its timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from irisgate.config.model import Hook
from irisgate.wire import nesting
from irisgate.wire.http1 import AnswerTooLarge, Http1Client, UpstreamError


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


async def call(http: Http1Client, hook: Hook, payload: bytes, limit: int) -> Any:
    """The hook's JSON answer (whatever JSON it is); raises HookFailed. The timeout covers
    everything: connecting, sending, waiting and reading the answer; an answer longer than
    `limit` bytes (`--max-hook-answer`) is a failure, and no more than that is read."""
    headers = {"content-type": "application/json", **_auth_headers(hook)}
    try:
        async with asyncio.timeout(hook.timeout_seconds):
            answer = await http.request("POST", hook.url, headers, payload)
            try:
                body = await answer.read(limit)
            finally:
                answer.close()
    except TimeoutError:
        wait = f"{hook.timeout_seconds:g}s"
        raise HookFailed(f"hook {hook.name} did not answer within {wait}", "timeout") from None
    except UpstreamError as exc:
        raise HookFailed(f"hook {hook.name} is unreachable: {exc}", "unreachable") from None
    except AnswerTooLarge:
        raise HookFailed(
            f"hook {hook.name} answered more than {limit} bytes (the limit set by "
            "--max-hook-answer)"
        ) from None
    if not 200 <= answer.status < 300:
        raise HookFailed(f"hook {hook.name} answered HTTP {answer.status}", "http_status")
    try:
        return nesting.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise HookFailed(f"hook {hook.name} answered with invalid JSON: {exc}") from None
