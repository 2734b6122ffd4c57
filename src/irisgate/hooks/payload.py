"""The `HookCallData` JSON a hook receives (reference §9.2).

The `metadata` block is always sent; `send` values add fields: `request_body`,
`response_body`, `raw_responses`, `user_message`, `tools` (as `tool_calls`), and inside
metadata `grants` (the caller's non-Aperture capabilities), `estimated_cost` and `quotas`
(nanodollars). Response fields exist only for post-response events. The user's last message
and the tool calls are read by the request's API format (`HookCall.conversation`), so they
are there for every format: OpenAI, Anthropic, Gemini, Vertex and Bedrock alike.
`estimated_cost.usage` names every token kind the answer reported, in the names of Aperture's
`UsageTokens`.
"""

from __future__ import annotations

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
    u = record.usage
    usage = {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_creation_5m_input_tokens": u.cache_write_5m_tokens,
        "cache_creation_1h_input_tokens": u.cache_write_1h_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "image_input_tokens": u.image_input_tokens,
        "image_output_tokens": u.image_output_tokens,
        "web_search_count": u.web_search_count,
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
        data["user_message"] = call.conversation.user_message(body)
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
        body = request if isinstance(request, dict) else {}
        data["user_message"] = call.conversation.user_message(body)
    if "response_body" in send:
        data["response_body"] = response
    if "raw_responses" in send:
        data["raw_responses"] = raw_responses(raw_body) if stream else response
    if "tools" in send:
        answer = response if isinstance(response, dict) else {}
        data["tool_calls"] = call.conversation.tool_calls(answer)
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
