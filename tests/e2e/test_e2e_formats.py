"""The three API formats end to end, through the official SDKs: plain and streamed answers
arrive intact, the provider key is injected, and usage and cost are recorded."""

from __future__ import annotations

from typing import Any

import anthropic
import genai_prices
import openai
import pytest
from conftest import (
    ALICE_IP,
    ANTHROPIC_KEY,
    BOB_IP,
    OPENAI_KEY,
    anthropic_client,
    openai_client,
    wait_for_record,
)

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

EXPECTED_TEXT = " ".join(f"tok{i}" for i in range(20))


def nanodollars(basis: str, model: str, **usage: int) -> int:
    price = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=basis)
    return int(price.total_price * 1_000_000_000)


def test_openai_chat_plain(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = openai_client(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "say something nice"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == EXPECTED_TEXT
    assert completion.usage is not None and completion.usage.completion_tokens == 20
    upstream = fake_llm.last_request
    assert upstream is not None
    assert upstream.path == "/v1/chat/completions"
    assert upstream.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert upstream.headers["x-provider-header"] == "from-provider"
    record = wait_for_record(gateway, raw.headers["x-irisgate-request-id"])
    assert record["login_name"] == "alice@example.com"
    assert record["provider"] == "openai" and record["model"] == "gpt-4o-mini"
    assert record["api_format"] == "openai_chat" and record["status"] == 200
    assert record["input_tokens"] == 3 and record["output_tokens"] == 20
    expected = nanodollars("openai", "gpt-4o-mini", input_tokens=3, output_tokens=20)
    assert record["cost_nanodollars"] == expected
    assert record["cost_basis"] == "openai/gpt-4o-mini"


def test_openai_chat_stream(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = openai_client(gateway)
    fake_llm.cached_tokens = 2
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
    ) as response:
        request_id = response.headers["x-irisgate-request-id"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED_TEXT
    assert all(c.usage is None for c in chunks), "the client did not ask for usage"
    record = wait_for_record(gateway, request_id)
    assert record["stream"] is True
    assert record["input_tokens"] == 4 and record["cache_read_tokens"] == 2
    assert record["output_tokens"] == 20
    body = record["response_body"]
    assert EXPECTED_TEXT in body and '"object":"chat.completion"' in body.replace(" ", "")


def test_openai_responses_plain_and_stream(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = openai_client(gateway)
    fake_llm.reasoning_tokens = 5
    response = client.responses.create(model="gpt-5-mini", input="hello world")
    assert response.output_text == EXPECTED_TEXT
    events = list(client.responses.create(model="gpt-5-mini", input="hello again", stream=True))
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == EXPECTED_TEXT
    assert fake_llm.last_request is not None
    assert fake_llm.last_request.path == "/v1/responses"


def test_responses_usage_recorded(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = openai_client(gateway)
    fake_llm.reasoning_tokens = 7
    with client.responses.with_streaming_response.create(
        model="gpt-5-mini", input="count my reasoning", stream=True
    ) as response:
        request_id = response.headers["x-irisgate-request-id"]
        list(response.parse())
    record = wait_for_record(gateway, request_id)
    assert record["api_format"] == "openai_responses"
    assert record["reasoning_tokens"] == 7
    assert record["output_tokens"] == 27
    assert record["cost_nanodollars"] > 0


def test_anthropic_messages_plain(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = anthropic_client(gateway)
    fake_llm.cached_tokens = 100
    fake_llm.cache_write_1h_tokens = 50
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "hello claude"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream is not None
    assert upstream.headers["x-api-key"] == ANTHROPIC_KEY
    assert "authorization" not in upstream.headers, "the client's credential must not pass"
    record = wait_for_record(gateway, raw.headers["x-irisgate-request-id"])
    assert record["input_tokens"] == 2 + 100 + 50
    assert record["cache_read_tokens"] == 100 and record["cache_write_1h_tokens"] == 50
    expected = nanodollars(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=152,
        output_tokens=20,
        cache_read_tokens=100,
        cache_write_tokens=50,
        cache_write_1h_tokens=50,
    )
    assert record["cost_nanodollars"] == expected


def test_anthropic_stream_with_thinking_and_tools(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    client = anthropic_client(gateway)
    tools: list[Any] = [
        {
            "name": "lookup",
            "description": "look something up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=tools,
        messages=[{"role": "user", "content": "please call tool lookup"}],
    ) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-irisgate-request-id"]
    kinds = [block.type for block in final.content]
    assert "thinking" in kinds and "tool_use" in kinds
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.name == "lookup" and tool.input == {"q": "fake"}
    record = wait_for_record(gateway, request_id)
    assert record["tool_calls"] == 1
    assert record["stream"] is True and record["output_tokens"] > 0
    assert '"tool_use"' in record["response_body"]


def test_anthropic_count_tokens_is_not_billed(gateway: IrisgateServer) -> None:
    client = anthropic_client(gateway)
    raw = client.messages.with_raw_response.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "one two three"}]
    )
    assert raw.parse().input_tokens == 3
    record = wait_for_record(gateway, raw.headers["x-irisgate-request-id"])
    assert record["path"] == "/v1/messages/count_tokens"
    assert record["input_tokens"] == 0 and record["cost_nanodollars"] == 0


def test_openai_compatible_bare_path_and_unpriced_model(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """Self-hosted servers speak OpenAI chat at /chat/completions; their models are unpriced."""
    http = openai_client(gateway, BOB_IP)._client
    resp = http.post(
        gateway.url + "/chat/completions",
        json={"model": "llama-local", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 200
    assert fake_llm.last_request is not None
    assert fake_llm.last_request.path == "/chat/completions"
    assert "authorization" not in fake_llm.last_request.headers  # no key configured
    record = wait_for_record(gateway, resp.headers["x-irisgate-request-id"])
    assert record["provider"] == "local" and record["cost_nanodollars"] is None
    assert record["output_tokens"] == 20


def test_grant_add_headers_reach_upstream(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = anthropic_client(gateway, BOB_IP)
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert fake_llm.last_request is not None
    assert fake_llm.last_request.headers["x-team"] == "eng"


@pytest.mark.parametrize("ip", [ALICE_IP])
def test_provider_qualified_model(gateway: IrisgateServer, fake_llm: FakeLLM, ip: str) -> None:
    client = openai_client(gateway, ip)
    completion = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "qualified"}]
    )
    assert completion.choices[0].message.content == EXPECTED_TEXT
    assert fake_llm.last_request is not None and fake_llm.last_request.json is not None
    assert fake_llm.last_request.json["model"] == "gpt-4o-mini"


def test_errors_in_each_format(gateway: IrisgateServer) -> None:
    client = anthropic_client(gateway, BOB_IP)
    with pytest.raises(anthropic.NotFoundError) as wrong_api:
        client.messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert "not available through the Anthropic Messages API" in str(wrong_api.value)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(
            model="claude-nonexistent", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "model 'claude-nonexistent' is not served by any provider",
        },
    }
    with pytest.raises(openai.PermissionDeniedError) as denied:
        openai_client(gateway, BOB_IP).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert denied.value.body == {
        "message": "access denied: model 'gpt-4o-mini' is not granted to you",
        "type": "permission_error",
        "param": None,
        "code": "model_not_granted",
    }
