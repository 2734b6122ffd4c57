"""Bedrock invoke and converse answers: usage from bodies, from Bedrock's token count headers
and from event streams read on the side (Anthropic and other vendors' events in base64
chunks, invocation metrics, converse metadata)."""

from __future__ import annotations

import base64

import orjson

from irisgate.gateway.capture import read_answer
from irisgate.gateway.formats import bedrock
from irisgate.gateway.formats.cloud import BEDROCK_CONVERSE, BEDROCK_INVOKE, GEMINI
from irisgate.usage.tokens import Usage
from irisgate.wire.eventstream import encode_message

EVENTSTREAM = "application/vnd.amazon.eventstream"


def event(kind: str, payload: object, message_type: str = "event") -> bytes:
    headers = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": message_type,
    }
    return encode_message(headers, orjson.dumps(payload))  # type: ignore[arg-type]


def chunk(inner: dict[str, object]) -> bytes:
    return event("chunk", {"bytes": base64.b64encode(orjson.dumps(inner)).decode(), "p": "ab"})


ANTHROPIC_EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bdrk_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5-20251001",
            "content": [],
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 30, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
    {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 9},
    },
]


def test_invoke_stream_reassembled_from_base64_chunks() -> None:
    raw = b"".join(chunk(e) for e in ANTHROPIC_EVENTS)
    outcome = BEDROCK_INVOKE.stream_result(EVENTSTREAM, raw)
    assert outcome is not None and outcome.finished
    assert outcome.usage == Usage(input_tokens=42, output_tokens=9, cache_read_tokens=30)
    assert outcome.response["content"] == [{"type": "text", "text": "Hi there"}]
    assert BEDROCK_INVOKE.stream_result("application/json", raw) is None


def test_invocation_metrics_when_the_vendor_events_have_no_usage() -> None:
    events = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 7,
                "outputTokenCount": 3,
                "cacheReadInputTokenCount": 2,
            },
        },
    ]
    outcome = bedrock.invoke_stream_result(b"".join(chunk(e) for e in events))
    assert outcome.usage == Usage(input_tokens=9, output_tokens=3, cache_read_tokens=2)


def test_cut_invoke_stream_keeps_partial_usage_and_is_unfinished() -> None:
    raw = b"".join(chunk(e) for e in ANTHROPIC_EVENTS[:3])
    outcome = bedrock.invoke_stream_result(raw + chunk(ANTHROPIC_EVENTS[3])[:30])
    assert not outcome.finished
    assert outcome.usage.input_tokens == 42
    assert outcome.response["content"][0]["text"] == "Hi "


def test_exception_event_is_kept() -> None:
    raw = chunk(ANTHROPIC_EVENTS[0]) + event(
        "throttlingException", {"message": "slow down"}, message_type="exception"
    )
    outcome = bedrock.invoke_stream_result(raw)
    assert "error" in outcome.response


def test_invoke_bodies_of_other_vendors() -> None:
    nova = {"output": {"message": {}}, "usage": {"inputTokens": 5, "outputTokens": 7}}
    llama = {"generation": "hi", "prompt_token_count": 11, "generation_token_count": 3}
    assert BEDROCK_INVOKE.usage_from_body(nova)[0] == Usage(input_tokens=5, output_tokens=7)
    assert BEDROCK_INVOKE.usage_from_body(llama)[0] == Usage(input_tokens=11, output_tokens=3)
    assert BEDROCK_INVOKE.usage_from_body({"outputs": [{"text": "x"}]})[0] == Usage()


def test_converse_body_usage_and_tool_calls() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "ok"},
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 10,
            "outputTokens": 5,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 20,
            "totalTokens": 135,
        },
    }
    usage, tools = BEDROCK_CONVERSE.usage_from_body(body)
    assert usage == Usage(
        input_tokens=130, output_tokens=5, cache_read_tokens=100, cache_write_5m_tokens=20
    )
    assert tools == 1


def test_converse_stream_reassembled() -> None:
    raw = b"".join(
        [
            event("messageStart", {"p": "a", "role": "assistant"}),
            event(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}, "p": "b"}
            ),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}, "p": "c"}),
            event("contentBlockStop", {"contentBlockIndex": 0, "p": "d"}),
            event(
                "contentBlockStart",
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}},
            ),
            event(
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a":'}}},
            ),
            event(
                "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}
            ),
            event("messageStop", {"p": "e", "stopReason": "tool_use"}),
            event(
                "metadata",
                {"usage": {"inputTokens": 4, "outputTokens": 6}, "metrics": {"latencyMs": 9}},
            ),
        ]
    )
    outcome = BEDROCK_CONVERSE.stream_result(EVENTSTREAM, raw)
    assert outcome is not None and outcome.finished
    assert outcome.usage == Usage(input_tokens=4, output_tokens=6)
    content = outcome.response["output"]["message"]["content"]
    assert content == [
        {"text": "Hello"},
        {"toolUse": {"toolUseId": "t", "name": "f", "input": {"a": 1}}},
    ]
    assert outcome.tool_calls == 1
    assert outcome.response["stopReason"] == "tool_use"


MISTRAL_HEADERS = {
    "content-type": "application/json",
    "x-amzn-bedrock-invocation-latency": "311",
    "x-amzn-bedrock-input-token-count": "14",
    "x-amzn-bedrock-output-token-count": "36",
}


def test_usage_from_headers_when_the_body_has_none() -> None:
    body = orjson.dumps({"outputs": [{"text": "Bonjour", "stop_reason": "stop"}]})
    answer = read_answer(BEDROCK_INVOKE, 200, MISTRAL_HEADERS, body)
    usage, stored, tools = answer.usage, answer.body, answer.tool_calls
    assert usage == Usage(input_tokens=14, output_tokens=36)
    assert stored == body and tools == 0


def test_cache_headers_add_to_the_prompt() -> None:
    headers = {
        bedrock.INPUT_HEADER: "5",
        bedrock.OUTPUT_HEADER: "7",
        bedrock.CACHE_READ_HEADER: "100",
        bedrock.CACHE_WRITE_HEADER: "20",
    }
    assert bedrock.header_usage(headers) == Usage(
        input_tokens=125, output_tokens=7, cache_read_tokens=100, cache_write_5m_tokens=20
    )
    assert bedrock.header_usage({"content-type": "application/json"}).is_empty()
    garbled = {bedrock.INPUT_HEADER: "x1", bedrock.OUTPUT_HEADER: "-3"}
    assert bedrock.header_usage(garbled) == Usage()


def test_the_body_wins_over_headers() -> None:
    """Anthropic bodies report cache TTLs the headers cannot: the body is what is recorded."""
    body = orjson.dumps(
        {
            "type": "message",
            "content": [{"type": "text", "text": "hi"}],
            "usage": {
                "input_tokens": 3,
                "output_tokens": 20,
                "cache_creation": {"ephemeral_1h_input_tokens": 8},
                "cache_creation_input_tokens": 8,
            },
        }
    )
    headers = {
        "content-type": "application/json",
        bedrock.INPUT_HEADER: "3",
        bedrock.OUTPUT_HEADER: "20",
        bedrock.CACHE_WRITE_HEADER: "8",
    }
    usage = read_answer(BEDROCK_INVOKE, 200, headers, body).usage
    assert usage == Usage(input_tokens=11, output_tokens=20, cache_write_1h_tokens=8)


def test_headers_of_failed_answers_and_other_formats_are_ignored() -> None:
    error = b'{"message":"Too many requests"}'
    assert read_answer(BEDROCK_INVOKE, 429, MISTRAL_HEADERS, error).usage.is_empty()
    gemini = read_answer(GEMINI, 200, MISTRAL_HEADERS, b'{"candidates": []}')
    assert gemini.usage.is_empty()


def test_mistral_stream_joined_with_metrics_usage() -> None:
    pieces = ["Bon", "jour", ""]
    raw = b"".join(
        chunk(
            {"outputs": [{"text": p, "stop_reason": "stop" if i == 2 else None}]}
            | (
                {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 4, "outputTokenCount": 2}}
                if i == 2
                else {}
            )
        )
        for i, p in enumerate(pieces)
    )
    outcome = BEDROCK_INVOKE.stream_result(EVENTSTREAM, raw)
    assert outcome is not None and outcome.finished
    assert outcome.usage == Usage(input_tokens=4, output_tokens=2)
    assert outcome.response["outputs"] == [{"text": "Bonjour", "stop_reason": "stop"}]
    cut = bedrock.invoke_stream_result(raw[: len(chunk({"outputs": [{"text": "Bon"}]})) + 5])
    assert not cut.finished and cut.usage.is_empty()


def test_other_vendor_chunks_kept_in_order() -> None:
    events = [
        {"generation": "Hi", "prompt_token_count": 6, "generation_token_count": 1},
        {
            "generation": "!",
            "generation_token_count": 2,
            "stop_reason": "stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 6, "outputTokenCount": 2},
        },
    ]
    outcome = bedrock.invoke_stream_result(b"".join(chunk(e) for e in events))
    assert outcome.finished
    assert outcome.response["chunks"] == events
    assert outcome.usage == Usage(input_tokens=6, output_tokens=2)


def test_chunk_payload_in_another_member_order_or_escaped() -> None:
    """Payloads the sliced fast path cannot take are read through JSON, to the same events."""
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    second = base64.b64encode(orjson.dumps(ANTHROPIC_EVENTS[2])).decode()
    third = base64.b64encode(orjson.dumps(ANTHROPIC_EVENTS[3])).decode()
    reordered = orjson.dumps({"p": "xyz", "bytes": second})
    escaped = b'{"bytes":"\\u00' + b"%02x" % ord(third[0]) + third[1:].encode() + b'"}'
    assert orjson.loads(escaped)["bytes"] == third
    raw = (
        chunk(ANTHROPIC_EVENTS[1])
        + encode_message(headers, reordered)  # type: ignore[arg-type]
        + encode_message(headers, escaped)  # type: ignore[arg-type]
    )
    outcome = bedrock.invoke_stream_result(raw)
    assert outcome.response["content"] == [{"type": "text", "text": "Hi there"}]
