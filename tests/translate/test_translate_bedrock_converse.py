"""The Bedrock Converse adapter (provider side): requests, plain answers and ConverseStream
event streams decoded at every byte split."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from irisgate.translate import PROVIDERS, bedrock_converse, ir
from irisgate.usage.tokens import Usage
from irisgate.wire.eventstream import encode_message

FORMAT = "bedrock_converse"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SIGNATURE = "ErcBCkgIBxABGAIiQGZha2Ugc2lnbmF0dXJl"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def event(kind: str, payload: dict[str, Any]) -> bytes:
    """One ConverseStream event frame as bedrock-runtime sends it (with its `p` padding)."""
    headers: dict[str, str | bytes | int | bool] = {
        ":event-type": kind,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return encode_message(headers, json.dumps({**payload, "p": "abcdefgh"}).encode())


def exception(kind: str, message: str) -> bytes:
    headers: dict[str, str | bytes | int | bool] = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps({"message": message}).encode())


def delta(index: int, value: dict[str, Any]) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": value})


def tool_start(index: int, tool_id: str) -> bytes:
    start = {"toolUse": {"toolUseId": tool_id, "name": "get_weather"}}
    return event("contentBlockStart", {"contentBlockIndex": index, "start": start})


def stop(index: int) -> bytes:
    return event("contentBlockStop", {"contentBlockIndex": index})


USAGE = {
    "inputTokens": 20,
    "outputTokens": 100,
    "totalTokens": 1170,
    "cacheReadInputTokens": 1000,
    "cacheWriteInputTokens": 50,
}
EXPECTED_USAGE = Usage(
    input_tokens=1070, output_tokens=100, cache_read_tokens=1000, cache_write_5m_tokens=50
)

#: Claude on ConverseStream: reasoning with its signature, text, two parallel tool uses
#: (text and reasoning blocks come without contentBlockStart, as Bedrock sends them), usage
RECORDED = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        delta(0, {"reasoningContent": {"text": "Two cities"}}),
        delta(0, {"reasoningContent": {"text": ", two calls."}}),
        delta(0, {"reasoningContent": {"signature": SIGNATURE}}),
        stop(0),
        delta(1, {"text": "Checking"}),
        delta(1, {"text": " both."}),
        stop(1),
        tool_start(2, "tooluse_A"),
        delta(2, {"toolUse": {"input": '{"city":'}}),
        delta(2, {"toolUse": {"input": '"Paris"}'}}),
        stop(2),
        tool_start(3, "tooluse_B"),
        delta(3, {"toolUse": {"input": '{"city":"Rome"}'}}),
        stop(3),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 812}}),
    ]
)


def test_recorded_stream_decodes_the_same_at_every_split(
    at_every_split: Callable[..., list[ir.Event]],
) -> None:
    events = at_every_split(bedrock_converse.Decoder, RECORDED)
    start = events[0]
    assert isinstance(start, ir.Start)
    assert start.id.startswith("converse-")
    assert events[1:] == [
        ir.ReasoningDelta(0, "Two cities"),
        ir.ReasoningDelta(0, ", two calls."),
        ir.ReasoningDelta(0, signature=SIGNATURE, origin=FORMAT),
        ir.BlockEnd(0),
        ir.TextDelta(1, "Checking"),
        ir.TextDelta(1, " both."),
        ir.BlockEnd(1),
        ir.ToolCallStart(2, "tooluse_A", "get_weather"),
        ir.ToolArgsDelta(2, '{"city":'),
        ir.ToolArgsDelta(2, '"Paris"}'),
        ir.BlockEnd(2),
        ir.ToolCallStart(3, "tooluse_B", "get_weather"),
        ir.ToolArgsDelta(3, '{"city":"Rome"}'),
        ir.BlockEnd(3),
        ir.Finish("tool_use", EXPECTED_USAGE),
    ]


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            exception("throttlingException", "Too many requests, please wait."),
            ir.StreamError(429, "throttlingException: Too many requests, please wait."),
        ),
        (
            exception("modelStreamErrorException", "Model produced invalid sequence"),
            ir.StreamError(424, "modelStreamErrorException: Model produced invalid sequence"),
        ),
        (exception("somethingNewException", ""), ir.StreamError(500, "somethingNewException")),
        (
            event("messageStop", {"stopReason": "max_tokens"})
            + event("metadata", {"usage": USAGE}),
            ir.Finish("max_tokens", EXPECTED_USAGE),
        ),
        (
            event("messageStop", {"stopReason": "guardrail_intervened"}),
            ir.Finish("refusal", Usage()),  # no metadata event: the end of the stream finishes
        ),
        (
            event(
                "messageStop",
                {
                    "stopReason": "stop_sequence",
                    "additionalModelResponseFields": {"stop_sequence": "END"},
                },
            )
            + event("metadata", {"usage": {}}),
            ir.Finish("stop_sequence", Usage(), "END"),
        ),
        (b"", ir.StreamError(502, "the provider's stream ended before the answer was complete")),
    ],
)
def test_how_a_stream_ends(tail: bytes, expected: ir.Event) -> None:
    decoder = bedrock_converse.Decoder()
    data = event("messageStart", {"role": "assistant"}) + delta(0, {"text": "so"}) + tail
    events = decoder.feed(data) + decoder.finish()
    assert events[-1] == expected
    assert decoder.feed(delta(0, {"text": "late"})) == []
    assert decoder.finish() == []


def test_a_broken_frame_ends_the_stream() -> None:
    data = bytearray(event("messageStart", {"role": "assistant"}) + delta(0, {"text": "so"}))
    data[-6] ^= 0xFF  # the payload no longer matches its CRC
    decoder = bedrock_converse.Decoder()
    events = decoder.feed(bytes(data))
    assert events[-1] == ir.StreamError(
        502, "the provider's event stream broke: message CRC mismatch"
    )
    assert decoder.finish() == []


def test_redacted_reasoning_and_stray_deltas() -> None:
    decoder = bedrock_converse.Decoder()
    data = b"".join(
        [
            delta(0, {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}}),
            stop(0),
            delta(1, {"toolUse": {"input": "{}"}}),  # no contentBlockStart: not a call
            encode_message({":message-type": "event", ":event-type": "contentBlockDelta"}, b"{bad"),
            event("messageStop", {"stopReason": "end_turn"}),
            event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4}}),
        ]
    )
    assert decoder.feed(data) == [
        ir.ReasoningDelta(0, redacted="ZW5jcnlwdGVk", origin=FORMAT),
        ir.BlockEnd(0),
        ir.Finish("end", Usage(input_tokens=3, output_tokens=4)),
    ]


ANSWER: dict[str, Any] = {
    "metrics": {"latencyMs": 312},
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {
                    "reasoningContent": {
                        "reasoningText": {"text": "Two cities.", "signature": SIGNATURE}
                    }
                },
                {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}},
                {"text": "Checking both."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_A",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
                {
                    "toolUse": {
                        "toolUseId": "tooluse_B",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": USAGE,
}


def test_plain_answer_read() -> None:
    answer = bedrock_converse.read_response(ANSWER)
    assert answer.id.startswith("converse-")
    assert answer.parts == (
        ir.Reasoning("Two cities.", SIGNATURE, origin=FORMAT),
        ir.Reasoning(redacted="ZW5jcnlwdGVk", origin=FORMAT),
        ir.Text("Checking both."),
        ir.ToolCall("tooluse_A", "get_weather", '{"city":"Paris"}'),
        ir.ToolCall("tooluse_B", "get_weather", '{"city":"Rome"}'),
    )
    assert (answer.stop, answer.usage) == ("tool_use", EXPECTED_USAGE)
    assert bedrock_converse.read_response({"stopReason": "content_filtered"}).stop == "refusal"
    assert bedrock_converse.read_response({}).stop == "end"


def test_the_answer_goes_back_as_it_came() -> None:
    """An answer read into the neutral shape and sent back as the next turn's history gives
    Converse the same content blocks (its signatures included)."""
    answer = bedrock_converse.read_response(ANSWER)
    results = tuple(
        ir.ToolResult(c.id, c.name, (ir.Text("18 C"),))
        for c in answer.parts
        if isinstance(c, ir.ToolCall)
    )
    request = ir.Request(
        MODEL,
        (
            ir.Message("user", (ir.Text("Weather?"),)),
            ir.Message("assistant", answer.parts),
            ir.Message("user", results),
        ),
    )
    body = bedrock_converse.write_request(request)
    assert body["messages"][1] == ANSWER["output"]["message"]
    assert body["messages"][2]["content"][0] == {
        "toolResult": {"toolUseId": "tooluse_A", "content": [{"text": "18 C"}], "status": "success"}
    }


def test_errors_read() -> None:
    body = b'{"message":"Malformed input request: #: extraneous key [foo]"}'
    assert (
        bedrock_converse.read_error(400, body) == "Malformed input request: #: extraneous key [foo]"
    )
    assert bedrock_converse.read_error(429, b'{"Message":"Too many tokens"}') == "Too many tokens"
    # an authentication failure may quote the credential: a fixed text instead
    refused = b'{"message":"The security token included in the request is invalid: AKIA..."}'
    assert bedrock_converse.read_error(403, refused) == (
        "the provider refused irisgate's credentials (403)"
    )
    assert bedrock_converse.read_error(500, b"{}") == "the provider answered 500"
    assert bedrock_converse.read_error(502, b"<html>") == "the provider answered 502"
    assert bedrock_converse.read_error(503, b"[1]") == "the provider answered 503"


# --- requests -------------------------------------------------------------------------------


def test_request_from_another_format() -> None:
    request = ir.Request(
        model=MODEL,
        system="Be brief.",
        messages=(
            ir.Message("user", (ir.Text("Weather? "), ir.Image("image/png", PNG))),
            ir.Message(
                "assistant",
                (
                    ir.Reasoning("hm", "sig-from-anthropic", origin="anthropic_messages"),
                    ir.Text("  "),
                    ir.ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}'),
                    ir.ToolCall("toolu_2", "get_weather", ""),
                ),
            ),
            ir.Message(
                "user",
                (
                    ir.ToolResult("toolu_1", "", (ir.Text("cold"), ir.Image("image/jpeg", PNG))),
                    ir.ToolResult("toolu_2", "", (), is_error=True),
                ),
            ),
            ir.Message("user", (ir.Text("thanks"),)),
        ),
        tools=(ir.Tool("get_weather", "", WEATHER),),
        tool_choice=ir.ToolChoice("tool", "get_weather"),
        max_tokens=30000,
        temperature=1.0,
        top_p=0.95,
        stop=("END",),
        reasoning_effort="high",
    )
    assert bedrock_converse.write_request(request) == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Weather? "},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    # Anthropic's signature is not Bedrock's; blank text is refused by Converse
                    {
                        "toolUse": {
                            "toolUseId": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        }
                    },
                    {"toolUse": {"toolUseId": "toolu_2", "name": "get_weather", "input": {}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "toolu_1",
                            "content": [
                                {"text": "cold"},
                                {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                            ],
                            "status": "success",
                        }
                    },
                    {
                        "toolResult": {
                            "toolUseId": "toolu_2",
                            "content": [{"text": ""}],
                            "status": "error",
                        }
                    },
                    {"text": "thanks"},
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "get_weather",
                        "inputSchema": {"json": WEATHER},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "get_weather"}},
        },
        "inferenceConfig": {
            "maxTokens": 30000,
            "temperature": 1.0,
            "topP": 0.95,
            "stopSequences": ["END"],
        },
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 24576}},
    }
    assert bedrock_converse.provider_path(MODEL, True) == (
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    )
    assert bedrock_converse.provider_path("amazon.nova-pro-v1:0", False) == (
        "/model/amazon.nova-pro-v1%3A0/converse"
    )
    assert PROVIDERS["bedrock_converse"] is bedrock_converse


@pytest.mark.parametrize(
    ("fields", "inference", "thinking"),
    [
        ({"reasoning_budget": 4000}, {"maxTokens": 8096}, 4000),
        ({"reasoning_effort": "low", "max_tokens": 2000}, {"maxTokens": 2000}, 1999),
        ({"reasoning_effort": "minimal"}, {"maxTokens": 5120}, 1024),
    ],
)
def test_thinking_fits_in_the_token_limit(
    fields: dict[str, Any], inference: dict[str, Any], thinking: int
) -> None:
    body = bedrock_converse.write_request(ir.Request(MODEL, (), **fields))
    assert body["inferenceConfig"] == inference
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == thinking


@pytest.mark.parametrize(("mode", "expected"), [("auto", {"auto": {}}), ("required", {"any": {}})])
def test_tool_choices(mode: Any, expected: dict[str, Any]) -> None:
    request = ir.Request(
        "amazon.nova-pro-v1:0",
        (),
        tools=(ir.Tool("f", "d", WEATHER),),
        tool_choice=ir.ToolChoice(mode),
    )
    assert bedrock_converse.write_request(request)["toolConfig"]["toolChoice"] == expected
    assert "toolConfig" not in bedrock_converse.write_request(
        ir.Request("m", (), tool_choice=ir.ToolChoice(mode))
    )


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (ir.Request("m", (), response_format=ir.ResponseFormat("json_object")), "JSON mode"),
        (ir.Request("m", (), parallel_tool_calls=False), "'parallel_tool_calls: false'"),
        (
            ir.Request("m", (), tools=(ir.Tool("f", "", {}),), tool_choice=ir.ToolChoice("none")),
            "tool choice 'none'",
        ),
        (ir.Request("amazon.nova-pro-v1:0", (), reasoning_effort="high"), "only for Claude models"),
        (
            ir.Request(MODEL, (), reasoning_effort="high", max_tokens=800),
            "too little for reasoning",
        ),
        (
            ir.Request("m", (ir.Message("user", (ir.Image("image/png", url="https://x/y.png"),)),)),
            "image URL",
        ),
        (
            ir.Request("m", (ir.Message("user", (ir.Image("image/bmp", "AA"),)),)),
            "'image/bmp' image",
        ),
        (
            ir.Request("m", (ir.Message("assistant", (ir.ToolCall("c", "f", "[]"),)),)),
            "not a JSON object",
        ),
    ],
)
def test_refusals(request_: ir.Request, named: str) -> None:
    with pytest.raises(ir.Untranslatable) as caught:
        bedrock_converse.write_request(request_)
    assert named in str(caught.value)


def test_an_event_nested_too_deep_ends_the_stream() -> None:
    value: list[Any] = []
    for _ in range(200):
        value = [value]
    decoder = bedrock_converse.Decoder()
    events = decoder.feed(delta(0, {"text": "x", "deep": value}) + delta(0, {"text": "y"}))
    assert events == [
        ir.StreamError(502, "the provider's answer held JSON nested too deep to translate")
    ]
    assert decoder.finish() == []


def test_small_cases() -> None:
    request = ir.Request(
        "amazon.nova-pro-v1:0",
        (ir.Message("user", (ir.Text(" "),)), ir.Message("user", (ir.Text("hi"),))),
        tools=(ir.Tool("f", "d", WEATHER),),
    )
    body = bedrock_converse.write_request(request)
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert "toolChoice" not in body["toolConfig"]


def test_exception_text_is_cut_and_printable() -> None:
    decoder = bedrock_converse.Decoder()
    [failed] = decoder.feed(exception("validationException", "\x1b" + "e" * 5000))
    assert isinstance(failed, ir.StreamError) and failed.status == 400
    assert "\x1b" not in failed.message and len(failed.message) == 1001
