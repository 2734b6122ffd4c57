"""`irisgate doctor --probe`: one tiny request to a provider, with its configured key.

The request is what irisgate itself would send (the provider's URL, its credential header
and `add_headers`, built by the gateway's upstream code), in the first API format the
provider accepts among OpenAI Chat, Anthropic Messages and OpenAI Responses, asking the
first listed model for a few tokens. Cloud credentials (Vertex service accounts, AWS keys)
and other formats are not probed: the dashboard's Test button covers them through the
running gateway. The answer's status is reported; an error's message is cut short and
never carries the key.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import aiohttp
import orjson

from irisgate.config.cloudkeys import is_cloud_key
from irisgate.config.model import Provider
from irisgate.wire.upstream import build_headers, upstream_url

Level = Literal["ok", "warn", "FIX"]
_PROMPT = [{"role": "user", "content": "Reply with the word ok."}]


def probe_request(provider: Provider) -> tuple[str, dict[str, Any], dict[str, str]] | None:
    """(path, body, extra headers) of the probe for `provider`; None when it has no format
    the probe speaks."""
    model = provider.models[0]
    if provider.accepts("openai_chat"):
        return "/v1/chat/completions", {"model": model, "messages": _PROMPT}, {}
    if provider.accepts("anthropic_messages"):
        body = {"model": model, "max_tokens": 16, "messages": _PROMPT}
        return "/v1/messages", body, {"anthropic-version": "2023-06-01"}
    if provider.accepts("openai_responses"):
        return "/v1/responses", {"model": model, "input": _PROMPT[0]["content"]}, {}
    return None


async def probe_provider(provider: Provider, seconds: float) -> tuple[Level, str]:
    """Send the probe; (level, one line saying what happened)."""
    request = probe_request(provider)
    if request is None or is_cloud_key(provider.apikey.value):
        return "warn", "not probed (its API format or credential): use the dashboard's Test button"
    path, body, extra = request
    headers = build_headers(provider, {"content-type": "application/json", **extra}, [])
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.post(
                upstream_url(provider, path, b""), data=orjson.dumps(body), headers=headers
            ) as resp,
        ):
            status, answer = resp.status, await resp.content.read(4096)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            return "FIX", f"{provider.models[0]}: no answer within {seconds:g} s"
        return "FIX", f"{provider.models[0]}: cannot connect ({type(exc).__name__})"
    took = round((time.monotonic() - started) * 1000)
    if 200 <= status < 300:
        return "ok", f"{provider.models[0]} answered HTTP {status} in {took} ms"
    message = _error_message(answer, provider.apikey.value or "")
    return "FIX", f"{provider.models[0]} answered HTTP {status}: {message}"


def _error_message(body: bytes, key: str) -> str:
    """The provider's error message, short, with the key (or any part of it) never shown."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    text = str(message) if message else body.decode("utf-8", "replace")
    if key:
        text = text.replace(key, "[redacted]")
    return " ".join(text.split())[:200] or "(no message)"
