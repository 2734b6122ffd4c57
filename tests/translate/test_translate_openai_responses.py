"""The OpenAI Responses adapter: requests both ways, answers both ways, streams decoded at
every byte split and encoded streams read by the openai SDK's own stream accumulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from irisgate.translate import ir, openai_responses
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

FORMAT = "openai_responses"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    """Events as api.openai.com sends them: `event:` line, compact JSON, sequence numbers."""
    out = b""
    for n, (kind, fields) in enumerate(events):
        payload = {"type": kind, **fields, "sequence_number": n}
        out += f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
    return out


def response_object(status: str, output: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "id": "resp_68c1",
        "object": "response",
        "created_at": 1757500000,
        "status": status,
        "model": "gpt-5-2025-08-07",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
        **more,
    }


REASONING_DONE = {
    "id": "rs_68c1",
    "type": "reasoning",
    "summary": [
        {"type": "summary_text", "text": "Need weather in two cities."},
        {"type": "summary_text", "text": "Call both."},
    ],
    "encrypted_content": "gAAAAABoWxyz==",
}
CALL_A = {
    "id": "fc_68a",
    "type": "function_call",
    "status": "completed",
    "arguments": '{"city":"Paris"}',
    "call_id": "call_A",
    "name": "get_weather",
}
CALL_B = {**CALL_A, "id": "fc_68b", "call_id": "call_B", "arguments": '{"city":"Rome"}'}
MESSAGE = {
    "id": "msg_68c1",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "Checking both."}
    ],
}
USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1000},
    "output_tokens": 300,
    "output_tokens_details": {"reasoning_tokens": 200},
    "total_tokens": 1500,
}

#: a streamed answer as the Responses API sends it: reasoning with two summary parts, text,
#: two parallel function calls (the second without a .done arguments event), usage
RECORDED = sse(
    ("response.created", {"response": response_object("in_progress", [])}),
    ("response.in_progress", {"response": response_object("in_progress", [])}),
    (
        "response.output_item.added",
        {"item": {"id": "rs_68c1", "type": "reasoning", "summary": []}, "output_index": 0},
    ),
    (
        "response.reasoning_summary_part.added",
        {
            "item_id": "rs_68c1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
    ),
    *(
        (
            "response.reasoning_summary_text.delta",
            {"item_id": "rs_68c1", "output_index": 0, "summary_index": 0, "delta": piece},
        )
        for piece in ("Need weather", " in two cities.")
    ),
    (
        "response.reasoning_summary_text.done",
        {
            "item_id": "rs_68c1",
            "output_index": 0,
            "summary_index": 0,
            "text": "Need weather in two cities.",
        },
    ),
    (
        "response.reasoning_summary_text.delta",
        {"item_id": "rs_68c1", "output_index": 0, "summary_index": 1, "delta": "Call both."},
    ),
    ("response.output_item.done", {"item": REASONING_DONE, "output_index": 0}),
    (
        "response.output_item.added",
        {
            "item": {**MESSAGE, "status": "in_progress", "content": []},
            "output_index": 1,
        },
    ),
    (
        "response.content_part.added",
        {
            "item_id": "msg_68c1",
            "output_index": 1,
            "content_index": 0,
            "part": {"type": "output_text", "annotations": [], "text": ""},
        },
    ),
    *(
        (
            "response.output_text.delta",
            {
                "item_id": "msg_68c1",
                "output_index": 1,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
                "obfuscation": "x1",
            },
        )
        for piece in ("Checking ", "both.")
    ),
    ("response.output_item.done", {"item": MESSAGE, "output_index": 1}),
    (
        "response.output_item.added",
        {"item": {**CALL_A, "status": "in_progress", "arguments": ""}, "output_index": 2},
    ),
    *(
        (
            "response.function_call_arguments.delta",
            {"item_id": "fc_68a", "output_index": 2, "delta": piece},
        )
        for piece in ('{"city":', '"Paris"}')
    ),
    (
        "response.function_call_arguments.done",
        {"item_id": "fc_68a", "output_index": 2, "arguments": '{"city":"Paris"}'},
    ),
    ("response.output_item.done", {"item": CALL_A, "output_index": 2}),
    (
        "response.output_item.added",
        {"item": {**CALL_B, "status": "in_progress", "arguments": ""}, "output_index": 3},
    ),
    ("response.output_item.done", {"item": CALL_B, "output_index": 3}),
    (
        "response.completed",
        {
            "response": response_object(
                "completed", [REASONING_DONE, MESSAGE, CALL_A, CALL_B], usage=USAGE
            )
        },
    ),
)
EXPECTED_USAGE = Usage(
    input_tokens=1200, output_tokens=300, cache_read_tokens=1000, reasoning_tokens=200
)


def test_recorded_stream_decodes_the_same_at_every_split(
    at_every_split: Callable[..., list[ir.Event]],
) -> None:
    events = at_every_split(openai_responses.Decoder, RECORDED)
    assert events == [
        ir.Start("resp_68c1", "gpt-5-2025-08-07"),
        ir.ReasoningDelta(0, "Need weather"),
        ir.ReasoningDelta(0, " in two cities."),
        ir.ReasoningDelta(0, "\n\n"),
        ir.ReasoningDelta(0, "Call both."),
        ir.ReasoningDelta(0, signature="rs_68c1 gAAAAABoWxyz==", origin=FORMAT),
        ir.BlockEnd(0),
        ir.TextDelta(1, "Checking "),
        ir.TextDelta(1, "both."),
        ir.BlockEnd(1),
        ir.ToolCallStart(2, "call_A", "get_weather"),
        ir.ToolArgsDelta(2, '{"city":'),
        ir.ToolArgsDelta(2, '"Paris"}'),
        ir.BlockEnd(2),
        ir.ToolCallStart(3, "call_B", "get_weather"),
        ir.ToolArgsDelta(3, '{"city":"Rome"}'),
        ir.BlockEnd(3),
        ir.Finish("tool_use", EXPECTED_USAGE),
    ]


def test_a_stream_cut_short_ends_in_an_error() -> None:
    decoder = openai_responses.Decoder()
    events = decoder.feed(RECORDED[: RECORDED.index(b"event: response.completed")])
    assert not any(isinstance(e, ir.Finish) for e in events)
    assert decoder.finish() == [
        ir.StreamError(502, "the provider's stream ended before the answer was complete")
    ]
    assert decoder.finish() == []


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            (
                "response.failed",
                {
                    "response": response_object(
                        "failed", [], error={"code": "rate_limit_exceeded", "message": "Slow down."}
                    )
                },
            ),
            ir.StreamError(429, "Slow down."),
        ),
        (
            (
                "error",
                {"code": "server_error", "message": "The server had an error.", "param": None},
            ),
            ir.StreamError(500, "The server had an error."),
        ),
        (
            (
                "response.incomplete",
                {
                    "response": response_object(
                        "incomplete",
                        [],
                        incomplete_details={"reason": "max_output_tokens"},
                        usage=USAGE,
                    )
                },
            ),
            ir.Finish("max_tokens", EXPECTED_USAGE),
        ),
        (
            (
                "response.incomplete",
                {
                    "response": response_object(
                        "incomplete", [], incomplete_details={"reason": "content_filter"}
                    )
                },
            ),
            ir.Finish("refusal", Usage()),
        ),
    ],
)
def test_how_a_stream_ends(event: tuple[str, dict[str, Any]], expected: ir.Event) -> None:
    decoder = openai_responses.Decoder()
    start = ("response.created", {"response": response_object("in_progress", [])})
    events = decoder.feed(sse(start, event)) + decoder.finish()
    assert events[1:] == [expected]
    assert decoder.feed(sse(event)) == []  # nothing after the end


def test_a_refusal_streams_as_text_and_ends_as_a_refusal() -> None:
    decoder = openai_responses.Decoder()
    refusal = {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "I can't."}
    completed = {"response": response_object("completed", [], usage=USAGE)}
    events = decoder.feed(
        sse(("response.refusal.delta", refusal), ("response.completed", completed))
    )
    assert events == [
        ir.TextDelta(0, "I can't."),
        ir.BlockEnd(0),  # the item was never said done: it ends with the answer
        ir.Finish("refusal", EXPECTED_USAGE),
    ]


def test_reasoning_shown_whole_at_the_end_and_garbage_ignored() -> None:
    decoder = openai_responses.Decoder()
    item = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "thought"}],
    }
    data = b"data: not json\n\n" + sse(
        ("response.output_item.done", {"item": item, "output_index": 0})
    )
    assert decoder.feed(data) == [ir.ReasoningDelta(0, "thought"), ir.BlockEnd(0)]


def test_plain_answer_read() -> None:
    body = response_object("completed", [REASONING_DONE, MESSAGE, CALL_A, CALL_B], usage=USAGE)
    assert openai_responses.read_response(body) == ir.Response(
        id="resp_68c1",
        model="gpt-5-2025-08-07",
        parts=(
            ir.Reasoning(
                "Need weather in two cities.\n\nCall both.", "rs_68c1 gAAAAABoWxyz==", origin=FORMAT
            ),
            ir.Text("Checking both."),
            ir.ToolCall("call_A", "get_weather", '{"city":"Paris"}'),
            ir.ToolCall("call_B", "get_weather", '{"city":"Rome"}'),
        ),
        stop="tool_use",
        usage=EXPECTED_USAGE,
    )
    refused = response_object(
        "completed",
        [{**MESSAGE, "content": [{"type": "refusal", "refusal": "No."}]}],
    )
    assert openai_responses.read_response(refused).stop == "refusal"
    assert openai_responses.read_response(refused).parts == (ir.Text("No."),)


def test_errors_read() -> None:
    body = b'{"error": {"message": "Invalid model.", "type": "invalid_request_error"}}'
    assert openai_responses.read_error(400, body) == "Invalid model."
    bad_key = b'{"error": {"message": "Incorrect API key provided: sk-abc***xyz."}}'
    assert openai_responses.read_error(401, bad_key) == (
        "the provider refused irisgate's credentials (401)"
    )
    assert openai_responses.read_error(502, b"<html>bad gateway</html>") == (
        "the provider answered 502"
    )
    assert openai_responses.read_error(500, b"{}") == "the provider answered 500"


# --- client side ----------------------------------------------------------------------------

CLIENT_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "instructions": "Be brief.",
    "input": [
        {"role": "developer", "content": "Use metric units."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather in Paris and Rome? See the map."},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                {"type": "input_image", "image_url": "https://example.com/map.png"},
            ],
        },
        REASONING_DONE,
        {
            "type": "function_call",
            "call_id": "call_A",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "type": "function_call",
            "call_id": "call_B",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
        },
        {"type": "function_call_output", "call_id": "call_A", "output": "18 C"},
        {
            "type": "function_call_output",
            "call_id": "call_B",
            "output": [
                {"type": "input_text", "text": "see chart"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Paris 18 C."}],
        },
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather now",
            "parameters": WEATHER,
            "strict": False,
        }
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": True,
    "max_output_tokens": 2048,
    "temperature": 0.5,
    "top_p": 0.9,
    "text": {
        "format": {"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True},
        "verbosity": "medium",
    },
    "reasoning": {"effort": "high", "summary": "auto"},
    "include": ["reasoning.encrypted_content"],
    "store": False,
    "stream": True,
    "metadata": {"team": "a"},
    "prompt_cache_key": "k",
}


def test_client_request_read() -> None:
    r = openai_responses.read_request(CLIENT_REQUEST, model="claude-sonnet-4-5", stream=True)
    assert r.system == "Be brief.\n\nUse metric units."
    assert r.messages == (
        ir.Message(
            "user",
            (
                ir.Text("Weather in Paris and Rome? See the map."),
                ir.Image("image/png", PNG),
                ir.Image("", url="https://example.com/map.png"),
            ),
        ),
        ir.Message(
            "assistant",
            (
                ir.Reasoning(
                    "Need weather in two cities.\n\nCall both.",
                    "rs_68c1 gAAAAABoWxyz==",
                    origin=FORMAT,
                ),
                ir.ToolCall("call_A", "get_weather", '{"city":"Paris"}'),
                ir.ToolCall("call_B", "get_weather", '{"city":"Rome"}'),
            ),
        ),
        ir.Message(
            "user",
            (
                ir.ToolResult("call_A", "get_weather", (ir.Text("18 C"),)),
                ir.ToolResult(
                    "call_B", "get_weather", (ir.Text("see chart"), ir.Image("image/png", PNG))
                ),
            ),
        ),
        ir.Message("assistant", (ir.Text("Paris 18 C."),)),
        ir.Message("user", (ir.Text("Thanks"),)),
    )
    assert r.tools == (ir.Tool("get_weather", "Weather now", WEATHER),)
    assert r.tool_choice == ir.ToolChoice("tool", "get_weather")
    assert (r.parallel_tool_calls, r.max_tokens, r.temperature, r.top_p) == (True, 2048, 0.5, 0.9)
    assert r.response_format == ir.ResponseFormat("json_schema", "weather", WEATHER, strict=True)
    assert (r.reasoning_effort, r.stream, r.model) == ("high", True, "claude-sonnet-4-5")


def test_round_trip_through_the_neutral_shape_keeps_the_request() -> None:
    r = openai_responses.read_request(CLIENT_REQUEST, model="gpt-5", stream=True)
    written = openai_responses.write_request(r)
    again = openai_responses.read_request(written, model="gpt-5", stream=True)
    assert again == r
    assert written["store"] is False
    assert written["include"] == ["reasoning.encrypted_content"]
    assert written["tools"][0]["strict"] is False  # the Responses API's default is strict
    # the reasoning item goes back with its id and encrypted content
    assert {
        "id": "rs_68c1",
        "type": "reasoning",
        "encrypted_content": "gAAAAABoWxyz==",
    }.items() <= written["input"][1].items()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hi", (ir.Message("user", (ir.Text("Hi"),)),)),
        (
            [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "a"}],
                },
                {"role": "user", "content": "b"},
            ],
            (ir.Message("user", (ir.Text("a"), ir.Text("b"))),),
        ),
    ],
)
def test_input_forms(body: Any, expected: tuple[ir.Message, ...]) -> None:
    assert (
        openai_responses.read_request({"input": body}, model="m", stream=False).messages == expected
    )


@pytest.mark.parametrize(
    ("fields", "effort", "fmt", "choice"),
    [
        ({"reasoning": {"effort": "none"}}, None, None, None),
        ({"reasoning": {"effort": "xhigh"}}, "high", None, None),
        ({"reasoning": {"summary": "auto"}}, None, None, None),
        (
            {"text": {"format": {"type": "json_object"}}},
            None,
            ir.ResponseFormat("json_object"),
            None,
        ),
        ({"text": {"format": {"type": "text"}}}, None, None, None),
        ({"tool_choice": "required"}, None, None, ir.ToolChoice("required")),
        ({"tool_choice": "none"}, None, None, ir.ToolChoice("none")),
    ],
)
def test_request_options(fields: dict[str, Any], effort: str | None, fmt: Any, choice: Any) -> None:
    r = openai_responses.read_request({"input": "x", **fields}, model="m", stream=False)
    assert (r.reasoning_effort, r.response_format, r.tool_choice) == (effort, fmt, choice)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"previous_response_id": "resp_1"}, "'previous_response_id' needs a provider"),
        ({"conversation": "conv_1"}, "'conversation'"),
        ({"prompt": {"id": "pmpt_1"}}, "'prompt'"),
        ({"max_tool_calls": 3}, "'max_tool_calls'"),
        ({"background": True}, "'background'"),
        ({"top_logprobs": 2}, "'top_logprobs'"),
        ({"truncation": "auto"}, "'truncation'"),
        ({"include": ["file_search_call.results"]}, "'include[0]'"),
        ({"include": [{"a": 1}]}, "'include[0]'"),
        ({"reasoning": {"effort": ["high"]}}, "'reasoning.effort' must be a string"),
        ({"frequency_penalty": 1}, "'frequency_penalty'"),
        ({"tools": [{"type": "web_search"}]}, "built-in 'web_search' tool"),
        ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "'tools[0]'"),
        ({"tool_choice": {"type": "web_search_preview"}}, "'tool_choice'"),
        ({"text": {"verbosity": "low"}}, "'text.verbosity'"),
        ({"text": {"format": {"type": "grammar"}}}, "'text.format.type'"),
        ({"text": {"other": 1}}, "'text.other'"),
        ({"reasoning": {"effort": "huge"}}, "'reasoning.effort'"),
        ({"reasoning": {"other": 1}}, "'reasoning.other'"),
        ({"parallel_tool_calls": "yes"}, "'parallel_tool_calls'"),
        ({"temperature": "hot"}, "'temperature'"),
        ({"max_output_tokens": -1}, "'max_output_tokens'"),
        ({"input": None}, "'input' is required"),
        (
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "'input[0]' is a 'item_reference' item",
        ),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "'input[0]'"),
        ({"input": [{"role": "tool", "content": "x"}]}, "'input[0].role'"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "'input[0].content[0]' is a 'input_file' part",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "'input[0].content[0].file_id'",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "http://x/y.png"}],
                    }
                ]
            },
            "must be an https URL or a base64 data: URL",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "data:image/tiff;base64,AA"}
                        ],
                    }
                ]
            },
            "'image/tiff'",
        ),
        (
            {
                "input": [
                    {
                        "role": "system",
                        "content": [
                            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}
                        ],
                    }
                ]
            },
            "may hold only text",
        ),
        ({"input": [{"role": "user", "content": 3}]}, "'input[0].content' must be an array"),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "'input[0].call_id'",
        ),
        ({"input": ["x"]}, "'input[0]' must be an object"),
    ],
)
def test_refused_fields_name_themselves(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ir.Untranslatable) as caught:
        openai_responses.read_request({"input": "x", **fields}, model="m", stream=False)
    assert named in str(caught.value)


# --- provider side --------------------------------------------------------------------------


def test_provider_request_from_another_format() -> None:
    request = ir.Request(
        model="gpt-5",
        system="sys",
        messages=(
            ir.Message("user", (ir.Text("hi"), ir.Image("image/png", PNG))),
            ir.Message(
                "assistant",
                (
                    ir.Reasoning("thinking...", "sig-anthropic", origin="anthropic_messages"),
                    ir.Text("calling"),
                    ir.ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}'),
                ),
            ),
            ir.Message("user", (ir.ToolResult("toolu_1", "", (ir.Text("cold"),), is_error=True),)),
        ),
        tool_choice=ir.ToolChoice("auto"),
        response_format=ir.ResponseFormat("json_schema", schema=WEATHER),
        reasoning_budget=5000,
        stream=False,
    )
    body = openai_responses.write_request(request)
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "hi"},
                {
                    "type": "input_image",
                    "image_url": f"data:image/png;base64,{PNG}",
                    "detail": "auto",
                },
            ],
        },
        # Anthropic's signed thinking cannot go to OpenAI: left out, the answer kept
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "calling"}],
        },
        {
            "type": "function_call",
            "call_id": "toolu_1",
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
        {"type": "function_call_output", "call_id": "toolu_1", "output": "cold"},
    ]
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert body["tool_choice"] == "auto"
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "response", "schema": WEATHER, "strict": False}
    }
    assert "stream" not in body
    assert openai_responses.provider_path("gpt-5", True) == "/v1/responses"


def test_stop_sequences_are_refused_by_the_responses_api() -> None:
    with pytest.raises(ir.Untranslatable, match="'stop' sequences"):
        openai_responses.write_request(ir.Request(model="m", messages=(), stop=("END",)))


# --- client side answers, read by the openai SDK --------------------------------------------


def sdk_client(data: bytes) -> openai.OpenAI:
    """An openai SDK client whose HTTP answers are `data` (no server: the bytes are the test)."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://irisgate.test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )


def sdk_stream(data: bytes) -> tuple[list[Any], Any]:
    """The events and final response the openai SDK's `responses.stream` makes of `data`."""
    with sdk_client(data).responses.stream(model="claude-sonnet-4-5", input="hi") as stream:
        events = list(stream)
        return events, stream.get_final_response()


def parsed(data: bytes) -> list[dict[str, Any]]:
    out = [json.loads(e.data) for e in SSEParser().feed(data)]
    for event in out:
        EVENTS.validate_python(event)
    return out


PROVIDER_EVENTS: list[ir.Event] = [
    ir.Start("msg_01XYZ", "claude-sonnet-4-5"),
    ir.ReasoningDelta(0, "Two cities"),
    ir.ReasoningDelta(0, ", two calls."),
    ir.ReasoningDelta(0, signature="EqQBCkYIBxgC", origin="anthropic_messages"),
    ir.BlockEnd(0),
    ir.TextDelta(1, "Checking"),
    ir.TextDelta(1, " both."),
    ir.BlockEnd(1),
    ir.ToolCallStart(2, "toolu_A", "get_weather"),
    ir.ToolArgsDelta(2, '{"city":'),
    ir.ToolArgsDelta(2, '"Paris"}'),
    ir.BlockEnd(2),
    ir.ToolCallStart(3, "toolu_B", "get_weather"),
    ir.ToolArgsDelta(3, '{"city":"Rome"}'),
    ir.BlockEnd(3),
    ir.Finish("tool_use", EXPECTED_USAGE),
]


def test_encoded_stream_is_read_by_the_openai_sdk() -> None:
    encoder = openai_responses.Encoder("claude-sonnet-4-5")
    data = b"".join(encoder.encode(e) for e in PROVIDER_EVENTS) + encoder.close()
    events = parsed(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    _, final = sdk_stream(data)
    assert final.id == "resp_msg_01XYZ"
    assert final.status == "completed"
    assert [item.type for item in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert final.output[0].summary[0].text == "Two cities, two calls."
    # Anthropic's signature rides in the client's opaque field, marked, to come back
    assert final.output[0].encrypted_content == "irisgate:anthropic_messages:s:EqQBCkYIBxgC"
    assert final.output_text == "Checking both."
    calls = [(i.call_id, i.name, i.arguments) for i in final.output if i.type == "function_call"]
    assert calls == [
        ("toolu_A", "get_weather", '{"city":"Paris"}'),
        ("toolu_B", "get_weather", '{"city":"Rome"}'),
    ]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1200, 300)
    assert final.usage.input_tokens_details.cached_tokens == 1000
    assert final.usage.output_tokens_details.reasoning_tokens == 200
    assert final.usage.total_tokens == 1500


def test_own_encrypted_reasoning_goes_back_to_a_responses_client() -> None:
    encoder = openai_responses.Encoder("gpt-5")
    events = [
        ir.ReasoningDelta(0, "hm"),
        ir.ReasoningDelta(0, signature="rs_9 gAAAenc", origin=FORMAT),
        ir.BlockEnd(0),
        ir.Finish("end", Usage()),
    ]
    data = b"".join(encoder.encode(e) for e in events)
    _, final = sdk_stream(data)
    assert final.output[0].encrypted_content == "gAAAenc"


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [
        ("max_tokens", "incomplete", "max_output_tokens"),
        ("refusal", "incomplete", "content_filter"),
        ("end", "completed", None),
    ],
)
def test_how_an_encoded_stream_ends(stop: ir.StopReason, status: str, reason: str | None) -> None:
    encoder = openai_responses.Encoder("m")
    data = encoder.encode(ir.TextDelta(0, "partial")) + encoder.encode(ir.Finish(stop, Usage(5, 7)))
    last = parsed(data)[-1]
    assert last["type"] == (
        "response.completed" if status == "completed" else "response.incomplete"
    )
    assert last["response"]["status"] == status
    assert (last["response"]["incomplete_details"] or {}).get("reason") == reason
    assert last["response"]["output"][0]["content"][0]["text"] == "partial"  # closed by Finish
    assert encoder.encode(ir.TextDelta(0, "late")) == b""
    assert encoder.close() == b""


def test_an_error_mid_stream_fails_the_response() -> None:
    encoder = openai_responses.Encoder("m")
    data = encoder.encode(ir.Start("abc", "m")) + encoder.encode(ir.TextDelta(0, "so"))
    data += encoder.encode(ir.StreamError(529, "Overloaded"))
    events = parsed(data)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "Overloaded"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "Overloaded"}
    stream = sdk_client(data).responses.create(model="m", input="hi", stream=True)
    kinds = [(e.type, getattr(e, "message", None)) for e in stream]
    assert kinds[-2:] == [("error", "Overloaded"), ("response.failed", None)]


def test_a_stream_that_never_finished_is_closed_as_failed() -> None:
    encoder = openai_responses.Encoder("m")
    data = encoder.encode(ir.ToolCallStart(0, "c", "f")) + encoder.close()
    events = parsed(data)
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.failed"
    assert "ended before the answer was complete" in events[-1]["response"]["error"]["message"]


def test_stray_events_are_ignored() -> None:
    encoder = openai_responses.Encoder("m")
    assert encoder.encode(ir.Start("resp_1", "m")) != b""
    assert encoder.encode(ir.Start("resp_1", "m")) == b""
    assert encoder.encode(ir.ToolArgsDelta(5, "x")) == b""
    assert encoder.encode(ir.BlockEnd(5)) == b""
    encoder.encode(ir.TextDelta(0, "a"))
    assert encoder.encode(ir.ToolArgsDelta(0, "x")) == b""  # a text block takes no arguments
    assert encoder.encode(ir.ReasoningDelta(0, "x")) == b""


def test_plain_answer_written_for_a_responses_client() -> None:
    answer = ir.Response(
        id="msg_1",
        model="claude-sonnet-4-5",
        parts=(
            ir.Reasoning("think", "sig", origin="anthropic_messages"),
            ir.Text("Hello"),
            ir.Text(" there"),
            ir.ToolCall("toolu_1", "f", "{}"),
        ),
        stop="tool_use",
        usage=Usage(input_tokens=10, output_tokens=4, cache_read_tokens=3, cache_write_5m_tokens=2),
    )
    body = openai_responses.write_response(answer)
    response = Response.model_validate(body)
    assert response.output_text == "Hello there"
    assert [i.type for i in response.output] == ["reasoning", "message", "function_call"]
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert body["usage"]["input_tokens_details"]["cache_write_tokens"] == 2
    cut = openai_responses.write_response(ir.Response("resp_2", "m", (), "max_tokens"))
    assert (cut["id"], cut["status"], cut["incomplete_details"]) == (
        "resp_2",
        "incomplete",
        {"reason": "max_output_tokens"},
    )


def test_an_event_nested_too_deep_ends_the_stream() -> None:
    deep = {"type": "response.output_text.delta", "delta": "x", "extra": [[[[]]]]}
    for _ in range(200):
        deep["extra"] = [deep["extra"]]
    decoder = openai_responses.Decoder()
    events = decoder.feed(sse(("response.output_text.delta", deep), ("response.created", {})))
    assert events == [
        ir.StreamError(502, "the provider's answer held JSON nested too deep to translate")
    ]
    assert decoder.finish() == []


def test_another_apis_reasoning_comes_back_through_a_responses_client() -> None:
    """Anthropic refuses a tool turn with thinking on unless its signed thinking comes back:
    a Responses client carries it in `encrypted_content` and irisgate reads it out again."""
    thinking = ir.Reasoning("Two cities.", "EqQBCkYIBxgC", origin="anthropic_messages")
    redacted = ir.Reasoning(redacted="ZW5jcnlwdGVk", origin="anthropic_messages")
    answer = ir.Response(
        "msg_1",
        "claude-sonnet-4-5",
        (thinking, redacted, ir.ToolCall("toolu_1", "get_weather", '{"city":"Paris"}')),
        "tool_use",
    )
    output = Response.model_validate(openai_responses.write_response(answer)).output
    history = [item.model_dump(exclude_none=True) for item in output]
    history.append({"type": "function_call_output", "call_id": "toolu_1", "output": "18 C"})
    request = openai_responses.read_request({"input": history}, model="m", stream=False)
    assert request.messages[0] == ir.Message(
        "assistant", (thinking, redacted, ir.ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'))
    )
    # never to the Responses API itself: it did not make them
    written = openai_responses.write_request(request)
    assert [item["type"] for item in written["input"]] == ["function_call", "function_call_output"]


@pytest.mark.parametrize(
    "value", ["irisgate:", "irisgate:anthropic_messages", "irisgate:x:q:sig", "irisgate::s:sig"]
)
def test_a_value_irisgate_did_not_mark_is_the_responses_apis_own(value: str) -> None:
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": value}
    request = openai_responses.read_request({"input": [item]}, model="m", stream=False)
    assert request.messages[0].parts == (ir.Reasoning("", f"rs_1 {value}", origin=FORMAT),)


def test_small_cases() -> None:
    empty = openai_responses.read_request(
        {"input": [{"role": "user", "content": ""}, {"role": "user", "content": "hi"}]},
        model="m",
        stream=False,
    )
    assert empty.messages == (ir.Message("user", (ir.Text("hi"),)),)
    body = openai_responses.write_request(
        ir.Request("m", (), response_format=ir.ResponseFormat("json_object"), stream=True)
    )
    assert (body["text"], body["stream"]) == ({"format": {"type": "json_object"}}, True)
    encoder = openai_responses.Encoder("m")
    opened = encoder.encode(ir.TextDelta(0, ""))  # an empty first piece opens the message only
    assert [e["type"] for e in parsed(opened)] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]


def test_names_the_caller_wrote_are_quoted_cut_and_printable() -> None:
    with pytest.raises(ir.Untranslatable) as caught:
        openai_responses.read_request(
            {"input": "x", "\x1b[31m" + "k" * 500: 1}, model="m", stream=False
        )
    message = str(caught.value)
    assert "\x1b" not in message and len(message) < 200 and "…" in message
    decoder = openai_responses.Decoder()
    error = {"code": "server_error", "message": "\x00" + "e" * 5000}
    [failed] = decoder.feed(sse(("error", error)))
    assert isinstance(failed, ir.StreamError)
    assert "\x00" not in failed.message and len(failed.message) <= 1001


# --- namespace tools (Codex's sub-agent tools) ------------------------------------------------

NAMESPACED = {
    "input": [
        {"role": "user", "content": "close it"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "namespace": "multi_agent_v1",
            "name": "close_agent",
            "arguments": '{"target": "a1"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "closed"},
    ],
    "tools": [
        {"type": "function", "name": "exec_command", "parameters": WEATHER},
        {
            "type": "namespace",
            "name": "multi_agent_v1",
            "description": "Tools for sub-agents.",
            "tools": [
                {
                    "type": "function",
                    "name": "close_agent",
                    "description": "Close an agent.",
                    "parameters": WEATHER,
                }
            ],
        },
    ],
}


def test_a_namespaces_functions_reach_the_provider_as_function_tools() -> None:
    request = openai_responses.read_request(NAMESPACED, model="m", stream=True)
    assert request.tools == (
        ir.Tool("exec_command", "", WEATHER),
        ir.Tool(
            "multi_agent_v1__close_agent",
            "Tools for sub-agents.\n\nClose an agent.",
            WEATHER,
            "multi_agent_v1",
        ),
    )
    call, result = request.messages[1].parts[0], request.messages[2].parts[0]
    assert call == ir.ToolCall("call_1", "multi_agent_v1__close_agent", '{"target": "a1"}')
    assert isinstance(result, ir.ToolResult) and result.name == "multi_agent_v1__close_agent"


def test_a_call_of_a_namespaces_function_reaches_the_client_split() -> None:
    """The openai SDK reads the call with its `namespace` and own `name`, streamed or not;
    a call of an ordinary function stays as it is."""
    tools = openai_responses.read_request(NAMESPACED, model="m", stream=True).tools
    events = [
        ir.Start("msg_1", "claude-sonnet-4-5"),
        ir.ToolCallStart(0, "toolu_1", "multi_agent_v1__close_agent"),
        ir.ToolArgsDelta(0, '{"target": "a2"}'),
        ir.BlockEnd(0),
        ir.ToolCallStart(1, "toolu_2", "exec_command"),
        ir.BlockEnd(1),
        ir.Finish("tool_use", Usage(5, 7)),
    ]
    encoder = openai_responses.Encoder("claude-sonnet-4-5", tools)
    data = b"".join(encoder.encode(e) for e in events) + encoder.close()
    added = [e["item"] for e in parsed(data) if e["type"] == "response.output_item.added"]
    assert (added[0]["namespace"], added[0]["name"]) == ("multi_agent_v1", "close_agent")
    _, final = sdk_stream(data)
    calls = [(i.namespace, i.name, i.arguments) for i in final.output]
    assert calls == [
        ("multi_agent_v1", "close_agent", '{"target": "a2"}'),
        (None, "exec_command", ""),
    ]
    answer = ir.Response(
        "msg_1",
        "m",
        (ir.ToolCall("toolu_1", "multi_agent_v1__close_agent", "{}"),),
        "tool_use",
    )
    whole = Response.model_validate(openai_responses.write_response(answer, tools))
    item = whole.output[0]
    assert item.type == "function_call"
    assert (item.namespace, item.name) == ("multi_agent_v1", "close_agent")
    # without the request's tools (another caller's answer) the name is left alone
    plain = Response.model_validate(openai_responses.write_response(answer))
    assert plain.output[0].name == "multi_agent_v1__close_agent"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tools", "named"),
    [
        (
            [
                {"type": "function", "name": "ns__f"},
                {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]},
            ],
            "two tools are named 'ns__f'",
        ),
        ([{"type": "namespace", "name": "", "tools": []}], "'tools[0].name' must not be empty"),
        (
            [{"type": "namespace", "name": "ns", "tools": [{"type": "custom", "name": "g"}]}],
            "'tools[0].tools[0]' is OpenAI's built-in 'custom' tool",
        ),
        ([{"type": "namespace", "name": "ns"}], "'tools[0].tools'"),
        ([{"type": "web_search", "external_web_access": False}], "built-in 'web_search' tool"),
    ],
)
def test_namespaces_that_cannot_be_carried(tools: list[Any], named: str) -> None:
    with pytest.raises(ir.Untranslatable) as caught:
        openai_responses.read_request({"input": "x", "tools": tools}, model="m", stream=False)
    assert named in str(caught.value)


def test_codex_client_metadata_is_accepted_and_not_sent() -> None:
    body = {"input": "x", "client_metadata": {"x-codex-installation-id": "abc"}}
    request = openai_responses.read_request(body, model="m", stream=False)
    assert "client_metadata" not in json.dumps(openai_responses.write_request(request))
