"""Gemini generateContent usage and stream reassembly (SSE chunks and the JSON-array form)."""

from __future__ import annotations

import orjson

from irisgate.gateway.formats import gemini
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

USAGE = {
    "promptTokenCount": 120,
    "candidatesTokenCount": 30,
    "cachedContentTokenCount": 100,
    "thoughtsTokenCount": 12,
    "toolUsePromptTokenCount": 8,
    "totalTokenCount": 170,
    "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 100},
        {"modality": "IMAGE", "tokenCount": 20},
    ],
}


def test_usage_metadata_mapping() -> None:
    assert gemini.parse_usage(USAGE) == Usage(
        input_tokens=128,
        output_tokens=42,
        cache_read_tokens=100,
        reasoning_tokens=12,
        image_input_tokens=20,
    )
    assert gemini.parse_usage(None) == Usage()
    assert gemini.parse_usage({"promptTokenCount": "x"}) == Usage()


def chunk(text: str, *, usage: dict[str, int] | None = None, finish: bool = False) -> bytes:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if finish:
        candidate["finishReason"] = "STOP"
    body: dict[str, object] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
    if usage is not None:
        body["usageMetadata"] = usage
    return orjson.dumps(body)


STREAM = [
    chunk("Hel", usage={"promptTokenCount": 5, "totalTokenCount": 5}),
    chunk("lo", usage={"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}),
    chunk(
        "!",
        usage={"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
        finish=True,
    ),
]


def test_sse_stream_reassembles_one_response() -> None:
    raw = b"".join(b"data: " + c + b"\r\n\r\n" for c in STREAM)
    accumulator = gemini.GenerateContentAccumulator()
    for event in SSEParser().feed(raw):
        accumulator.feed_event(event.event, event.data)
    outcome = accumulator.result()
    assert outcome.finished
    assert outcome.usage == Usage(input_tokens=5, output_tokens=2)
    candidate = outcome.response["candidates"][0]
    assert candidate["content"]["parts"] == [{"text": "Hello!"}]
    assert candidate["finishReason"] == "STOP"
    assert outcome.response["modelVersion"] == "gemini-2.5-flash"


def test_thoughts_kept_apart_and_function_calls_counted() -> None:
    accumulator = gemini.GenerateContentAccumulator()
    parts = [
        [{"text": "thinking ", "thought": True}],
        [{"text": "more", "thought": True}],
        [{"text": "answer"}],
        [{"functionCall": {"name": "lookup", "args": {"q": "x"}}}],
    ]
    for p in parts:
        accumulator.feed_chunk({"candidates": [{"content": {"role": "model", "parts": p}}]})
    outcome = accumulator.result()
    assert outcome.response["candidates"][0]["content"]["parts"] == [
        {"text": "thinking more", "thought": True},
        {"text": "answer"},
        {"functionCall": {"name": "lookup", "args": {"q": "x"}}},
    ]
    assert outcome.tool_calls == 1
    assert not outcome.finished


def test_json_array_stream_whole_and_cut() -> None:
    whole = b"[" + b",\r\n".join(STREAM) + b"]"
    outcome = gemini.read_json_array_stream(whole)
    assert outcome is not None and outcome.finished
    assert outcome.usage.output_tokens == 2
    cut = gemini.read_json_array_stream(whole[: whole.index(b"!") - 5])
    assert cut is not None and not cut.finished
    assert cut.response["candidates"][0]["content"]["parts"] == [{"text": "Hello"}]
    assert gemini.read_json_array_stream(b'{"candidates": []}') is None


def test_malformed_events_are_counted_not_raised() -> None:
    accumulator = gemini.GenerateContentAccumulator()
    accumulator.feed_event("message", b"not json")
    accumulator.feed_event("message", b"[1]")
    assert accumulator.malformed_events == 2
    assert accumulator.result().usage == Usage()
