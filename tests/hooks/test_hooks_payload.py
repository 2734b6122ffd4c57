"""What hooks are told, read from each API's bodies: last user message, tool calls, events."""

from __future__ import annotations

from typing import Any

import pytest

from irisgate.hooks.payload import raw_responses, tool_calls, user_message


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "last"},
                ]
            },
            "last",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "x"},
                            {"type": "image", "source": {}},
                            {"type": "text", "text": "y"},
                        ],
                    }
                ]
            },
            "x\ny",
        ),
        ({"input": "plain responses input"}, "plain responses input"),
        ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "r"}]}]}, "r"),
        ({"messages": [{"role": "system", "content": "s"}]}, ""),
        ({}, ""),
    ],
)
def test_user_message_in_every_shape(body: dict[str, Any], text: str) -> None:
    assert user_message(body) == text


def test_tool_calls_of_openai_chat_responses_and_anthropic() -> None:
    chat = {
        "choices": [
            {
                "message": {
                    "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
                    ]
                }
            }
        ]
    }
    responses = {
        "output": [{"type": "message"}, {"type": "function_call", "name": "g", "arguments": "{}"}]
    }
    messages = {
        "content": [
            {"type": "text", "text": "t"},
            {"type": "tool_use", "name": "h", "input": {"a": [1]}},
        ]
    }
    assert tool_calls(chat) == [{"name": "f", "params": {"q": 1}}]
    assert tool_calls(responses) == [{"name": "g", "params": {}}]
    assert tool_calls(messages) == [{"name": "h", "params": {"a": [1]}}]
    assert tool_calls("not json") == []


def test_raw_responses_are_the_data_of_every_event() -> None:
    stream = (
        b'event: message_start\ndata: {"type": "message_start"}\n\n'
        b'data: {"n": 1}\n\n'
        b"data: [DONE]\n\n"
    )
    assert raw_responses(stream) == [{"type": "message_start"}, {"n": 1}]
