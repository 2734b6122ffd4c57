"""Deeply nested JSON gets a 400 in the caller's format, from one limit applied where bodies
are parsed (LLM bodies, /api/ bodies, the chat API); never a 500 from a later re-encode."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from conftest import ALICE_IP, anthropic_client, http_from, openai_client

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer
from irisgate.wire.nesting import MAX_DEPTH

USER_MSG = [{"role": "user", "content": "hi"}]
REFUSAL = f"nested deeper than {MAX_DEPTH} levels"


def nested(depth: int) -> Any:
    """`depth` levels of objects and arrays, innermost an empty list."""
    value: Any = []
    for level in range(depth - 1):
        value = {"x": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300])
def test_deep_llm_bodies_get_400_in_each_api_format(
    gateway: IrisgateServer, fake_llm: FakeLLM, depth: int
) -> None:
    with pytest.raises(openai.BadRequestError) as oai:
        openai_client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=USER_MSG, extra_body={"metadata": nested(depth - 1)}
        )
    error = oai.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["message"] == f"request body is not valid JSON: {REFUSAL}"
    with pytest.raises(anthropic.BadRequestError) as ant:
        anthropic_client(gateway).messages.create(
            model="claude-haiku-4-5",
            max_tokens=16,
            messages=USER_MSG,  # type: ignore[arg-type]
            extra_body={"metadata": nested(depth - 1)},
        )
    assert ant.value.response.json()["error"] == {
        "type": "invalid_request_error",
        "message": f"request body is not valid JSON: {REFUSAL}",
    }
    assert fake_llm.requests == []


@pytest.mark.parametrize("depth", [1000, 5000])
def test_deeper_than_any_sdk_sends_is_a_400_too(
    gateway: IrisgateServer, fake_llm: FakeLLM, depth: int
) -> None:
    body = '{"model": "gpt-4o-mini", "messages": [], "m": ' + "[" * depth + "]" * depth + "}"
    with http_from(ALICE_IP, gateway.url) as alice:
        answer = alice.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert answer.json()["error"]["message"].startswith("request body is not valid JSON: ")
    assert fake_llm.requests == []


def test_nesting_up_to_the_limit_is_forwarded(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    reply = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=USER_MSG, extra_body={"metadata": nested(MAX_DEPTH - 1)}
    )
    assert reply.choices
    assert fake_llm.last_request.json["metadata"] == nested(MAX_DEPTH - 1)


@pytest.mark.parametrize("path", ["/api/quotas/set", "/api/chat/conversations"])
def test_deep_api_and_chat_bodies_get_400_in_the_json_envelope(
    gateway: IrisgateServer, path: str
) -> None:
    body = json.dumps({"deep": nested(300)})
    with http_from(ALICE_IP, gateway.url) as admin:
        answer = admin.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"error": f"body is not valid JSON: {REFUSAL}"}


MCP_HEADERS = {"accept": "application/json, text/event-stream"}


def _mcp_ping(gateway: IrisgateServer, depth: int) -> Any:
    """A JSON-RPC `ping` to /v1/mcp whose params nest `depth` levels deep in all."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    body = '{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": ' + inner + "}}"
    headers = {**MCP_HEADERS, "content-type": "application/json"}
    with http_from(ALICE_IP, gateway.url) as alice:
        return alice.post("/v1/mcp", content=body, headers=headers)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 150, 1000])
def test_deep_mcp_bodies_get_a_json_rpc_parse_error_naming_the_limit(
    gateway: IrisgateServer, depth: int
) -> None:
    """The same limit as every other body, before the MCP SDK (whose own is ~200) sees it."""
    answer = _mcp_ping(gateway, depth)
    assert answer.status_code == 400
    assert answer.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": f"Parse error: JSON {REFUSAL}"},
    }


def test_mcp_bodies_up_to_the_limit_reach_the_sdk(gateway: IrisgateServer) -> None:
    answer = _mcp_ping(gateway, MAX_DEPTH)
    assert answer.status_code == 200, answer.text
    assert '"result":{}' in answer.text.replace(" ", "")
