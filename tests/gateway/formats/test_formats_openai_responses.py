"""OpenAI Responses API: usage and stream reassembly, also of cut streams."""

from __future__ import annotations

from typing import Any

import orjson

from irisgate.gateway.formats.openai_responses import (
    ResponsesStreamAccumulator,
    count_tool_calls,
    usage_from_response,
)
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser


def sse(events: list[dict[str, Any]]) -> bytes:
    """Events framed as OpenAI sends them: `event:` line, compact JSON `data:` line."""
    out = b""
    for number, event in enumerate(events):
        framed = {"type": event["type"], "sequence_number": number, **event}
        out += b"event: " + framed["type"].encode() + b"\ndata: " + orjson.dumps(framed) + b"\n\n"
    return out


SKELETON = {
    "id": "resp_68a1c0ffee",
    "object": "response",
    "created_at": 1755430000,
    "status": "in_progress",
    "error": None,
    "incomplete_details": None,
    "model": "gpt-5-mini-2025-08-07",
    "output": [],
    "parallel_tool_calls": True,
    "tools": [{"type": "web_search"}],
    "usage": None,
}
REASONING_DONE = {
    "id": "rs_1",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "Checking the weather"}],
}
SEARCH_DONE = {
    "id": "ws_1",
    "type": "web_search_call",
    "status": "completed",
    "action": {"type": "search", "query": "weather paris today"},
}
MESSAGE_DONE = {
    "id": "msg_1",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "It is sunny in Paris."}
    ],
}
USAGE = {
    "input_tokens": 2800,
    "input_tokens_details": {"cached_tokens": 2048},
    "output_tokens": 420,
    "output_tokens_details": {"reasoning_tokens": 256},
    "total_tokens": 3220,
}
FINAL = {
    **SKELETON,
    "status": "completed",
    "output": [REASONING_DONE, SEARCH_DONE, MESSAGE_DONE],
    "usage": USAGE,
}
TEXT_PART = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}

SEARCH_STREAM = sse(
    [
        {"type": "response.created", "response": SKELETON},
        {"type": "response.in_progress", "response": SKELETON},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": []},
        },
        {
            "type": "response.reasoning_summary_part.added",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        *(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": "rs_1",
                "output_index": 0,
                "summary_index": 0,
                "delta": delta,
            }
            for delta in ("Checking", " the weather")
        ),
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING_DONE},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**SEARCH_DONE, "status": "in_progress"},
        },
        {"type": "response.web_search_call.in_progress", "output_index": 1, "item_id": "ws_1"},
        {"type": "response.web_search_call.searching", "output_index": 1, "item_id": "ws_1"},
        {"type": "response.web_search_call.completed", "output_index": 1, "item_id": "ws_1"},
        {"type": "response.output_item.done", "output_index": 1, "item": SEARCH_DONE},
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {**MESSAGE_DONE, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 2,
            "content_index": 0,
            "part": TEXT_PART,
        },
        *(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 2,
                "content_index": 0,
                "delta": delta,
                "logprobs": [],
            }
            for delta in ("It is", " sunny", " in Paris", ".")
        ),
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 2,
            "content_index": 0,
            "text": "It is sunny in Paris.",
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": "msg_1",
            "output_index": 2,
            "content_index": 0,
            "part": MESSAGE_DONE["content"][0],
        },
        {"type": "response.output_item.done", "output_index": 2, "item": MESSAGE_DONE},
        {"type": "response.completed", "response": FINAL},
    ]
)

CALL_DONE = {
    "id": "fc_1",
    "type": "function_call",
    "status": "completed",
    "arguments": '{"city":"Paris","unit":"c"}',
    "call_id": "call_Weather1",
    "name": "get_weather",
}
CALL_STREAM = sse(
    [
        {"type": "response.created", "response": SKELETON},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**CALL_DONE, "status": "in_progress", "arguments": ""},
        },
        *(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_1",
                "output_index": 0,
                "delta": delta,
            }
            for delta in ('{"city":', '"Paris",', '"unit":"c"}')
        ),
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 0,
            "arguments": CALL_DONE["arguments"],
        },
        {"type": "response.output_item.done", "output_index": 0, "item": CALL_DONE},
        {
            "type": "response.completed",
            "response": {
                **SKELETON,
                "status": "completed",
                "output": [CALL_DONE],
                "usage": {**USAGE, "output_tokens": 18, "output_tokens_details": {}},
            },
        },
    ]
)


def run(stream: bytes, pieces: list[bytes] | None = None) -> StreamResult:
    parser = SSEParser()
    accumulator = ResponsesStreamAccumulator()
    for piece in pieces if pieces is not None else [stream]:
        for event in parser.feed(piece):
            accumulator.feed_event(event.event, event.data)
    return accumulator.result()


def test_usage_from_response_body() -> None:
    assert usage_from_response(FINAL) == Usage(
        input_tokens=2800,
        output_tokens=420,
        cache_read_tokens=2048,
        reasoning_tokens=256,
        web_search_count=1,
    )
    assert usage_from_response({"object": "response"}) == Usage()
    assert count_tool_calls(FINAL) == 0


def test_completed_stream_uses_the_final_response() -> None:
    result = run(SEARCH_STREAM)
    assert result.finished
    assert result.response == FINAL
    assert result.usage.web_search_count == 1
    assert result.usage.cache_read_tokens == 2048
    assert result.tool_calls == 0


def test_every_split_gives_the_same_result() -> None:
    stream = SEARCH_STREAM.replace(b"\n", b"\r\n")
    reference = run(stream)
    assert reference == run(SEARCH_STREAM)
    for k in range(len(stream) + 1):
        assert run(stream, [stream[:k], stream[k:]]) == reference


def test_function_call_stream_counts_tool_calls() -> None:
    result = run(CALL_STREAM)
    assert result.finished
    assert result.tool_calls == 1
    assert result.response["output"] == [CALL_DONE]
    assert result.usage == Usage(input_tokens=2800, output_tokens=18, cache_read_tokens=2048)


def test_cut_stream_is_rebuilt_from_item_events() -> None:
    cut = SEARCH_STREAM.index(b'"delta":" in Paris"')
    result = run(SEARCH_STREAM[:cut])
    assert not result.finished
    assert result.usage == Usage(web_search_count=1)
    assert result.response["id"] == "resp_68a1c0ffee"
    assert result.response["status"] == "in_progress"
    reasoning, search, message = result.response["output"]
    assert reasoning == REASONING_DONE
    assert search == SEARCH_DONE
    assert message["id"] == "msg_1"
    assert message["status"] == "in_progress"
    assert message["content"] == [{**TEXT_PART, "text": "It is sunny"}]


def test_cut_stream_rebuilds_summary_and_arguments() -> None:
    cut = SEARCH_STREAM.index(b'"delta":" the weather"')
    result = run(SEARCH_STREAM[:cut])
    assert result.response["output"] == [
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Checking"}],
        }
    ]
    cut = CALL_STREAM.index(b'"delta":"\\"unit\\":\\"c\\"}"')
    result = run(CALL_STREAM[:cut])
    assert not result.finished
    assert result.tool_calls == 1
    assert result.response["output"][0]["arguments"] == '{"city":"Paris",'


def test_deltas_without_item_events_still_rebuild_text() -> None:
    accumulator = ResponsesStreamAccumulator()
    for delta in ("Hel", "lo"):
        accumulator.feed_event(
            "response.output_text.delta",
            orjson.dumps(
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_9",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": delta,
                }
            ),
        )
    accumulator.feed_event(
        "response.refusal.delta", b'{"output_index":0,"content_index":1,"delta":"No"}'
    )
    result = accumulator.result()
    assert result.response["output"] == [
        {
            "id": "msg_9",
            "content": [
                {"type": "output_text", "text": "Hello"},
                {"type": "refusal", "refusal": "No"},
            ],
        }
    ]


def test_incomplete_and_failed_are_terminal() -> None:
    incomplete = {
        **SKELETON,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 64,
            "output_tokens_details": {"reasoning_tokens": 64},
        },
    }
    stream = sse(
        [
            {"type": "response.created", "response": SKELETON},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"id": "rs_2", "type": "reasoning", "summary": []},
            },
            {"type": "response.incomplete", "response": incomplete},
        ]
    )
    result = run(stream)
    assert result.finished
    assert result.usage == Usage(input_tokens=10, output_tokens=64, reasoning_tokens=64)
    assert result.response["status"] == "incomplete"
    # the final object listed no output: the items seen in the stream fill it in
    assert result.response["output"] == [{"id": "rs_2", "type": "reasoning", "summary": []}]

    failed = {**SKELETON, "status": "failed", "error": {"code": "server_error", "message": "boom"}}
    result = run(sse([{"type": "response.failed", "response": failed}]))
    assert result.finished
    assert result.response["error"] == {"code": "server_error", "message": "boom"}


def test_error_event_and_malformed_payloads() -> None:
    accumulator = ResponsesStreamAccumulator()
    accumulator.feed_event(
        "response.created", orjson.dumps({"type": "response.created", "response": SKELETON})
    )
    accumulator.feed_event("response.output_text.delta", b"{truncated")
    accumulator.feed_event(
        "error",
        b'{"type":"error","code":"rate_limit_exceeded","message":"Slow down","param":null,'
        b'"sequence_number":3}',
    )
    assert accumulator.malformed_events == 1
    result = accumulator.result()
    assert not result.finished
    assert result.response["error"]["code"] == "rate_limit_exceeded"
    assert result.usage.is_empty()


def test_cache_write_tokens_are_five_minute_cache_writes() -> None:
    usage = {
        "input_tokens": 3000,
        "input_tokens_details": {
            "cached_tokens": 1000,
            "cache_write_tokens": 1500,
            "cache_write_tokens_details": {"ttl_30m_tokens": 1500, "ttl_12h_tokens": 0},
        },
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 3020,
    }
    assert usage_from_response({"usage": usage}) == Usage(
        input_tokens=3000, output_tokens=20, cache_read_tokens=1000, cache_write_5m_tokens=1500
    )


def test_only_a_terminal_response_reports_usage() -> None:
    complete = run(SEARCH_STREAM)
    assert (complete.input_reported, complete.output_reported) == (True, True)
    cut = run(SEARCH_STREAM[: SEARCH_STREAM.index(b'"delta":" in Paris"')])
    assert (cut.input_reported, cut.output_reported) == (False, False)
