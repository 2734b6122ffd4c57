"""Streams that end without the upstream's usage still record tokens and cost: estimated.

OpenAI streams report usage only in their last event and Anthropic reports the output count
only in `message_delta`, so a stream the client leaves (or the upstream cuts) before that would
record nothing. irisgate then counts the tokens with a real tokenizer (o200k_base for the
gpt-4o family), prices them like reported usage and marks the record `usage_estimated`.

Expected counts: the prompt "hello there world" is 3 o200k_base tokens, plus 3 for its one
message and 3 for the prompt (`irisgate.usage.estimate`): 9. The fake's answer pieces are
"tok0", " tok1", ... and every piece is 2 o200k_base tokens ("tok", digits; digits come in
groups of up to 3, so pieces up to tok999 are 2 tokens).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
from conftest import ALICE_IP, anthropic_client, http_from, openai_client, wait_for_record

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

PROMPT = [{"role": "user", "content": "hello there world"}]
ESTIMATED_PROMPT = 3 + 3 + 3  # text tokens + one message's framing + the prompt's framing


@pytest.fixture
def slow_stream(fake_llm: FakeLLM) -> FakeLLM:
    fake_llm.n_chunks = 3000
    fake_llm.chunk_delay = 0.02  # a 60 s answer: the client leaves long before the end
    return fake_llm


def relayed_pieces(text: str) -> int:
    """How many of the fake's "tokN" pieces `text` holds."""
    return len(text.split())


def assert_estimated(record: dict[str, Any], pieces: int) -> None:
    assert record["usage_estimated"] is True
    assert pieces >= 3
    assert record["output_tokens"] == 2 * pieces  # "tokN" is two tokens
    assert record["cost_nanodollars"] > 0
    assert record["cost_basis"]


def test_chat_stream_left_by_the_client_records_estimated_usage_and_cost(
    gateway: IrisgateServer, slow_stream: FakeLLM
) -> None:
    client = openai_client(gateway)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)  # type: ignore[arg-type]
    request_id = stream.response.headers["x-irisgate-request-id"]
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
            if seen == 5:
                break
    stream.close()
    assert slow_stream.wait_for(lambda: slow_stream.cancelled_streams == 1)

    record = wait_for_record(gateway, request_id)
    assert record["cancelled"] is True
    assert record["input_tokens"] == ESTIMATED_PROMPT
    text = json.loads(record["response_body"])["choices"][0]["message"]["content"]
    assert_estimated(record, relayed_pieces(text))
    listed = wait_for_list(gateway, lambda r: r["request_id"] == request_id)
    assert listed[0]["usage_estimated"] is True  # the list shows the mark too


def test_responses_stream_left_by_the_client_records_estimated_usage(
    gateway: IrisgateServer, slow_stream: FakeLLM
) -> None:
    client = openai_client(gateway)
    stream = client.responses.create(model="gpt-4o-mini", input="hello there world", stream=True)
    request_id = stream.response.headers["x-irisgate-request-id"]
    deltas = 0
    for event in stream:
        if event.type == "response.output_text.delta":
            deltas += 1
            if deltas == 5:
                break
    stream.close()
    assert slow_stream.wait_for(lambda: slow_stream.cancelled_streams == 1)

    record = wait_for_record(gateway, request_id)
    assert record["cancelled"] is True
    assert record["input_tokens"] == 3 + 1 * 3 + 3  # a string input is one item
    output = json.loads(record["response_body"])["output"]
    assert_estimated(record, relayed_pieces(output[0]["content"][0]["text"]))


def test_anthropic_stream_cut_before_message_delta_keeps_its_real_input_count(
    gateway: IrisgateServer, slow_stream: FakeLLM
) -> None:
    client = anthropic_client(gateway)
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=PROMPT,  # type: ignore[arg-type]
    ) as stream:
        request_id = stream.response.headers["x-irisgate-request-id"]
        seen = 0
        for event in stream:
            if event.type == "content_block_delta":
                seen += 1
                if seen == 4:
                    break
    assert slow_stream.wait_for(lambda: slow_stream.cancelled_streams == 1)

    record = wait_for_record(gateway, request_id)
    assert record["input_tokens"] == 3  # message_start's own count (the fake counts words)
    text = json.loads(record["response_body"])["content"][0]["text"]
    assert_estimated(record, relayed_pieces(text))


def test_upstream_cut_mid_stream_is_estimated_too(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.drop_after_events = 6  # the role delta and 5 pieces, then the connection drops
    client = openai_client(gateway)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)  # type: ignore[arg-type]
    request_id = stream.response.headers["x-irisgate-request-id"]
    with pytest.raises(openai.APIConnectionError):
        list(stream)

    record = wait_for_record(gateway, request_id)
    assert record["cancelled"] is False
    assert "broke mid-answer" in record["error"]
    assert record["input_tokens"] == ESTIMATED_PROMPT
    assert_estimated(record, 5)


def test_completed_streams_record_the_upstreams_usage_unestimated(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    openai_c, anthropic_c = openai_client(gateway), anthropic_client(gateway)
    chat = openai_c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
    )
    chat_id = chat.headers["x-irisgate-request-id"]
    assert len([c for c in chat.parse() if c.choices and c.choices[0].delta.content]) == 20
    with anthropic_c.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=PROMPT,  # type: ignore[arg-type]
    ) as stream:
        message_id = stream.response.headers["x-irisgate-request-id"]
        stream.get_final_text()

    for request_id in (chat_id, message_id):
        record = wait_for_record(gateway, request_id)
        assert record["usage_estimated"] is False
        assert (record["input_tokens"], record["output_tokens"]) == (3, 20)  # the fake's counts


def test_a_client_gone_before_any_answer_costs_nothing(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """No upstream answer at all: nothing was generated, so nothing is estimated."""
    fake_llm.first_byte_delay = 60  # the client leaves first, however busy the machine
    client = openai_client(gateway, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)  # type: ignore[arg-type]
    records = wait_for_list(gateway, lambda r: r["cancelled"] and r["status"] == 0)
    assert records[0]["usage_estimated"] is False
    assert records[0]["input_tokens"] == 0
    assert records[0]["cost_nanodollars"] == 0


def wait_for_list(
    gateway: IrisgateServer, match: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The newest records `match` accepts, polling the list as the admin until there is one."""
    with http_from(ALICE_IP, gateway.url) as client:
        deadline = time.monotonic() + 30  # only a stuck test waits this long
        while time.monotonic() < deadline:
            rows = client.get("/api/requests", params={"limit": 5}).json()["requests"]
            found = [r for r in rows if match(r)]
            if found:
                return found
            time.sleep(0.05)
    raise AssertionError("no matching record")
