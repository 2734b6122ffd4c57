"""Anthropic Messages: usage (cache TTLs, web search) and stream reassembly."""

from __future__ import annotations

import orjson
import pytest

from irisgate.gateway.formats.anthropic_messages import (
    MessagesStreamAccumulator,
    count_tool_calls,
    usage_from_response,
)
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

# Extended thinking, then a tool call, with 5m and 1h cache writes; as the API frames it.
THINKING_TOOL_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929",'
    b'"id":"msg_01FqLx8f3TKmRZ7cCNPgJ3kE","type":"message","role":"assistant","content":[],'
    b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":24,'
    b'"cache_creation_input_tokens":3000,"cache_read_input_tokens":12000,'
    b'"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},'
    b'"output_tokens":3,"service_tier":"standard"}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking",'
    b'"thinking":"","signature":""}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta",'
    b'"thinking":"The user wants the weather."}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta",'
    b'"thinking":" I will call get_weather."}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta",'
    b'"signature":"EqQBCkgIARABGAIiQL2b+Zs4ZfKk6Fw=="}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta",'
    b'"text":"Let me check "}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta",'
    b'"text":"that for you \xe2\x98\x80."}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":1}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use",'
    b'"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{\\"location\\": \\"Par"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":"is, FR\\", \\"unit\\": \\"celsius\\"}"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":2}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
    b'"usage":{"output_tokens":89}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)

# Server-side web search: server_tool_use + its result block, then cited text.
WEB_SEARCH_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01Ws","type":"message",'
    b'"role":"assistant","model":"claude-opus-4-1-20250805","content":[],"stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":2679,"cache_creation_input_tokens":0,'
    b'"cache_read_input_tokens":0,"output_tokens":3,"service_tier":"standard"}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use",'
    b'"id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","name":"web_search","input":{}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{\\"query\\": \\"weather Paris\\"}"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":1,"content_block":'
    b'{"type":"web_search_tool_result","tool_use_id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB",'
    b'"content":[{"type":"web_search_result","title":"Paris weather","url":'
    b'"https://weather.example/paris","encrypted_content":"EqgfCioIARgBIiQ3","page_age":null}]}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":1}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":"",'
    b'"citations":[]}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"citations_delta",'
    b'"citation":{"type":"web_search_result_location","cited_text":"Sunny, 24C",'
    b'"url":"https://weather.example/paris","title":"Paris weather",'
    b'"encrypted_index":"Eo8BCioIAhgB"}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta",'
    b'"text":"It is sunny."}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":2}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"input_tokens":10682,"cache_creation_input_tokens":0,'
    b'"cache_read_input_tokens":0,"output_tokens":510,'
    b'"server_tool_use":{"web_search_requests":1}}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)


def run(stream: bytes, pieces: list[bytes] | None = None) -> StreamResult:
    parser = SSEParser()
    accumulator = MessagesStreamAccumulator()
    for piece in pieces if pieces is not None else [stream]:
        for event in parser.feed(piece):
            accumulator.feed_event(event.event, event.data)
    return accumulator.result()


def test_usage_from_response_with_ttl_breakdown() -> None:
    body = orjson.loads(
        b'{"id":"msg_01","type":"message","role":"assistant","model":"claude-opus-4-1-20250805",'
        b'"content":[{"type":"text","text":"Hi"},{"type":"tool_use","id":"toolu_1","name":"f",'
        b'"input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":50,'
        b'"cache_creation_input_tokens":1500,"cache_read_input_tokens":20000,"cache_creation":'
        b'{"ephemeral_5m_input_tokens":500,"ephemeral_1h_input_tokens":1000},"output_tokens":300,'
        b'"output_tokens_details":{"thinking_tokens":120},'
        b'"server_tool_use":{"web_search_requests":3,"web_fetch_requests":1},'
        b'"service_tier":"standard"}}'
    )
    assert usage_from_response(body) == Usage(
        input_tokens=50 + 20000 + 1500,
        output_tokens=300,
        cache_read_tokens=20000,
        cache_write_5m_tokens=500,
        cache_write_1h_tokens=1000,
        reasoning_tokens=120,
        web_search_count=3,
    )
    assert count_tool_calls(body) == 1


def test_usage_without_breakdown_counts_writes_as_5m() -> None:
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 700, "output_tokens": 5}
    assert usage_from_response({"usage": usage}) == Usage(
        input_tokens=710, output_tokens=5, cache_write_5m_tokens=700
    )


@pytest.mark.parametrize(
    ("usage", "five_m", "one_h"),
    [
        (
            {"cache_creation": {"ephemeral_5m_input_tokens": 4, "ephemeral_1h_input_tokens": 6}},
            4,
            6,
        ),
        (
            {
                "cache_creation_input_tokens": 20,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 6},
            },
            14,
            6,
        ),
        ({"cache_creation_input_tokens": None, "cache_creation": None}, 0, 0),
    ],
)
def test_cache_write_split_is_consistent(usage: dict[str, object], five_m: int, one_h: int) -> None:
    parsed = usage_from_response({"usage": usage})
    assert (parsed.cache_write_5m_tokens, parsed.cache_write_1h_tokens) == (five_m, one_h)
    assert parsed.input_tokens == five_m + one_h


def test_count_tokens_answer_has_no_usage() -> None:
    assert usage_from_response({"input_tokens": 2095}).is_empty()


def test_thinking_and_tool_use_stream() -> None:
    result = run(THINKING_TOOL_STREAM)
    assert result.finished
    assert result.tool_calls == 1
    assert result.usage == Usage(
        input_tokens=24 + 12000 + 3000,
        output_tokens=89,
        cache_read_tokens=12000,
        cache_write_5m_tokens=1000,
        cache_write_1h_tokens=2000,
    )
    assert result.response == {
        "model": "claude-sonnet-4-5-20250929",
        "id": "msg_01FqLx8f3TKmRZ7cCNPgJ3kE",
        "type": "message",
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": "The user wants the weather. I will call get_weather.",
                "signature": "EqQBCkgIARABGAIiQL2b+Zs4ZfKk6Fw==",
            },
            {"type": "text", "text": "Let me check that for you \u2600."},
            {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {"location": "Paris, FR", "unit": "celsius"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 24,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 12000,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 1000,
                "ephemeral_1h_input_tokens": 2000,
            },
            "output_tokens": 89,
            "service_tier": "standard",
        },
    }
    assert usage_from_response(result.response) == result.usage


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_split_gives_the_same_result(ending: bytes) -> None:
    reference = run(THINKING_TOOL_STREAM)
    stream = THINKING_TOOL_STREAM.replace(b"\n", ending)
    for k in range(len(stream) + 1):
        assert run(stream, [stream[:k], stream[k:]]) == reference, k


def test_server_web_search_stream() -> None:
    result = run(WEB_SEARCH_STREAM)
    assert result.finished
    assert result.tool_calls == 0  # server tools are run by Anthropic, not the client
    # message_delta's input-side counts override message_start's
    assert result.usage == Usage(input_tokens=10682, output_tokens=510, web_search_count=1)
    server_use, search_result, text = result.response["content"]
    assert server_use["input"] == {"query": "weather Paris"}
    assert search_result["type"] == "web_search_tool_result"
    assert search_result["content"][0]["url"] == "https://weather.example/paris"
    assert text["text"] == "It is sunny."
    assert text["citations"][0]["cited_text"] == "Sunny, 24C"


def test_interrupted_stream_keeps_partial_content_and_usage() -> None:
    cut = THINKING_TOOL_STREAM.index(
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":2}'
    )
    cut = THINKING_TOOL_STREAM.rindex(b"event: content_block_delta", 0, cut)  # before last fragment
    result = run(THINKING_TOOL_STREAM[:cut] + b'event: content_block_delta\ndata: {"ty')
    assert not result.finished
    assert result.tool_calls == 1
    assert result.response["stop_reason"] is None
    tool_use = result.response["content"][2]
    assert tool_use["input"] == '{"location": "Par'  # cut mid-JSON: the raw partial text
    assert result.response["content"][0]["signature"] == "EqQBCkgIARABGAIiQL2b+Zs4ZfKk6Fw=="
    assert result.usage == Usage(
        input_tokens=15024,
        output_tokens=3,
        cache_read_tokens=12000,
        cache_write_5m_tokens=1000,
        cache_write_1h_tokens=2000,
    )


def test_error_event_mid_stream() -> None:
    cut = THINKING_TOOL_STREAM.index(b"event: content_block_start")
    stream = (
        THINKING_TOOL_STREAM[:cut]
        + b"event: error\n"
        + b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    result = run(stream)
    assert not result.finished
    assert result.response["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert result.response["content"] == []
    assert result.usage.input_tokens == 15024


def test_events_without_start_and_malformed_payloads() -> None:
    accumulator = MessagesStreamAccumulator()
    accumulator.feed_event(
        "content_block_delta",
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"orphan"}}',
    )
    accumulator.feed_event("message_delta", b"not json")
    accumulator.feed_event("ping", b"ignored without parsing")
    assert accumulator.malformed_events == 1
    result = accumulator.result()
    assert result.response["content"] == [{"text": "orphan"}]
    assert result.response["role"] == "assistant"
    assert result.usage.is_empty()


def test_output_is_reported_only_by_message_delta() -> None:
    complete = run(THINKING_TOOL_STREAM)
    assert (complete.input_reported, complete.output_reported) == (True, True)
    before_delta = THINKING_TOOL_STREAM[: THINKING_TOOL_STREAM.index(b"event: message_delta")]
    cut = run(before_delta)
    assert (cut.input_reported, cut.output_reported) == (True, False)
    nothing = run(b"")
    assert (nothing.input_reported, nothing.output_reported) == (False, False)
