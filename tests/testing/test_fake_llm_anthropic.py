"""FakeLLM speaks Anthropic Messages: the official SDK parses it, and the bytes are Anthropic's."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from irisgate.testing import FakeLLM

MODEL = "claude-sonnet-5"
TEXT = " ".join(f"tok{i}" for i in range(20))
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather of a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        },
    }
]


def client(fake: FakeLLM, *, api_key: str = "sk-ant-client") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key=api_key, max_retries=0)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_message_parses_in_the_sdk_with_cache_usage(fake: FakeLLM, post: Any) -> None:
    fake.cached_tokens = 50
    fake.cache_write_5m_tokens = 30
    fake.cache_write_1h_tokens = 20

    message = client(fake).messages.create(
        model=MODEL, max_tokens=100, system="be nice", messages=user("one two three")
    )

    assert message.id.startswith("msg_01")
    assert message.model == MODEL
    assert message.content[0].type == "text"
    assert message.content[0].text == TEXT
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert usage.input_tokens == 5  # uncached words: system + messages
    assert usage.cache_read_input_tokens == 50
    assert usage.cache_creation_input_tokens == 50
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 30
    assert usage.cache_creation.ephemeral_1h_input_tokens == 20
    assert usage.output_tokens == 20
    assert usage.service_tier == "standard"

    _, headers, raw = post(
        fake.base_url + "/v1/messages", {"model": MODEL, "max_tokens": 5, "messages": user("x")}
    )
    assert headers["request-id"].startswith("req_011")
    assert raw.startswith(b'{"model":"claude-sonnet-5","id":"msg_01')
    assert list(json.loads(raw)) == [
        "model", "id", "type", "role", "content", "stop_reason", "stop_sequence", "usage",
    ]  # fmt: skip


def test_stream_events_in_anthropic_order(fake: FakeLLM, post: Any, sse: Any) -> None:
    fake.n_chunks = 3
    _, headers, raw = post(
        fake.base_url + "/v1/messages",
        {"model": MODEL, "max_tokens": 5, "messages": user("hi"), "stream": True},
    )

    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = sse(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[2][1] == '{"type": "ping"}'
    assert events[1][1] == (
        '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
    )
    assert events[3][1] == (
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"tok0"}}'
    )
    start = json.loads(events[0][1])["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    assert json.loads(events[-2][1]) == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }
    assert events[-1][1] == '{"type":"message_stop"}'


def test_stream_parses_in_the_sdk(fake: FakeLLM) -> None:
    with client(fake).messages.stream(model=MODEL, max_tokens=64, messages=user("hi")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == TEXT
    assert final.usage.output_tokens == 20
    assert final.usage.input_tokens == 1


def test_thinking_block_comes_first(fake: FakeLLM, post: Any, sse: Any) -> None:
    fake.thinking_text = "think hard now"
    with client(fake).messages.stream(
        model=MODEL, max_tokens=64, messages=user("hi"), thinking={"type": "adaptive"}
    ) as stream:
        final = stream.get_final_message()

    thinking, text = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "think hard now"
    assert thinking.signature
    assert text.type == "text"
    assert text.text == TEXT
    assert final.usage.output_tokens == 20 + 3

    _, _, raw = post(
        fake.base_url + "/v1/messages",
        {
            "model": MODEL,
            "max_tokens": 64,
            "messages": user("hi"),
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "stream": True,
        },
    )
    deltas = [json.loads(d)["delta"] for n, d in sse(raw) if n == "content_block_delta"]
    assert [d["type"] for d in deltas[:4]] == ["thinking_delta"] * 3 + ["signature_delta"]
    assert deltas[3]["signature"] == thinking.signature
    body = client(fake).messages.create(
        model=MODEL, max_tokens=64, messages=user("hi"), thinking={"type": "adaptive"}
    )
    assert [b.type for b in body.content] == ["thinking", "text"]


def test_tool_use(fake: FakeLLM, post: Any, sse: Any) -> None:
    message = client(fake).messages.create(
        model=MODEL, max_tokens=64, messages=user("Call tool please"), tools=TOOLS
    )

    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_01")
    assert block.name == "get_weather"
    assert block.input == {"city": "fake", "unit": "C"}

    fake.n_chunks = 4
    _, _, raw = post(
        fake.base_url + "/v1/messages",
        {
            "model": MODEL,
            "max_tokens": 64,
            "messages": user("call tool"),
            "tools": TOOLS,
            "stream": True,
        },
    )
    events = sse(raw)
    start = json.loads(events[1][1])["content_block"]
    assert start["type"] == "tool_use"
    assert start["input"] == {}
    partial = [
        json.loads(d)["delta"]["partial_json"] for n, d in events if n == "content_block_delta"
    ]
    assert partial[0] == ""
    assert len(partial) == 1 + 4
    assert json.loads("".join(partial)) == {"city": "fake", "unit": "C"}
    assert json.loads(events[-2][1])["delta"]["stop_reason"] == "tool_use"

    with client(fake).messages.stream(
        model=MODEL, max_tokens=64, messages=user("call tool"), tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == {"city": "fake", "unit": "C"}


def test_tool_result_gets_a_text_answer(fake: FakeLLM) -> None:
    messages: list[Any] = [
        *user("call tool"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ]
    message = client(fake).messages.create(
        model=MODEL, max_tokens=64, messages=messages, tools=TOOLS
    )

    assert message.content[0].type == "text"
    assert message.usage.input_tokens == 3  # "call tool" + "sunny"


def test_count_tokens(fake: FakeLLM) -> None:
    counted = client(fake).messages.count_tokens(model=MODEL, system="a b", messages=user("c d e"))

    assert counted.input_tokens == 5
    assert fake.last_request.path == "/v1/messages/count_tokens"


def test_errors_use_anthropic_envelope(fake: FakeLLM, post: Any) -> None:
    fake.fail_next(529)
    with pytest.raises(anthropic.OverloadedError) as caught:
        client(fake).messages.create(model=MODEL, max_tokens=5, messages=user("x"))

    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert body["request_id"].startswith("req_011")
    assert caught.value.request_id == caught.value.response.headers["request-id"]

    status, _, raw = post(fake.base_url + "/v1/messages", {"model": MODEL, "messages": []})
    assert status == 400
    assert json.loads(raw)["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def test_api_key_knob_accepts_x_api_key_or_bearer(fake: FakeLLM, post: Any) -> None:
    fake.api_key = "sk-ant-upstream"
    with pytest.raises(anthropic.AuthenticationError):
        client(fake).messages.create(model=MODEL, max_tokens=5, messages=user("x"))

    message = client(fake, api_key="sk-ant-upstream").messages.create(
        model=MODEL, max_tokens=5, messages=user("x")
    )
    assert message.content
    assert fake.last_request.headers["authorization"] == "Bearer sk-ant-upstream"

    body = {"model": MODEL, "max_tokens": 5, "messages": user("x")}
    url = fake.base_url + "/v1/messages"
    assert post(url, body, {"x-api-key": "sk-ant-upstream"})[0] == 200
    status, _, raw = post(url, body, {"x-api-key": "sk-ant-other"})
    assert status == 401
    assert json.loads(raw)["error"]["type"] == "authentication_error"


def test_models_list_in_anthropic_shape(fake: FakeLLM) -> None:
    models = client(fake).models.list()

    assert [m.id for m in models] == fake.models


def test_a_thinking_tool_turn_needs_its_signed_thinking_back(fake: FakeLLM) -> None:
    """As the API: with thinking on, answering a tool call needs the call's turn to start with
    its thinking block, signature intact."""
    sdk = client(fake)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    asked = user("call tool please")
    called = sdk.messages.create(
        model=MODEL, max_tokens=2048, messages=asked, tools=TOOLS, thinking=thinking
    )
    assert [b.type for b in called.content] == ["thinking", "tool_use"]
    said = [b.model_dump(exclude_none=True) for b in called.content]
    result = {"type": "tool_result", "tool_use_id": said[1]["id"], "content": "sunny"}

    def answer(turn: list[Any]) -> Any:
        messages = [*asked, {"role": "assistant", "content": turn}]
        messages.append({"role": "user", "content": [result]})
        return sdk.messages.create(
            model=MODEL, max_tokens=2048, messages=messages, tools=TOOLS, thinking=thinking
        )

    assert answer(said).content[-1].type == "text"
    with pytest.raises(anthropic.BadRequestError) as dropped:
        answer(said[1:])
    assert "Expected `thinking` or `redacted_thinking`, but found `tool_use`" in str(dropped.value)
    with pytest.raises(anthropic.BadRequestError) as forged:
        answer([{**said[0], "signature": "forged"}, said[1]])
    assert "Invalid `signature` in `thinking` block" in str(forged.value)
