"""The `HookCallData` JSON a hook receives (reference §9.2).

The `metadata` block is always sent; `send` values add fields: `request_body`,
`response_body`, `raw_responses`, `user_message`, `tools` (as `tool_calls`), and inside
metadata `grants` (the caller's non-Aperture capabilities), `estimated_cost` and `quotas`
(nanodollars). Response fields exist only for post-response events. Reading the user's last
message and the tool calls works on OpenAI Chat / Responses and Anthropic Messages shapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from irisgate.hooks.plan import HookCall
from irisgate.wire import nesting
from irisgate.wire.sse import SSEParser

NANO = 1_000_000_000


def metadata(call: HookCall, send: frozenset[str], *, after: bool) -> dict[str, Any]:
    record, identity = call.record, call.identity
    meta: dict[str, Any] = {
        "login_name": identity.login_name,
        "user_agent": record.user_agent,
        "url": call.url,
        "model": record.model,
        "provider": record.provider,
        "tailnet_name": identity.tailnet,
        "stable_node_id": identity.node_id,
        "request_id": record.request_id,
        "session_id": record.session_id,
    }
    if "estimated_cost" in send:
        meta["estimated_cost"] = _cost(call, after=after)
    if "quotas" in send:
        meta["quotas"] = dict(call.quotas)
    if "grants" in send:
        meta["grants"] = {name: list(values) for name, values in call.access.opaque.items()}
    return meta


def _cost(call: HookCall, *, after: bool) -> dict[str, Any]:
    record = call.record
    if not after:
        nanos = call.estimate_nanodollars or 0
        return {"dollars": nanos / NANO, "cost_basis": record.cost_basis}
    usage = {
        "input_tokens": record.usage.input_tokens,
        "output_tokens": record.usage.output_tokens,
        "cached_tokens": record.usage.cache_read_tokens,
    }
    return {
        "dollars": (record.cost_nanodollars or 0) / NANO,
        "cost_basis": record.cost_basis,
        "usage": {k: v for k, v in usage.items() if v},
    }


def pre_request(call: HookCall, send: frozenset[str], body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"metadata": metadata(call, send, after=False)}
    if "request_body" in send:
        data["request_body"] = body
    if "user_message" in send:
        data["user_message"] = user_message(body)
    return data


def post_response(
    call: HookCall, send: frozenset[str], raw_body: bytes, stream: bool
) -> dict[str, Any]:
    record = call.record
    request = _json(record.request_body)
    response = _json(record.response_body)
    data: dict[str, Any] = {"metadata": metadata(call, send, after=True)}
    if "request_body" in send:
        data["request_body"] = request
    if "user_message" in send:
        data["user_message"] = user_message(request if isinstance(request, dict) else {})
    if "response_body" in send:
        data["response_body"] = response
    if "raw_responses" in send:
        data["raw_responses"] = raw_responses(raw_body) if stream else response
    if "tools" in send:
        data["tool_calls"] = tool_calls(response)
    return data


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return nesting.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def raw_responses(stream_bytes: bytes) -> list[Any]:
    """The data of every event of an SSE answer, parsed as JSON where it is JSON."""
    out: list[Any] = []
    for event in SSEParser().feed(stream_bytes + b"\n\n"):
        if event.data and event.data != b"[DONE]":
            out.append(_json(event.data))
    return out


def user_message(body: dict[str, Any]) -> str:
    """The text of the last user message, whichever API shape the body has."""
    items = body.get("messages")
    if not isinstance(items, list):
        items = body.get("input")
        if isinstance(items, str):
            return items
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return _text(item.get("content"))
    return ""


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def tool_calls(response: Any) -> list[dict[str, Any]]:
    """`[{name, params}]` from an OpenAI Chat, OpenAI Responses or Anthropic answer."""
    if not isinstance(response, dict):
        return []
    calls: list[dict[str, Any]] = []
    for choice in _dicts(response.get("choices")):
        message = choice.get("message")
        for call in _dicts(message.get("tool_calls") if isinstance(message, dict) else None):
            function = call.get("function")
            if isinstance(function, dict):
                calls.append(_call(function.get("name"), function.get("arguments")))
    for item in _dicts(response.get("output")):
        if item.get("type") == "function_call":
            calls.append(_call(item.get("name"), item.get("arguments")))
    for block in _dicts(response.get("content")):
        if block.get("type") == "tool_use":
            calls.append(_call(block.get("name"), block.get("input")))
    return calls


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _call(name: Any, params: Any) -> dict[str, Any]:
    if isinstance(params, str):  # OpenAI sends arguments as a JSON string
        params = _json(params.encode())
    return {"name": name if isinstance(name, str) else "", "params": params}
