"""A body naming a routing key twice is refused: never granted by one copy and routed by
the other. Raw bodies, as no SDK sends a key twice."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import BOB_IP, http_from, openai_client

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

MESSAGES = '"messages": [{"role": "user", "content": "hi"}]'


def post(gw: IrisgateServer, path: str, body: str, ip: str = BOB_IP) -> Any:
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    with http_from(ip, gw.url) as client:
        return client.post(path, content=body.encode(), headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        # bob may use local/* but not openai: which copy would be granted, which routed?
        f'{{"model": "gpt-4o-mini", {MESSAGES}, "model": "llama-local"}}',
        f'{{"model": "llama-local", {MESSAGES}, "mod\\u0065l": "gpt-4o-mini"}}',
        f'{{"model": "llama-local", "stream": false, {MESSAGES}, "stream" : true}}',
    ],
)
def test_openai_body_naming_a_routing_key_twice_is_400(
    gateway: IrisgateServer, fake_llm: FakeLLM, body: str
) -> None:
    answer = post(gateway, "/v1/chat/completions", body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] in ("model", "stream")
    assert error["message"] == (
        f"request body names '{error['param']}' more than once; send each key once"
    )
    assert fake_llm.requests == []


def test_anthropic_body_naming_model_twice_is_400_in_its_envelope(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    body = f'{{"model": "claude-haiku-4-5", "max_tokens": 8, {MESSAGES}, "model": "x"}}'
    answer = post(gateway, "/v1/messages", body)
    assert answer.status_code == 400
    assert answer.json()["type"] == "error"
    assert answer.json()["error"] == {
        "type": "invalid_request_error",
        "message": "request body names 'model' more than once; send each key once",
    }
    assert fake_llm.requests == []


def test_the_key_name_elsewhere_in_the_body_is_fine(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "pick",
            "parameters": {
                "type": "object",
                "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}},
            },
        },
    }
    reply = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": 'say "model": twice, "model": ok'}],
        tools=[tool],  # type: ignore[list-item]
        extra_body={"metadata": {"model": "a", "stream": "b"}},
    )
    assert reply.choices
    assert fake_llm.last_request.json["model"] == "gpt-4o-mini"
