"""The Gemini generateContent adapter: requests both ways, answers both ways, `alt=sse`
streams decoded at every byte split and encoded streams read by the google-genai SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types

from irisgate.translate import CLIENTS, PROVIDERS, gemini, ir
from irisgate.usage.tokens import Usage

FORMAT = "gemini_generate_content"
RESPONSE_ID = "kLp2aI2DGr2Wz7IPu8HY8AE"
SIGNATURE = "CiQB0e2Kb3Rfc2lnbmF0dXJlX29mX3RoZV90aG91Z2h0"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def sse(*chunks: dict[str, Any]) -> bytes:
    """Chunks as generativelanguage.googleapis.com sends them with `alt=sse`."""
    return b"".join(
        b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\r\n\r\n" for c in chunks
    )


def chunk(parts: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if "finishReason" in more:
        candidate["finishReason"] = more.pop("finishReason")
    return {
        "candidates": [candidate],
        "usageMetadata": more.pop("usage", {"promptTokenCount": 120, "totalTokenCount": 120}),
        "modelVersion": "gemini-2.5-flash",
        "responseId": RESPONSE_ID,
        **more,
    }


FINAL_USAGE = {
    "promptTokenCount": 120,
    "candidatesTokenCount": 40,
    "totalTokenCount": 220,
    "cachedContentTokenCount": 100,
    "thoughtsTokenCount": 60,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120}],
}
EXPECTED_USAGE = Usage(
    input_tokens=120, output_tokens=100, cache_read_tokens=100, reasoning_tokens=60
)

#: a streamed answer with thought summaries, text, then two parallel calls (no ids, as
#: Gemini 2.5 sends them), the first with the thought signature, usage on the last chunk
RECORDED = sse(
    chunk([{"text": "**Planning** I need the weather", "thought": True}]),
    chunk([{"text": " for both cities.", "thought": True}]),
    chunk([{"text": "Checking "}]),
    chunk([{"text": "both."}]),
    chunk(
        [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": SIGNATURE,
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
        finishReason="STOP",
        usage=FINAL_USAGE,
    ),
)


def test_recorded_stream_decodes_the_same_at_every_split(
    at_every_split: Callable[..., list[ir.Event]],
) -> None:
    events = at_every_split(gemini.Decoder, RECORDED)
    assert events == [
        ir.Start(RESPONSE_ID, "gemini-2.5-flash"),
        ir.ReasoningDelta(0, "**Planning** I need the weather"),
        ir.ReasoningDelta(0, " for both cities."),
        ir.BlockEnd(0),
        ir.TextDelta(1, "Checking "),
        ir.TextDelta(1, "both."),
        ir.BlockEnd(1),
        ir.ReasoningDelta(2, signature=SIGNATURE, origin=FORMAT),
        ir.BlockEnd(2),
        ir.ToolCallStart(3, f"call_{RESPONSE_ID}_0", "get_weather"),
        ir.ToolArgsDelta(3, '{"city":"Paris"}'),
        ir.BlockEnd(3),
        ir.ToolCallStart(4, f"call_{RESPONSE_ID}_1", "get_weather"),
        ir.ToolArgsDelta(4, '{"city":"Rome"}'),
        ir.BlockEnd(4),
        ir.Finish("tool_use", EXPECTED_USAGE),
    ]


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (
            chunk([{"text": "cut"}], finishReason="MAX_TOKENS", usage=FINAL_USAGE),
            ir.Finish("max_tokens", EXPECTED_USAGE),
        ),
        (chunk([], finishReason="SAFETY"), ir.Finish("refusal", Usage(input_tokens=120))),
        (
            {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}},
            ir.Finish("refusal", Usage()),
        ),
        (
            {
                "error": {
                    "code": 503,
                    "message": "The model is overloaded.",
                    "status": "UNAVAILABLE",
                }
            },
            ir.StreamError(503, "The model is overloaded."),
        ),
    ],
)
def test_how_a_stream_ends(last: dict[str, Any], expected: ir.Event) -> None:
    decoder = gemini.Decoder()
    events = decoder.feed(b"data: [not json\r\n\r\n" + sse(last))
    assert events[-1] == expected
    assert decoder.feed(sse(chunk([{"text": "late"}]))) == []
    assert decoder.finish() == []


def test_a_stream_cut_short_ends_in_an_error() -> None:
    decoder = gemini.Decoder()
    events = decoder.feed(sse(chunk([{"text": "so far"}])))
    assert events == [ir.Start(RESPONSE_ID, "gemini-2.5-flash"), ir.TextDelta(0, "so far")]
    assert decoder.finish() == [
        ir.StreamError(502, "the provider's stream ended before the answer was complete")
    ]


def test_signature_on_a_thought_and_calls_with_ids() -> None:
    decoder = gemini.Decoder()
    data = sse(
        chunk(
            [
                {"text": "hm", "thought": True, "thoughtSignature": SIGNATURE},
                {"functionCall": {"id": "fc-1", "name": "f", "args": {}}},
                {"text": "done", "thoughtSignature": "c2lnMg=="},
            ],
            finishReason="STOP",
        )
    )
    assert decoder.feed(data)[1:] == [
        ir.ReasoningDelta(0, "hm", signature=SIGNATURE, origin=FORMAT),
        ir.BlockEnd(0),
        ir.ToolCallStart(1, "fc-1", "f"),
        ir.ToolArgsDelta(1, "{}"),
        ir.BlockEnd(1),
        ir.ReasoningDelta(2, signature="c2lnMg==", origin=FORMAT),
        ir.BlockEnd(2),
        ir.TextDelta(3, "done"),
        ir.BlockEnd(3),
        ir.Finish("tool_use", Usage(input_tokens=120)),
    ]


def test_plain_answer_read() -> None:
    body = chunk(
        [
            {"text": "Let me think", "thought": True},
            {"text": "Checking "},
            {"text": "both."},
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": SIGNATURE,
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
        finishReason="STOP",
        usage=FINAL_USAGE,
    )
    assert gemini.read_response(body) == ir.Response(
        id=RESPONSE_ID,
        model="gemini-2.5-flash",
        parts=(
            ir.Reasoning("Let me think"),
            ir.Text("Checking both."),
            ir.Reasoning(signature=SIGNATURE, origin=FORMAT),
            ir.ToolCall(f"call_{RESPONSE_ID}_0", "get_weather", '{"city":"Paris"}'),
            ir.ToolCall(f"call_{RESPONSE_ID}_1", "get_weather", '{"city":"Rome"}'),
        ),
        stop="tool_use",
        usage=EXPECTED_USAGE,
    )
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}}
    assert gemini.read_response(blocked).stop == "refusal"
    assert gemini.read_response(chunk([{"text": "x"}], finishReason="STOP")).stop == "end"


def test_errors_read() -> None:
    body = (
        b'{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}'
    )
    assert gemini.read_error(400, body) == "API key not valid."
    assert gemini.read_error(429, b"[" + body + b"]") == "API key not valid."
    assert gemini.read_error(502, b"upstream down") == "the provider answered 502"
    assert gemini.read_error(500, b"[]") == "the provider answered 500"


# --- client side ----------------------------------------------------------------------------

OPENAPI_WEATHER = {
    "type": "OBJECT",
    "properties": {
        "city": {"type": "STRING", "description": "City name"},
        "days": {"type": "INTEGER", "nullable": True},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        "unit": {"anyOf": [{"type": "STRING", "enum": ["c", "f"]}]},
    },
    "required": ["city"],
    "propertyOrdering": ["city", "days"],
}
JSON_WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "unit": {"anyOf": [{"type": "string", "enum": ["c", "f"]}]},
    },
    "required": ["city"],
}

CLIENT_REQUEST: dict[str, Any] = {
    "systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}, {"text": "Metric."}]},
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Weather in Paris and Rome?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/m.jpg"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SIGNATURE,
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "18 C"}}},
                {"functionResponse": {"name": "get_weather", "response": {"error": "no data"}}},
            ],
        },
        {"role": "model", "parts": [{"text": "Paris is 18 C."}]},
        {"parts": [{"text": "And a JSON summary?"}]},
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": OPENAPI_WEATHER,
                },
                {"name": "get_time", "parametersJsonSchema": WEATHER},
                {"name": "ping"},
            ]
        }
    ],
    "toolConfig": {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    },
    "generationConfig": {
        "maxOutputTokens": 2048,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseSchema": OPENAPI_WEATHER,
        "thinkingConfig": {"thinkingBudget": 3000, "includeThoughts": True},
        "candidateCount": 1,
    },
}


def test_client_request_read() -> None:
    r = gemini.read_request(CLIENT_REQUEST, model="claude-sonnet-4-5", stream=True)
    assert r.system == "Be brief.\n\nMetric."
    assert r.messages == (
        ir.Message(
            "user",
            (
                ir.Text("Weather in Paris and Rome?"),
                ir.Image("image/png", PNG),
                ir.Image("image/jpeg", url="https://example.com/m.jpg"),
            ),
        ),
        ir.Message(
            "assistant",
            (
                ir.Reasoning(signature=SIGNATURE, origin=FORMAT),
                ir.ToolCall("call_1_0", "get_weather", '{"city":"Paris"}'),
                ir.ToolCall("call_1_1", "get_weather", '{"city":"Rome"}'),
            ),
        ),
        ir.Message(
            "user",
            (
                # no ids: answered in the calls' order, by name
                ir.ToolResult("call_1_0", "get_weather", (ir.Text("18 C"),)),
                ir.ToolResult("call_1_1", "get_weather", (ir.Text("no data"),), is_error=True),
            ),
        ),
        ir.Message("assistant", (ir.Text("Paris is 18 C."),)),
        ir.Message("user", (ir.Text("And a JSON summary?"),)),
    )
    assert r.tools == (
        ir.Tool("get_weather", "Weather now", JSON_WEATHER),
        ir.Tool("get_time", "", WEATHER),
        ir.Tool("ping", "", {"type": "object", "properties": {}}),
    )
    assert r.tool_choice == ir.ToolChoice("tool", "get_weather")
    assert (r.max_tokens, r.temperature, r.top_p, r.stop) == (2048, 0.5, 0.9, ("END",))
    assert r.response_format == ir.ResponseFormat("json_schema", "response", JSON_WEATHER)
    assert (r.reasoning_effort, r.reasoning_budget) == ("medium", 3000)
    assert (r.model, r.stream) == ("claude-sonnet-4-5", True)


def test_round_trip_through_the_neutral_shape_keeps_the_request() -> None:
    r = gemini.read_request(CLIENT_REQUEST, model="gemini-2.5-flash", stream=False)
    with pytest.raises(ir.Untranslatable, match="image URL"):
        gemini.write_request(r)  # the Gemini API itself takes no image URLs
    user = r.messages[0]
    r = ir.Request(
        **{**_fields(r), "messages": (ir.Message("user", user.parts[:2]), *r.messages[1:])}
    )
    written = gemini.write_request(r)
    assert gemini.read_request(written, model="gemini-2.5-flash", stream=False) == r
    model_turn = written["contents"][1]["parts"]
    assert model_turn[0]["thoughtSignature"] == SIGNATURE  # back on the first call
    assert "thoughtSignature" not in model_turn[1]
    results = written["contents"][2]["parts"]
    assert [p["functionResponse"]["id"] for p in results] == ["call_1_0", "call_1_1"]
    assert written["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 3000,
        "includeThoughts": True,
    }


def _fields(r: ir.Request) -> dict[str, Any]:
    return {name: getattr(r, name) for name in r.__slots__}


@pytest.mark.parametrize(
    ("config", "effort", "budget", "fmt"),
    [
        ({"thinkingConfig": {"thinkingBudget": -1}}, "medium", None, None),
        ({"thinkingConfig": {"thinkingBudget": 0}}, None, None, None),
        ({"thinkingConfig": {"thinkingLevel": "low"}}, "low", None, None),
        ({"thinkingConfig": {"includeThoughts": True}}, None, None, None),
        ({"responseMimeType": "application/json"}, None, None, ir.ResponseFormat("json_object")),
        (
            {"responseMimeType": "application/json", "responseJsonSchema": WEATHER},
            None,
            None,
            ir.ResponseFormat("json_schema", "response", WEATHER),
        ),
        ({"responseMimeType": "text/plain"}, None, None, None),
    ],
)
def test_generation_config(config: dict[str, Any], effort: Any, budget: Any, fmt: Any) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config}
    r = gemini.read_request(body, model="m", stream=False)
    assert (r.reasoning_effort, r.reasoning_budget, r.response_format) == (effort, budget, fmt)


@pytest.mark.parametrize(
    ("config", "choice"),
    [
        ({"functionCallingConfig": {"mode": "AUTO"}}, ir.ToolChoice("auto")),
        ({"functionCallingConfig": {"mode": "NONE"}}, ir.ToolChoice("none")),
        ({"functionCallingConfig": {"mode": "ANY"}}, ir.ToolChoice("required")),
        ({}, ir.ToolChoice("auto")),
    ],
)
def test_tool_config(config: dict[str, Any], choice: ir.ToolChoice) -> None:
    body = {"contents": [], "toolConfig": config}
    assert gemini.read_request(body, model="m", stream=False).tool_choice == choice


def test_the_sdks_snake_case_field_names_are_read() -> None:
    """google-genai sends some fields in snake_case (protobuf JSON takes both spellings)."""
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}],
            }
        ],
        "system_instruction": {"parts": [{"text": "sys"}]},
        "tools": [
            {
                "function_declarations": [
                    {
                        "name": "f",
                        "parameters_json_schema": {"type": "object", "properties": {"a_b": {}}},
                    },
                    {
                        "name": "g",
                        "parameters": {
                            "type": "OBJECT",
                            "any_of": [{"type": "STRING"}],
                            "properties": {"x_y": {"type": "STRING", "max_length": 3}},
                        },
                    },
                ]
            }
        ],
        "tool_config": {
            "function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}
        },
        "generation_config": {
            "max_output_tokens": 5,
            "thinking_config": {"include_thoughts": True, "thinking_budget": 2048},
            "response_mime_type": "application/json",
            "response_schema": {"type": "OBJECT", "property_ordering": ["a"]},
        },
    }
    r = gemini.read_request(body, model="m", stream=False)
    assert r.messages == (ir.Message("user", (ir.Image("image/png", PNG),)),)
    assert r.system == "sys"
    assert r.tools == (
        ir.Tool("f", "", {"type": "object", "properties": {"a_b": {}}}),
        ir.Tool(
            "g",
            "",
            {
                "type": "object",
                "anyOf": [{"type": "string"}],
                "properties": {"x_y": {"type": "string", "maxLength": 3}},
            },
        ),
    )
    assert r.tool_choice == ir.ToolChoice("tool", "f")
    assert (r.max_tokens, r.reasoning_budget) == (5, 2048)
    assert r.response_format == ir.ResponseFormat("json_schema", "response", {"type": "object"})


def test_results_with_ids_and_thoughts_in_history() -> None:
    body = {
        "systemInstruction": "plain",
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "plan", "thought": True},
                    {"functionCall": {"id": "a1", "name": "f", "args": {}}},
                    {"functionCall": {"id": "a2", "name": "f", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "a2", "name": "f", "response": {"n": 2}}},
                    {
                        "functionResponse": {
                            "id": "zz",
                            "name": "f",
                            "response": {"error": {"x": 1}},
                        }
                    },
                ],
            },
        ],
    }
    r = gemini.read_request(body, model="m", stream=False)
    assert r.system == "plain"
    assert r.messages[1].parts[0] == ir.Reasoning("plan")
    assert r.messages[2].parts == (
        ir.ToolResult("a2", "f", (ir.Text('{"n":2}'),)),
        ir.ToolResult("zz", "f", (ir.Text('{"x":1}'),), is_error=True),
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"cachedContent": "cachedContents/abc"}, "'cachedContent'"),
        ({"safetySettings": []}, "'safetySettings'"),
        ({"labels": {"a": "b"}}, "'labels'"),
        ({"tool_config": {"retrieval_config": {}}}, "'toolConfig.retrievalConfig'"),
        (
            {"tools": [{"functionDeclarations": [{"name": "f", "behavior": "NON_BLOCKING"}]}]},
            "function 'f': behavior",
        ),
        ({"tools": [{"googleSearch": {}}]}, "'tools[0].googleSearch' is a Google built-in tool"),
        ({"tools": [{"codeExecution": {}}]}, "'tools[0].codeExecution'"),
        (
            {"tools": [{"functionDeclarations": [{"name": "f", "response": {"type": "STRING"}}]}]},
            "response schema of function 'f'",
        ),
        (
            {
                "toolConfig": {
                    "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}
                }
            },
            "mode ANY with 2 allowed names",
        ),
        ({"toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}}, "mode VALIDATED"),
        ({"toolConfig": {"retrievalConfig": {}}}, "'toolConfig.retrievalConfig'"),
        ({"generationConfig": {"topK": 40}}, "'generationConfig.topK'"),
        ({"generationConfig": {"seed": 1}}, "'generationConfig.seed'"),
        ({"generationConfig": {"candidateCount": 2}}, "'generationConfig.candidateCount'"),
        (
            {"generationConfig": {"responseModalities": ["IMAGE"]}},
            "'generationConfig.responseModalities'",
        ),
        (
            {"generationConfig": {"responseMimeType": "text/x.enum"}},
            "'generationConfig.responseMimeType'",
        ),
        ({"generationConfig": {"responseJsonSchema": WEATHER}}, "needs 'responseMimeType'"),
        (
            {"generationConfig": {"thinkingConfig": {"thinkingBudget": "lots"}}},
            "'generationConfig.thinkingConfig.thinkingBudget'",
        ),
        (
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "ultra"}}},
            "'generationConfig.thinkingConfig.thinkingLevel'",
        ),
        (
            {"generationConfig": {"thinkingConfig": {"other": 1}}},
            "'generationConfig.thinkingConfig.other'",
        ),
        ({"generationConfig": {"maxOutputTokens": "many"}}, "'generationConfig.maxOutputTokens'"),
        (
            {"systemInstruction": {"parts": [{"inlineData": {}}]}},
            "'systemInstruction.parts[0].inlineData'",
        ),
        ({"contents": [{"role": "function", "parts": []}]}, "'contents[0].role'"),
        (
            {
                "contents": [
                    {"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "AA"}}]}
                ]
            },
            "'application/pdf'",
        ),
        (
            {
                "contents": [
                    {"parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}]}
                ]
            },
            "refers to a Google file",
        ),
        (
            {
                "contents": [
                    {
                        "parts": [
                            {"fileData": {"mimeType": "video/mp4", "fileUri": "https://x/v.mp4"}}
                        ]
                    }
                ]
            },
            "only images",
        ),
        (
            {"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]},
            "'contents[0].parts[0]' (executableCode)",
        ),
        (
            {"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]},
            "(functionCall) cannot be translated",
        ),
        (
            {"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "answers no function call",
        ),
        ({"contents": [{"parts": [{}]}]}, "(empty)"),
        ({"contents": "hi"}, "'contents' must be an array"),
    ],
)
def test_refused_fields_name_themselves(change: dict[str, Any], named: str) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}], **change}
    with pytest.raises(ir.Untranslatable) as caught:
        gemini.read_request(body, model="m", stream=False)
    assert named in str(caught.value)


# --- provider side --------------------------------------------------------------------------


def test_provider_request_from_another_format() -> None:
    request = ir.Request(
        model="gemini-2.5-pro",
        system="sys",
        messages=(
            ir.Message("user", (ir.Text("hi"), ir.Image("image/png", PNG))),
            ir.Message(
                "assistant",
                (
                    ir.Reasoning("thinking", "sig-anthropic", origin="anthropic_messages"),
                    ir.Text("calling"),
                    ir.ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}'),
                ),
            ),
            ir.Message(
                "user",
                (ir.ToolResult("toolu_1", "", (ir.Text("chart:"), ir.Image("image/png", PNG))),),
            ),
            ir.Message("user", (ir.Text("thanks"),)),
        ),
        tools=(ir.Tool("get_weather", "Weather", WEATHER),),
        tool_choice=ir.ToolChoice("required"),
        response_format=ir.ResponseFormat("json_object"),
        reasoning_effort="low",
        parallel_tool_calls=True,
        stream=True,
    )
    body = gemini.write_request(request)
    assert body == {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}],
            },
            {
                "role": "model",
                "parts": [
                    # Anthropic's signed thinking stays out; the answer and the call go
                    {"text": "calling"},
                    {
                        "functionCall": {
                            "id": "toolu_1",
                            "name": "get_weather",
                            "args": {"city": "Oslo"},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "toolu_1",
                            "name": "get_weather",
                            "response": {"output": "chart:"},
                        }
                    },
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"text": "thanks"},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather",
                        "parametersJsonSchema": WEATHER,
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        "generationConfig": {
            "responseMimeType": "application/json",
            "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
        },
    }
    assert (
        gemini.provider_path("gemini-2.5-pro", True)
        == "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert (
        gemini.provider_path("tuned/m 1", False) == "/v1beta/models/tuned%2Fm%201:generateContent"
    )


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        (ir.Request("m", (), parallel_tool_calls=False), "'parallel_tool_calls: false'"),
        (
            ir.Request("m", (ir.Message("user", (ir.Image("image/png", url="https://x/y.png"),)),)),
            "image URL",
        ),
        (
            ir.Request("m", (ir.Message("user", (ir.ToolResult("nope", "", ()),)),)),
            "answers no earlier tool call",
        ),
        (ir.Request("m", (ir.Message("user", (ir.ToolCall("c", "f", "{}"),)),)), "in a user turn"),
        (
            ir.Request("m", (ir.Message("assistant", (ir.Image("image/png", PNG),)),)),
            "in an assistant turn",
        ),
        (
            ir.Request("m", (ir.Message("assistant", (ir.ToolCall("c", "f", "[1]"),)),)),
            "not a JSON object",
        ),
        (
            ir.Request("m", (ir.Message("assistant", (ir.ToolCall("c", "f", "{oops"),)),)),
            "not valid JSON",
        ),
    ],
)
def test_provider_refusals(request_: ir.Request, named: str) -> None:
    with pytest.raises(ir.Untranslatable) as caught:
        gemini.write_request(request_)
    assert named in str(caught.value)


def test_provider_options() -> None:
    body = gemini.write_request(
        ir.Request(
            "m",
            (ir.Message("user", (ir.Text(""), ir.Text("x"))),),
            tool_choice=ir.ToolChoice("tool", "f"),
            max_tokens=10,
            temperature=0.0,
            top_p=1.0,
            stop=("a", "b"),
            response_format=ir.ResponseFormat("json_schema", "w", WEATHER, strict=True),
        )
    )
    assert body["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }
    assert body["generationConfig"] == {
        "maxOutputTokens": 10,
        "temperature": 0.0,
        "topP": 1.0,
        "stopSequences": ["a", "b"],
        "responseMimeType": "application/json",
        "responseJsonSchema": WEATHER,
    }


# --- client side answers, read by the google-genai SDK --------------------------------------


def sdk_chunks(data: bytes) -> list[types.GenerateContentResponse]:
    """The chunks google-genai's `generate_content_stream` makes of `data`."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        assert request.url.params["alt"] == "sse"
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url="http://irisgate.test",
            httpx_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        ),
    )
    return list(client.models.generate_content_stream(model="claude-sonnet-4-5", contents="hi"))


PROVIDER_EVENTS: list[ir.Event] = [
    ir.Start("msg_01XYZ", "claude-sonnet-4-5"),
    ir.ReasoningDelta(0, "Two cities"),
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
    ir.Finish("tool_use", EXPECTED_USAGE),
]


def test_encoded_stream_is_read_by_the_google_genai_sdk() -> None:
    encoder = gemini.Encoder("claude-sonnet-4-5")
    data = b"".join(encoder.encode(e) for e in PROVIDER_EVENTS) + encoder.close()
    chunks = sdk_chunks(data)
    parts = [p for c in chunks for p in c.candidates[0].content.parts]  # type: ignore[index,union-attr]
    assert [(p.text, p.thought) for p in parts[:4]] == [
        ("Two cities", True),
        ("", True),  # ends the thoughts with Anthropic's signature, marked (below)
        ("Checking", None),
        (" both.", None),
    ]
    calls = [
        (p.function_call.id, p.function_call.name, p.function_call.args)
        for p in parts
        if p.function_call
    ]
    assert calls == [
        ("toolu_A", "get_weather", {"city": "Paris"}),
        ("toolu_B", "get_weather", {"city": "Rome"}),  # closed by Finish
    ]
    signed = [p.thought_signature for p in parts if p.thought_signature]
    assert signed == [b"irisgate:anthropic_messages:s:EqQBCkYIBxgC"]
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    usage = last.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (120, 40)
    assert (usage.thoughts_token_count, usage.cached_content_token_count) == (60, 100)
    assert usage.total_token_count == 220
    assert all(c.usage_metadata is None for c in chunks[:-1])
    assert {c.response_id for c in chunks} == {"msg_01XYZ"}


def test_own_signature_goes_back_on_the_next_part() -> None:
    encoder = gemini.Encoder("gemini-2.5-flash")
    events = [
        ir.ReasoningDelta(0, signature=SIGNATURE, origin=FORMAT),
        ir.BlockEnd(0),
        ir.ToolCallStart(1, "c1", "f"),
        ir.BlockEnd(1),
        ir.ReasoningDelta(2, signature="c2lnMg==", origin=FORMAT),
        ir.Finish("end", Usage()),
    ]
    chunks = sdk_chunks(b"".join(encoder.encode(e) for e in events))
    first = chunks[0].candidates[0].content.parts[0]  # type: ignore[index,union-attr]
    assert first.function_call is not None
    assert first.function_call.args == {}
    assert first.thought_signature == base64.b64decode(SIGNATURE)
    last = chunks[-1].candidates[0]  # type: ignore[index]
    assert last.content.parts[0].thought_signature == b"sig2"  # type: ignore[union-attr,index]


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("max_tokens", "MAX_TOKENS"),
        ("refusal", "SAFETY"),
        ("end", "STOP"),
        ("stop_sequence", "STOP"),
    ],
)
def test_how_an_encoded_stream_ends(stop: ir.StopReason, reason: str) -> None:
    encoder = gemini.Encoder("m")
    data = encoder.encode(ir.TextDelta(0, "partial")) + encoder.encode(ir.Finish(stop, Usage(5, 7)))
    last = sdk_chunks(data)[-1]
    assert last.candidates[0].finish_reason == reason  # type: ignore[index]
    assert encoder.encode(ir.TextDelta(0, "late")) == b""
    assert encoder.close() == b""


def test_errors_in_an_encoded_stream() -> None:
    encoder = gemini.Encoder("m")
    data = encoder.encode(ir.TextDelta(0, "so")) + encoder.encode(ir.StreamError(529, "Overloaded"))
    assert b'"error":{"code":529,"message":"Overloaded","status":"INTERNAL"}' in data
    with pytest.raises(genai.errors.APIError, match="Overloaded"):
        sdk_chunks(data)
    broken = gemini.Encoder("m")
    data = broken.encode(ir.ToolCallStart(0, "c", "f")) + broken.encode(ir.ToolArgsDelta(0, "[1]"))
    data += broken.encode(ir.BlockEnd(0)) + broken.encode(ir.Finish("end", Usage()))
    assert b"tool call cannot be given as Gemini's" in data
    assert data.count(b"data: ") == 1
    cut = gemini.Encoder("m")
    assert b"ended before the answer was complete" in cut.encode(ir.TextDelta(0, "x")) + cut.close()
    assert cut.encode(ir.TextDelta(0, "")) == b""


def test_plain_answer_written_for_a_gemini_client() -> None:
    answer = ir.Response(
        id="msg_1",
        model="claude-sonnet-4-5",
        parts=(
            ir.Reasoning("think", "sig", origin="anthropic_messages"),
            ir.Reasoning(signature=SIGNATURE, origin=FORMAT),
            ir.Text("Hello"),
            ir.ToolCall("toolu_1", "f", '{"a":1}'),
            ir.Reasoning(signature="c2lnMg==", origin=FORMAT),
        ),
        stop="tool_use",
        usage=Usage(input_tokens=10, output_tokens=4, cache_read_tokens=3),
    )
    body = gemini.write_response(answer)
    response = types.GenerateContentResponse.model_validate(body)
    assert response.text == "Hello"
    assert response.function_calls is not None
    assert [(c.id, c.name, c.args) for c in response.function_calls] == [("toolu_1", "f", {"a": 1})]
    parts = body["candidates"][0]["content"]["parts"]
    assert parts[1] == {"text": "Hello", "thoughtSignature": SIGNATURE}
    assert parts[-1] == {"text": "", "thoughtSignature": "c2lnMg=="}
    assert body["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 4,
        "totalTokenCount": 14,
        "cachedContentTokenCount": 3,
    }
    bad = ir.Response("r", "m", (ir.ToolCall("c", "f", "nope"),), "tool_use")
    with pytest.raises(ir.Untranslatable, match="cannot be given as Gemini's"):
        gemini.write_response(bad)


def test_registered_for_both_google_formats() -> None:
    assert CLIENTS["gemini_generate_content"] is gemini
    assert CLIENTS["google_generate_content"] is gemini
    assert PROVIDERS["gemini_generate_content"] is gemini
    # Gemini on Vertex: the same bodies, at Vertex's path with the placeholders the gateway
    # puts the provider's project and region in for
    vertex = PROVIDERS["google_generate_content"]
    assert vertex.write_request is gemini.write_request
    assert vertex.provider_path("gemini-2.5-pro@001", True) == (
        "/v1/projects/_aperture_auto_vertex_project_id_/locations/_aperture_auto_vertex_region_"
        "/publishers/google/models/gemini-2.5-pro@001:streamGenerateContent?alt=sse"
    )


def test_a_chunk_nested_too_deep_ends_the_stream() -> None:
    args: dict[str, Any] = {}
    for _ in range(200):
        args = {"a": args}
    decoder = gemini.Decoder()
    events = decoder.feed(sse(chunk([{"functionCall": {"name": "f", "args": args}}])))
    assert events == [
        ir.StreamError(502, "the provider's answer held JSON nested too deep to translate")
    ]
    for _ in range(100):  # orjson writes at most 254 levels
        args = {"a": args}
    with pytest.raises(ir.Untranslatable, match="nests too deep"):
        gemini.read_response(chunk([{"functionCall": {"name": "f", "args": args}}]))


@pytest.mark.parametrize("stream", [False, True])
def test_another_apis_reasoning_comes_back_through_a_gemini_client(stream: bool) -> None:
    """Anthropic's signed thinking goes to a Gemini client as a thought whose signature is
    marked with its format; the client's history gives it back to irisgate whole."""
    thinking = ir.Reasoning("Two cities, two calls.", "EqQBCkYIBxgC", origin="anthropic_messages")
    redacted = ir.Reasoning(redacted="ZW5jcnlwdGVk", origin="anthropic_messages")
    call = ir.ToolCall("toolu_1", "get_weather", '{"city":"Paris"}')
    if stream:
        encoder = gemini.Encoder("claude")
        events: list[ir.Event] = [
            ir.ReasoningDelta(0, "Two cities,"),
            ir.ReasoningDelta(0, " two calls."),
            ir.ReasoningDelta(0, signature="EqQBCkYIBxgC", origin="anthropic_messages"),
            ir.BlockEnd(0),
            ir.ReasoningDelta(1, redacted="ZW5jcnlwdGVk", origin="anthropic_messages"),
            ir.BlockEnd(1),
            ir.ToolCallStart(2, "toolu_1", "get_weather"),
            ir.ToolArgsDelta(2, '{"city":"Paris"}'),
            ir.BlockEnd(2),
            ir.Finish("tool_use", Usage()),
        ]
        chunks = sdk_chunks(b"".join(encoder.encode(e) for e in events))
        parts = [p for c in chunks for p in c.candidates[0].content.parts]  # type: ignore[index,union-attr]
    else:
        answer = ir.Response("msg_1", "claude", (thinking, redacted, call), "tool_use")
        response = types.GenerateContentResponse.model_validate(gemini.write_response(answer))
        parts = response.candidates[0].content.parts  # type: ignore[index,union-attr,assignment]
    # the client keeps the model's parts and sends them back, as the SDKs' chats do
    history = types.Content(role="model", parts=parts).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    result = {
        "functionResponse": {"id": "toolu_1", "name": "get_weather", "response": {"output": "18 C"}}
    }
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            history,
            {"role": "user", "parts": [result]},
        ]
    }
    request = gemini.read_request(body, model="claude", stream=False)
    assert request.messages[1].parts == (thinking, redacted, call)
    # never to the Gemini API itself: it did not make them
    written = gemini.write_request(request)
    assert written["contents"][1]["parts"] == [
        {"functionCall": {"id": "toolu_1", "name": "get_weather", "args": {"city": "Paris"}}}
    ]


def test_a_signature_that_only_looks_marked_is_geminis_own() -> None:
    fake = base64.b64encode(b"irisgate:nothing").decode()
    broken = "aXJpc2dhdGU6!!!!"
    body = {
        "contents": [
            {"role": "model", "parts": [{"text": "a", "thought": True, "thoughtSignature": fake}]},
            {
                "role": "model",
                "parts": [{"text": "b", "thought": True, "thoughtSignature": broken}],
            },
        ]
    }
    parts = gemini.read_request(body, model="m", stream=False).messages[0].parts
    assert parts == (
        ir.Reasoning("a", fake, origin=FORMAT),
        ir.Reasoning("b", broken, origin=FORMAT),
    )


def test_small_cases() -> None:
    plain = ir.Response("r", "m", (ir.Reasoning("plain thought"), ir.Text("hi")), "end")
    parts = gemini.write_response(plain)["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "plain thought", "thought": True}, {"text": "hi"}]
    # integral floats count as the integers they are
    usage = chunk([], usage={"promptTokenCount": 12.0, "candidatesTokenCount": 3.5})
    assert gemini.read_response(usage).usage == Usage(input_tokens=12)
    # another API's signature still pending when the answer ends goes out before the end
    encoder = gemini.Encoder("m")
    encoder.encode(ir.ReasoningDelta(0, "x", signature="sig", origin="anthropic_messages"))
    data = encoder.encode(ir.Finish("end", Usage()))
    assert data.count(b"data: ") == 2 and b'"finishReason":"STOP"' in data.split(b"data: ")[-1]


def test_provider_error_text_is_cut_and_printable() -> None:
    decoder = gemini.Decoder()
    [failed] = decoder.feed(sse({"error": {"code": 7, "message": "\x07" + "e" * 5000}}))
    assert failed == ir.StreamError(500, "\ufffd" + "e" * 999 + "…")
