"""OpenAI Chat Completions: usage, stream reassembly and the include_usage filter."""

from __future__ import annotations

import orjson
import pytest

from irisgate.gateway.formats.openai_chat import (
    ChatStreamAccumulator,
    UsageChunkFilter,
    count_tool_calls,
    usage_from_response,
)
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

HEAD = (
    b'data: {"id":"chatcmpl-CVGm0aQ7pX2","object":"chat.completion.chunk","created":1761568800,'
    b'"model":"gpt-4o-mini-2024-07-18","service_tier":"default",'
    b'"system_fingerprint":"fp_560af6e559",'
)

# As the upstream sends it with stream_options.include_usage = true ...
TEXT_WITH_USAGE = (
    HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Xb3"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null,"obfuscation":"q1"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{"content":" there, caf\xc3\xa9"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null,"obfuscation":"kPz"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null,"obfuscation":"abcd"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":null,"obfuscation":"Q"}\n\n'
    + HEAD
    + b'"choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":4,'
    b'"total_tokens":1204,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},'
    b'"obfuscation":"8618FsxJD2gV"}\n\n'
    b"data: [DONE]\n\n"
)
# ... and as it sends the same answer without include_usage.
TEXT_WITHOUT_USAGE = (
    HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    b'"logprobs":null,"finish_reason":null}],"obfuscation":"Xb3"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,'
    b'"finish_reason":null}],"obfuscation":"q1"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{"content":" there, caf\xc3\xa9"},"logprobs":null,'
    b'"finish_reason":null}],"obfuscation":"kPz"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,'
    b'"finish_reason":null}],"obfuscation":"abcd"}\n\n'
    + HEAD
    + b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],'
    b'"obfuscation":"Q"}\n\n'
    b"data: [DONE]\n\n"
)

# Python-json style spacing (vLLM, llama.cpp servers), usage last, with and without.
SPACED_WITH_USAGE = (
    b'data: {"id": "cmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "qwen3", '
    b'"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, '
    b'"logprobs": null, "finish_reason": null}], "usage": null}\n\n'
    b'data: {"id": "cmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "qwen3", '
    b'"choices": [{"index": 0, "delta": {"content": ""}, "logprobs": null, '
    b'"finish_reason": "stop"}], "usage": null}\n\n'
    b'data: {"id": "cmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "qwen3", '
    b'"choices": [], "usage": {"prompt_tokens": 9, "total_tokens": 11, '
    b'"completion_tokens": 2, "prompt_tokens_details": null}}\n\n'
    b"data: [DONE]\n\n"
)
SPACED_WITHOUT_USAGE = (
    b'data: {"id": "cmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "qwen3", '
    b'"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, '
    b'"logprobs": null, "finish_reason": null}]}\n\n'
    b'data: {"id": "cmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "qwen3", '
    b'"choices": [{"index": 0, "delta": {"content": ""}, "logprobs": null, '
    b'"finish_reason": "stop"}]}\n\n'
    b"data: [DONE]\n\n"
)

TOOL_HEAD = b'data: {"id":"chatcmpl-T1","object":"chat.completion.chunk","created":1761569000,"model":"gpt-4.1-2025-04-14","system_fingerprint":null,'  # noqa: E501
TOOL_STREAM = (
    TOOL_HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":null,'
    b'"tool_calls":[{"index":0,"id":"call_Weather1","type":"function","function":'
    b'{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,'
    b'"finish_reason":null}]}\n\n'
    + TOOL_HEAD
    + b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"{\\"city\\":"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    + TOOL_HEAD
    + b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":" \\"Paris\\"}"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    + TOOL_HEAD
    + b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_Time2",'
    b'"type":"function","function":{"name":"get_time","arguments":""}}]},"logprobs":null,'
    b'"finish_reason":null}]}\n\n'
    + TOOL_HEAD
    + b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":'
    b'{"arguments":"{\\"tz\\": \\"CET\\"}"}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    + TOOL_HEAD
    + b'"choices":[{"index":0,"delta":{},"logprobs":null,'
    b'"finish_reason":"tool_calls"}]}\n\n'
    + TOOL_HEAD
    + b'"choices":[],"usage":{"prompt_tokens":310,"completion_tokens":48,'
    b'"total_tokens":358,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}\n\n'
    b"data: [DONE]\n\n"
).replace(b"\n", b"\r\n")

# DeepSeek-style reasoning stream.
REASONING_STREAM = (
    b'data: {"id":"ds-1","object":"chat.completion.chunk","created":1739097227,'
    b'"model":"deepseek-reasoner","system_fingerprint":"fp_7e73fd9a08","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":null,"reasoning_content":""},"logprobs":null,'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"ds-1","object":"chat.completion.chunk","created":1739097227,'
    b'"model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":null,'
    b'"reasoning_content":"The user greets."},"logprobs":null,"finish_reason":null}]}\n\n'
    b'data: {"id":"ds-1","object":"chat.completion.chunk","created":1739097227,'
    b'"model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":"Hello!",'
    b'"reasoning_content":null},"logprobs":null,"finish_reason":"stop"}],"usage":'
    b'{"prompt_tokens":6,"completion_tokens":92,"total_tokens":98,"prompt_tokens_details":'
    b'{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":81},'
    b'"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":6}}\n\n'
    b"data: [DONE]\n\n"
)


def run(stream: bytes, pieces: list[bytes] | None = None) -> StreamResult:
    parser = SSEParser()
    accumulator = ChatStreamAccumulator()
    for piece in pieces if pieces is not None else [stream]:
        for event in parser.feed(piece):
            accumulator.feed_event(event.data)
    return accumulator.result()


def test_usage_from_response_body() -> None:
    body = orjson.loads(
        b'{"id":"chatcmpl-B9","object":"chat.completion","created":1741570283,'
        b'"model":"o4-mini-2025-04-16","choices":[{"index":0,"message":{"role":"assistant",'
        b'"content":"A cat.","refusal":null,"annotations":[]},"logprobs":null,'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,'
        b'"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":384,"audio_tokens":0,'
        b'"image_tokens":765},"completion_tokens_details":{"reasoning_tokens":32,'
        b'"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},'
        b'"service_tier":"default","system_fingerprint":"fp_b705f0c291"}'
    )
    assert usage_from_response(body) == Usage(
        input_tokens=1117,
        output_tokens=46,
        cache_read_tokens=384,
        reasoning_tokens=32,
        image_input_tokens=765,
    )
    assert count_tool_calls(body) == 0


def test_usage_tolerates_missing_and_null_members() -> None:
    assert usage_from_response({}) == Usage()
    assert usage_from_response({"usage": None}) == Usage()
    usage = {"prompt_tokens": 5, "completion_tokens": None, "prompt_tokens_details": None}
    assert usage_from_response({"usage": usage}) == Usage(input_tokens=5)


def test_text_stream_reassembles_completion() -> None:
    result = run(TEXT_WITH_USAGE)
    assert result.finished
    assert result.tool_calls == 0
    assert result.usage == Usage(input_tokens=1200, output_tokens=4, cache_read_tokens=1024)
    assert result.response == {
        "id": "chatcmpl-CVGm0aQ7pX2",
        "object": "chat.completion",
        "created": 1761568800,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there, café!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": orjson.loads(TEXT_WITH_USAGE.split(b"\n\n")[5][6:])["usage"],
        "system_fingerprint": "fp_560af6e559",
        "service_tier": "default",
    }


def test_stream_without_usage_has_empty_usage() -> None:
    result = run(TEXT_WITHOUT_USAGE)
    assert result.finished
    assert result.usage.is_empty()
    assert result.response["usage"] is None
    assert result.response["choices"][0]["message"]["content"] == "Hello there, café!"


def test_every_split_gives_the_same_result() -> None:
    reference = run(TEXT_WITH_USAGE)
    for k in range(len(TEXT_WITH_USAGE) + 1):
        assert run(TEXT_WITH_USAGE, [TEXT_WITH_USAGE[:k], TEXT_WITH_USAGE[k:]]) == reference
    one_byte_each = [TEXT_WITH_USAGE[i : i + 1] for i in range(len(TEXT_WITH_USAGE))]
    assert run(TEXT_WITH_USAGE, one_byte_each) == reference


def test_parallel_tool_calls_merge_by_index_crlf() -> None:
    result = run(TOOL_STREAM)
    assert result.finished
    assert result.tool_calls == 2
    message = result.response["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_Weather1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_Time2",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
        },
    ]
    assert result.response["choices"][0]["finish_reason"] == "tool_calls"
    assert result.usage == Usage(input_tokens=310, output_tokens=48)
    assert count_tool_calls(result.response) == 2
    for k in range(len(TOOL_STREAM) + 1):
        assert run(TOOL_STREAM, [TOOL_STREAM[:k], TOOL_STREAM[k:]]) == result


def test_reasoning_content_is_kept() -> None:
    result = run(REASONING_STREAM)
    message = result.response["choices"][0]["message"]
    assert message["reasoning_content"] == "The user greets."
    assert message["content"] == "Hello!"
    assert result.usage == Usage(input_tokens=6, output_tokens=92, reasoning_tokens=81)


def test_interrupted_stream_keeps_partial_content() -> None:
    cut = TEXT_WITH_USAGE.index(b'"!"')  # cut inside the fourth chunk
    result = run(TEXT_WITH_USAGE[:cut])
    assert not result.finished
    assert result.usage.is_empty()
    assert result.response["choices"][0]["message"]["content"] == "Hello there, café"
    assert result.response["choices"][0]["finish_reason"] is None

    cut = TOOL_STREAM.index(b"call_Time2")
    result = run(TOOL_STREAM[:cut])
    assert not result.finished
    assert result.tool_calls == 1
    call = result.response["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["arguments"] == '{"city": "Paris"}'


def test_finish_reason_without_done_counts_as_finished() -> None:
    cut = TEXT_WITH_USAGE.index(HEAD + b'"choices":[]')
    result = run(TEXT_WITH_USAGE[:cut])
    assert result.finished
    assert result.usage.is_empty()


def test_malformed_and_error_payloads() -> None:
    accumulator = ChatStreamAccumulator()
    accumulator.feed_event(b"{not json")
    accumulator.feed_event(b"[1, 2]")
    accumulator.feed_event(b'{"error":{"message":"overloaded","type":"server_error"}}')
    assert accumulator.malformed_events == 2
    result = accumulator.result()
    assert result.response["error"] == {"message": "overloaded", "type": "server_error"}
    assert not result.finished


def test_multiple_choices_and_legacy_function_call() -> None:
    accumulator = ChatStreamAccumulator()
    accumulator.feed_event(
        b'{"id":"x","choices":[{"index":1,"delta":{"content":"B"}},'
        b'{"index":0,"delta":{"function_call":{"name":"f","arguments":"{}"}}}]}'
    )
    accumulator.feed_event(b'{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
    result = accumulator.result()
    assert [c["index"] for c in result.response["choices"]] == [0, 1]
    assert result.response["choices"][0]["message"]["function_call"] == {
        "name": "f",
        "arguments": "{}",
    }
    assert result.tool_calls == 1
    assert not result.finished  # choice 1 never finished and no [DONE]


# --- UsageChunkFilter -----------------------------------------------------------------------


def filtered(pieces: list[bytes]) -> tuple[bytes, UsageChunkFilter]:
    chunk_filter = UsageChunkFilter()
    out = b"".join(chunk_filter.feed(piece) for piece in pieces) + chunk_filter.flush()
    return out, chunk_filter


@pytest.mark.parametrize(
    ("with_usage", "without_usage"),
    [
        (TEXT_WITH_USAGE, TEXT_WITHOUT_USAGE),
        (SPACED_WITH_USAGE, SPACED_WITHOUT_USAGE),
        (TEXT_WITH_USAGE.replace(b"\n", b"\r\n"), TEXT_WITHOUT_USAGE.replace(b"\n", b"\r\n")),
        (TEXT_WITH_USAGE.replace(b"\n", b"\r"), TEXT_WITHOUT_USAGE.replace(b"\n", b"\r")),
    ],
    ids=["openai", "spaced", "crlf", "cr"],
)
def test_filter_output_is_the_stream_without_include_usage(
    with_usage: bytes, without_usage: bytes
) -> None:
    out, chunk_filter = filtered([with_usage])
    assert out == without_usage
    assert chunk_filter.usage_event is not None
    assert orjson.loads(chunk_filter.usage_event)["choices"] == []
    for k in range(len(with_usage) + 1):
        assert filtered([with_usage[:k], with_usage[k:]])[0] == without_usage, k
    one_byte_each = [with_usage[i : i + 1] for i in range(len(with_usage))]
    assert filtered(one_byte_each)[0] == without_usage


def test_filter_forwards_complete_events_as_soon_as_they_end() -> None:
    chunk_filter = UsageChunkFilter()
    first_end = TEXT_WITH_USAGE.index(b"\n\n") + 2
    assert chunk_filter.feed(TEXT_WITH_USAGE[: first_end - 1]) == b""
    assert (
        chunk_filter.feed(TEXT_WITH_USAGE[first_end - 1 : first_end])
        == (TEXT_WITHOUT_USAGE[: TEXT_WITHOUT_USAGE.index(b"\n\n") + 2])
    )


def test_usage_event_feeds_the_accumulator() -> None:
    out, chunk_filter = filtered([TEXT_WITH_USAGE])
    accumulator = ChatStreamAccumulator()
    for event in SSEParser().feed(out):
        accumulator.feed_event(event.data)
    assert accumulator.result().usage.is_empty()
    assert chunk_filter.usage_event is not None
    accumulator.feed_event(chunk_filter.usage_event)
    assert accumulator.result() == run(TEXT_WITH_USAGE)


def test_filter_keeps_usage_free_and_empty_choice_chunks() -> None:
    # Azure sends a first chunk with empty choices and prompt filter results: not a usage chunk.
    azure_first = (
        b'data: {"choices":[],"created":0,"id":"","model":"","object":"",'
        b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}],'
        b'"usage":null}\n\n'
    )
    out, chunk_filter = filtered([azure_first + b": keep-alive\n\ndata: [DONE]\n\n"])
    assert out == azure_first.replace(b',"usage":null', b"") + b": keep-alive\n\ndata: [DONE]\n\n"
    assert chunk_filter.usage_event is None


def test_filter_leaves_usage_text_inside_strings_alone() -> None:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"\\"usage\\":null"}}]}\n\n'
    assert filtered([event])[0] == event


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b'{"usage":null,"id":"a","choices":[]}', b'{"id":"a","choices":[]}'),
        (b'{"usage": null, "id": "a"}', b'{"id": "a"}'),
        (b'{"id":"a", "usage" : null }', b'{"id":"a" }'),
        (b'{"usage":null}', b"{}"),
    ],
)
def test_filter_usage_null_variants(before: bytes, after: bytes) -> None:
    assert filtered([b"data: " + before + b"\n\n"])[0] == b"data: " + after + b"\n\n"


def test_filter_flush_handles_unterminated_tail() -> None:
    tail = HEAD + b'"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n'
    out, chunk_filter = filtered(
        [TEXT_WITH_USAGE[: TEXT_WITH_USAGE.index(HEAD + b'"choices":[]')] + tail]
    )
    assert out == TEXT_WITHOUT_USAGE[: TEXT_WITHOUT_USAGE.index(b"data: [DONE]")]
    assert chunk_filter.usage_event is not None


def test_cache_write_tokens_are_five_minute_cache_writes() -> None:
    usage = {
        "prompt_tokens": 2048,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 512, "cache_write_tokens": 1024},
    }
    assert usage_from_response({"usage": usage}) == Usage(
        input_tokens=2048, output_tokens=10, cache_read_tokens=512, cache_write_5m_tokens=1024
    )


def test_a_stream_says_whether_its_usage_was_reported() -> None:
    complete = run(TEXT_WITH_USAGE)
    assert (complete.input_reported, complete.output_reported) == (True, True)
    for unreported in (TEXT_WITHOUT_USAGE, TEXT_WITH_USAGE[: TEXT_WITH_USAGE.index(b'"!"')]):
        result = run(unreported)
        assert (result.input_reported, result.output_reported) == (False, False)
