"""What hooks are told, read from each API's bodies: last user message, tool calls, events.
(Every format's reading is walked in tests/gateway/formats/test_formats_contract.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.registry import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from irisgate.hooks.payload import raw_responses


@pytest.mark.parametrize(
    ("fmt", "body", "text"),
    [
        (
            OPENAI_CHAT,
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
            ANTHROPIC_MESSAGES,
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
        (OPENAI_RESPONSES, {"input": "plain responses input"}, "plain responses input"),
        (
            OPENAI_RESPONSES,
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "r"}]}]},
            "r",
        ),
        (OPENAI_CHAT, {"messages": [{"role": "system", "content": "s"}]}, ""),
        (ANTHROPIC_MESSAGES, {}, ""),
    ],
)
def test_user_message_in_every_shape(fmt: ApiFormat, body: dict[str, Any], text: str) -> None:
    assert fmt.user_message(body) == text


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
    assert OPENAI_CHAT.tool_calls(chat) == [{"name": "f", "params": {"q": 1}}]
    assert OPENAI_RESPONSES.tool_calls(responses) == [{"name": "g", "params": {}}]
    assert ANTHROPIC_MESSAGES.tool_calls(messages) == [{"name": "h", "params": {"a": [1]}}]
    assert OPENAI_CHAT.tool_calls({"choices": "not a list"}) == []


def test_raw_responses_are_the_data_of_every_event() -> None:
    stream = (
        b'event: message_start\ndata: {"type": "message_start"}\n\n'
        b'data: {"n": 1}\n\n'
        b"data: [DONE]\n\n"
    )
    assert raw_responses(stream) == [{"type": "message_start"}, {"n": 1}]
