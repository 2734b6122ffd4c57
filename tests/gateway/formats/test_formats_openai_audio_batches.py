"""OpenAI audio and batch files, read sans-io: what transcriptions report, a batch input file's
models and a batch output file's usage, fed in pieces split at every offset."""

from __future__ import annotations

import orjson
import pytest

from irisgate.gateway.capture import described, is_binary, read_answer
from irisgate.gateway.formats.openai_audio import usage_from_response
from irisgate.gateway.formats.openai_batches import (
    MAX_BATCH_MODELS,
    MAX_LINE,
    BatchLines,
    BatchResults,
)
from irisgate.gateway.formats.registry import OPENAI_AUDIO, OPENAI_BATCHES
from irisgate.testing.fake_openai_objects import FakeOpenAIObjects
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units, unit_price
from irisgate.wire.errors import GatewayError


def test_token_usage_is_read_and_seconds_are_not_tokens() -> None:
    tokens = {"text": "hi", "usage": {"type": "tokens", "input_tokens": 30, "output_tokens": 9}}
    assert usage_from_response(tokens) == Usage(input_tokens=30, output_tokens=9)
    seconds = {"text": "hi", "usage": {"type": "duration", "seconds": 3}}
    assert usage_from_response(seconds).is_empty()
    assert usage_from_response({"text": "hi", "duration": 8.4}).is_empty()
    assert usage_from_response({"usage": "junk"}).is_empty()


@pytest.mark.parametrize(
    ("response", "seconds"),
    [
        ({"text": "hi", "usage": {"type": "duration", "seconds": 3}}, 3),
        ({"text": "hi", "duration": 8.4}, 9),  # verbose_json: rounded up
        ({"text": "hi"}, 0),  # says nothing: unpriced
        ({"text": "hi", "duration": "8"}, 0),
        ({"text": "hi", "duration": True}, 0),
        ({"text": "hi", "duration": float("nan")}, 0),
        ({"text": "hi", "duration": -1}, 0),
        ({"text": "hi", "duration": 1e12}, 0),  # no audio is that long
    ],
)
def test_a_transcription_without_tokens_is_counted_in_the_seconds_its_answer_gives(
    response: dict[str, object], seconds: int
) -> None:
    assert OPENAI_AUDIO.units({"model": "whisper-1"}, response) == Units("second", seconds)
    assert OPENAI_AUDIO.requested({"model": "whisper-1"}) == Units("second", 0)


def test_speech_is_counted_in_characters_and_only_whisper_has_a_price_per_second() -> None:
    speech = {"model": "tts-1", "input": "Hello there", "voice": "alloy"}
    assert OPENAI_AUDIO.requested(speech) == Units("character", 11)
    assert OPENAI_AUDIO.units(speech, {}) == Units("character", 11)
    assert unit_price("openai", "tts-1", Units("character", 11)) is None
    assert str(unit_price("openai", "whisper-1", Units("second", 60))) == "0.0001"
    assert unit_price("openai", "gpt-4o-transcribe", Units("second", 60)) is None
    assert unit_price("anthropic", "whisper-1", Units("second", 60)) is None


def test_a_streamed_transcription_reports_usage_in_its_done_event() -> None:
    events = [
        b'data: {"type":"transcript.text.delta","delta":"hello "}\n\n',
        b'data: {"type":"transcript.text.delta","delta":"world"}\n\n',
        b'data: {"type":"transcript.text.done","text":"hello world","usage":'
        b'{"type":"tokens","input_tokens":12,"output_tokens":2}}\n\n',
    ]
    answer = read_answer(OPENAI_AUDIO, 200, {"content-type": "text/event-stream"}, b"".join(events))
    assert answer.usage == Usage(input_tokens=12, output_tokens=2)
    assert answer.response == {"text": "hello world"}


def test_binary_answers_are_captured_by_type_and_size() -> None:
    assert is_binary("audio/mpeg") and is_binary("application/octet-stream")
    for text in ("application/json", "text/plain; charset=utf-8", "text/event-stream", ""):
        assert not is_binary(text)
    assert orjson.loads(described("audio/wav", 1234)) == {
        "irisgate_binary_body": {"content_type": "audio/wav", "bytes": 1234}
    }


def _input_file(models: list[str]) -> bytes:
    lines = [
        {"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions", "body": {"model": m}}
        for i, m in enumerate(models)
    ]
    return b"\n".join(orjson.dumps(line) for line in lines)  # no newline after the last


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 20])
def test_batch_lines_find_every_model_whatever_the_pieces(size: int) -> None:
    data = _input_file(["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"])
    lines = BatchLines()
    for at in range(0, len(data), size):
        lines.feed(data[at : at + size])
    lines.close()
    assert lines.models == {"gpt-4o-mini", "gpt-4o"}
    assert lines.lines == 3


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json\n", "line 1 of the batch file is not JSON"),
        (b'{"body": {}}\n', "line 1 of the batch file has no body.model string"),
        (b'{"body": {"model": "m"}}\n[1]', "line 2 of the batch file has no body.model"),
    ],
)
def test_batch_lines_refuse_what_names_no_model(data: bytes, problem: str) -> None:
    def read() -> None:
        lines = BatchLines()
        lines.feed(data)
        lines.close()

    with pytest.raises(GatewayError) as refused:
        read()
    assert problem in refused.value.message
    assert refused.value.param == "file"


def test_batch_lines_are_bounded() -> None:
    too_many = _input_file([f"model-{i}" for i in range(MAX_BATCH_MODELS + 1)])
    many = BatchLines()
    many.feed(too_many + b"\n")
    with pytest.raises(GatewayError, match="more than"):
        many.close()
    lines = BatchLines()
    for _ in range(MAX_LINE // 65536):
        lines.feed(b"x" * 65536)  # one line that never ends, up to the limit
    assert lines.problem is None
    lines.feed(b"x")
    assert lines.problem is not None
    lines.feed(b"x" * 65536)  # nothing more is read or kept
    with pytest.raises(GatewayError, match="over"):
        lines.close()


def _output_file() -> bytes:
    fake = FakeOpenAIObjects()
    chat = {
        "custom_id": "a",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two"}]},
    }
    responses = {"custom_id": "b", "url": "/v1/responses", "body": {"model": "gpt-4o-mini"}}
    failed = {
        "id": "batch_req_x",
        "custom_id": "c",
        "response": {"status_code": 400, "body": {"error": {"message": "bad"}}},
        "error": None,
    }
    lines = [fake._result(chat), fake._result(responses), failed]
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


@pytest.mark.parametrize("size", [1, 5, 33, 1 << 20])
def test_batch_results_sum_usage_per_model_and_pass_bytes_through(size: int) -> None:
    data = _output_file()
    results = BatchResults()
    out = b"".join(results.feed(data[at : at + size]) for at in range(0, len(data), size))
    out += results.flush()
    assert out == data
    assert (results.results, results.failed, results.unread) == (2, 1, 0)
    (usage,) = results.usage.values()
    assert usage.output_tokens == 14  # the fake's 7 per result
    assert usage.input_tokens > 0


def test_batch_results_skip_a_line_too_long_to_read() -> None:
    results = BatchResults()
    results.feed(b"x" * (MAX_LINE + 10) + b"\n")
    results.feed(_output_file())
    results.flush()
    assert results.unread == 1 and results.results == 2


def test_the_catalog_lists_the_endpoints() -> None:
    assert OPENAI_AUDIO.catalog_entry()["endpoints"] == [
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/audio/speech",
    ]
    assert OPENAI_BATCHES.catalog_entry()["flag"] == "openai_batches"
    assert OPENAI_AUDIO.probe("whisper-1") is None  # the Test button asks chat models
