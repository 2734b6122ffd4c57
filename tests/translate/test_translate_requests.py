"""Requests and complete answers across the formats: what carries over, both ways, and what
is refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from irisgate.translate import CLIENTS, PROVIDERS, anthropic_messages, ir, openai_chat
from irisgate.usage.tokens import Usage

PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAAAAgABSKJPXQAAAABJRU5ErkJggg=="
)

#: a multi-turn conversation with everything that carries over, in the neutral shape
CONVERSATION = ir.Request(
    model="m",
    system="Be terse.\n\nAnswer in French.",
    messages=(
        ir.Message(
            "user",
            (
                ir.Text("What is this, and the weather in Paris and the time?"),
                ir.Image("image/png", data=PIXEL),
                ir.Image("", url="https://example.com/cat.png"),
            ),
        ),
        ir.Message(
            "assistant",
            (
                ir.Text("Looking."),
                ir.ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
                ir.ToolCall("call_b", "get_time", '{"tz":"CET"}'),
            ),
        ),
        ir.Message(
            "user",
            (
                ir.ToolResult("call_a", "get_weather", (ir.Text("sunny"),)),
                ir.ToolResult("call_b", "get_time", (ir.Text("noon"),), is_error=True),
            ),
        ),
    ),
    tools=(
        ir.Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {}}}),
        ir.Tool("get_time", "Time", {"type": "object", "properties": {"tz": {}}}),
    ),
    tool_choice=ir.ToolChoice("tool", "get_weather"),
    parallel_tool_calls=False,
    max_tokens=9000,
    temperature=0.5,
    top_p=0.9,
    stop=("END",),
    reasoning_effort="medium",
    stream=True,
)


def test_an_openai_request_reaches_an_anthropic_provider() -> None:
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"c":1}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "t", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 500,
        "stop": "END",
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "someone",
    }
    request = openai_chat.read_request(body, model="claude", stream=True)
    out = anthropic_messages.write_request(request)
    assert out["system"] == "Be terse.\n\nAnswer in French."
    assert out["max_tokens"] == 500 and out["stop_sequences"] == ["END"] and out["stream"] is True
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["tools"] == [{"name": "w", "description": "", "input_schema": {"type": "object"}}]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "w", "input": {"c": 1}},
        {"type": "tool_use", "id": "call_b", "name": "t", "input": {}},
    ]
    # both results first in one user turn (Anthropic alternates roles), then the text
    assert out["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_a",
            "content": [{"type": "text", "text": "sunny"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "call_b",
            "content": [{"type": "text", "text": "noon"}],
        },
        {"type": "text", "text": "thanks"},
    ]


def test_an_anthropic_request_reaches_an_openai_provider() -> None:
    body = {
        "model": "gpt",
        "max_tokens": 4000,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "call it", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                    {"type": "text", "text": "and now?", "cache_control": {"type": "ephemeral"}},
                ],
            },
        ],
        "tools": [{"name": "w", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "w"},
        "thinking": {"type": "enabled", "budget_tokens": 3000},
        "metadata": {"user_id": "u"},
    }
    request = anthropic_messages.read_request(body, model="gpt", stream=False)
    assert request.reasoning_budget == 3000 and request.reasoning_effort == "medium"
    out = openai_chat.write_request(request)
    assert out["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": "and now?"},
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert out["reasoning_effort"] == "medium" and out["max_completion_tokens"] == 4000
    assert "stream" not in out


@pytest.mark.parametrize(
    "name", sorted(set(CLIENTS) & set(PROVIDERS) & {"openai_chat", "anthropic_messages"})
)
def test_a_request_written_for_a_provider_reads_back_the_same(name: str) -> None:
    """write_request then read_request (the same API's client side) is the identity for
    what that API can carry."""
    client, provider = CLIENTS[name], PROVIDERS[name]
    request = CONVERSATION
    if name == "openai_chat":  # Chat carries no signed reasoning and no error flag on results
        body = provider.write_request(request)
        back = client.read_request(body, model="m", stream=True)
        assert back.messages[1:] == (
            request.messages[1],
            ir.Message("user", (ir.ToolResult("call_a", "get_weather", (ir.Text("sunny"),)),)),
            ir.Message("user", (ir.ToolResult("call_b", "get_time", (ir.Text("Error: noon"),)),)),
        )
        assert back.messages[0] == request.messages[0]
        rest = {
            k: getattr(back, k)
            for k in (
                "system",
                "tools",
                "tool_choice",
                "parallel_tool_calls",
                "max_tokens",
                "temperature",
                "top_p",
                "stop",
                "reasoning_effort",
            )
        }
        assert rest == {k: getattr(request, k) for k in rest}
    else:
        body = provider.write_request(request)
        back = client.read_request(body, model="m", stream=True)
        assert back.messages == tuple(
            ir.Message(
                m.role,
                tuple(
                    p
                    if not isinstance(p, ir.ToolResult)
                    else ir.ToolResult(p.call_id, "", p.content, p.is_error)
                    for p in m.parts
                ),
            )
            for m in request.messages
        )
        assert back.reasoning_budget == 8192 and back.system == request.system
        assert (back.tools, back.tool_choice, back.parallel_tool_calls) == (
            request.tools,
            request.tool_choice,
            request.parallel_tool_calls,
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 2}, "'n'"),
        ({"logprobs": True}, "'logprobs'"),
        ({"modalities": ["text", "audio"]}, "'modalities'"),
        ({"audio": {"voice": "alloy"}}, "'audio'"),
        ({"functions": []}, "'functions'"),
        ({"presence_penalty": 0.5}, "'presence_penalty'"),
        ({"reasoning_effort": "extreme"}, "'reasoning_effort'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
                    }
                ]
            },
            "image_url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,AAAA"},
                            }
                        ],
                    }
                ]
            },
            "image/bmp",
        ),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0]"),
        ({"response_format": {"type": "grammar"}}, "'response_format'"),
    ],
)
def test_openai_requests_that_cannot_carry_over(body: dict[str, Any], field: str) -> None:
    full = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(ir.Untranslatable, match=field.replace("[", r"\[").replace("]", r"\]")):
        openai_chat.read_request(full, model="m", stream=False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"top_k": 5}, "'top_k'"),
        ({"mcp_servers": []}, "'mcp_servers'"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "document",
        ),
        ({"thinking": {"type": "enabled"}}, "'thinking'"),
    ],
)
def test_anthropic_requests_that_cannot_carry_over(body: dict[str, Any], field: str) -> None:
    full = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(ir.Untranslatable, match=field):
        anthropic_messages.read_request(full, model="m", stream=False)


def test_what_a_provider_cannot_take_is_refused_when_written() -> None:
    json_mode = ir.Request(
        "m",
        (ir.Message("user", (ir.Text("hi"),)),),
        response_format=ir.ResponseFormat("json_object"),
    )
    with pytest.raises(ir.Untranslatable, match="response_format"):
        anthropic_messages.write_request(json_mode)
    image_result = ir.Request(
        "m", (ir.Message("user", (ir.ToolResult("c", "", (ir.Image("image/png", data=PIXEL),)),)),)
    )
    with pytest.raises(ir.Untranslatable, match="image in a tool result"):
        openai_chat.write_request(image_result)
    tiny = ir.Request(
        "m", (ir.Message("user", (ir.Text("hi"),)),), max_tokens=500, reasoning_effort="high"
    )
    with pytest.raises(ir.Untranslatable, match="token maximum above 1024"):
        anthropic_messages.write_request(tiny)


def test_reasoning_budget_shares_an_openai_maximum() -> None:
    """OpenAI's maximum counts reasoning: the thinking budget fits below it."""
    request = ir.Request(
        "m", (ir.Message("user", (ir.Text("hi"),)),), max_tokens=5000, reasoning_effort="high"
    )
    out = anthropic_messages.write_request(request)
    assert out["max_tokens"] == 5000 and out["thinking"] == {
        "type": "enabled",
        "budget_tokens": 4999,
    }
    bare = anthropic_messages.write_request(
        ir.Request("m", (ir.Message("user", (ir.Text("hi"),)),), reasoning_effort="low")
    )
    assert bare["thinking"]["budget_tokens"] == 2048 and bare["max_tokens"] == 2048 + 4096


USAGE = Usage(
    input_tokens=160,
    output_tokens=30,
    cache_read_tokens=100,
    cache_write_5m_tokens=50,
    reasoning_tokens=12,
)


def test_a_complete_anthropic_answer_for_an_openai_client() -> None:
    answer = anthropic_messages.read_response(
        {
            "id": "msg_1",
            "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Here."},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": 1}},
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
                "output_tokens": 30,
            },
        }
    )
    body = openai_chat.write_response(answer)
    message = body["choices"][0]["message"]
    assert message["content"] == "Here."
    assert message["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": '{"c":1}'}}
    ]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"]["prompt_tokens"] == 160
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}


def test_a_complete_openai_answer_for_an_anthropic_client() -> None:
    answer = openai_chat.read_response(
        {
            "id": "chatcmpl-1",
            "model": "gpt",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Done."},
                    "finish_reason": "length",
                }
            ],
            "usage": {
                "prompt_tokens": 160,
                "completion_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 12},
            },
        }
    )
    body = anthropic_messages.write_response(answer)
    assert body["content"] == [{"type": "text", "text": "Done."}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"] == {
        "input_tokens": 60,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
        "output_tokens": 30,
    }
    assert anthropic_messages.usage_out(USAGE)["input_tokens"] == 10


def test_a_tool_call_with_arguments_that_are_not_json_is_not_passed_on() -> None:
    answer = ir.Response("r", "m", (ir.ToolCall("c", "w", "{not json"),), "tool_use")
    with pytest.raises(ir.Untranslatable, match="not JSON"):
        anthropic_messages.write_response(answer)


@pytest.mark.parametrize(
    ("module", "body", "status", "expected"),
    [
        (
            openai_chat,
            b'{"error":{"message":"bad model","type":"invalid_request_error"}}',
            400,
            "bad model",
        ),
        (
            anthropic_messages,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}',
            400,
            "bad",
        ),
        (
            openai_chat,
            b'{"error":{"message":"Incorrect API key provided: sk-abc***xyz"}}',
            401,
            "the provider refused irisgate's credentials (401)",
        ),
        (anthropic_messages, b"<html>gateway timeout</html>", 504, "the provider answered 504"),
        (openai_chat, b'{"error":{"message":"a\\u0000b\\u001b[31m"}}', 400, "a\ufffdb\ufffd[31m"),
    ],
)
def test_provider_errors_are_read_safely(
    module: Any, body: bytes, status: int, expected: str
) -> None:
    assert module.read_error(status, body) == expected


def test_a_refusal_quotes_a_callers_member_name_cut_and_printable() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "x\u001b[2J" * 50: 1}
    with pytest.raises(ir.Untranslatable) as refused:
        openai_chat.read_request(body, model="m", stream=False)
    message = str(refused.value)
    assert "\u001b" not in message and len(message) < 120


def test_what_claude_code_sends_reaches_an_openai_model() -> None:
    """Claude Code's own members: adaptive thinking with an effort, context editing (an
    Anthropic-side feature), a structured-output format and a system message mid-way."""
    body = {
        "model": "gpt",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "reminder"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
            {"role": "user", "content": "list the files"},
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {
            "effort": "max",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "u"},
        "stream": True,
    }
    request = anthropic_messages.read_request(body, model="gpt", stream=True)
    assert request.system == "You are Claude Code.\n\n# Environment"
    assert [m.role for m in request.messages] == ["user", "user"]
    out = openai_chat.write_request(request)
    assert out["reasoning_effort"] == "high"
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "strict": True, "schema": {"type": "object"}},
    }
    assert "context_management" not in out and "thinking" not in out
    with pytest.raises(ir.Untranslatable, match=r"output_config\.verbosity"):
        anthropic_messages.read_request(
            {**body, "output_config": {"verbosity": 1}}, model="gpt", stream=True
        )
