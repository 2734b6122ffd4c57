"""Which text of a request or answer is counted when irisgate estimates tokens."""

from __future__ import annotations

from irisgate.gateway.formats import texts
from irisgate.usage.estimate import Prompt

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
TOOLS_JSON = '[{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}]'
IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="


def test_chat_prompt_counts_text_tool_calls_results_and_tools_not_images() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        "tools": TOOLS,
        "temperature": 0.2,
    }
    assert texts.chat_prompt(body) == Prompt(
        ["Be brief.", "What is here?", "weather", '{"city":"Paris"}', "Sunny", TOOLS_JSON], 4
    )


def test_chat_answer_counts_every_choice() -> None:
    response = {
        "choices": [
            {"message": {"role": "assistant", "content": "Hi", "refusal": None}},
            {
                "message": {
                    "content": None,
                    "reasoning_content": "think",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
                }
            },
        ]
    }
    assert texts.chat_answer(response) == ["Hi", "think", "f", "{}"]


def test_responses_prompt_and_answer() -> None:
    body = {
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
            {"type": "function_call_output", "call_id": "c", "output": "42"},
        ],
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "text"}},
    }
    assert texts.responses_prompt(body) == Prompt(["Be brief.", "Hello", "42"], 2)
    assert texts.responses_prompt({"input": "Hello"}) == Prompt(["Hello"], 1)
    response = {
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "plan"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
            {"type": "function_call", "name": "f", "arguments": '{"a":1}', "call_id": "c"},
        ]
    }
    assert texts.responses_answer(response) == ["plan", "Hi", "f", '{"a":1}']


def test_anthropic_prompt_and_partial_answer() -> None:
    body = {
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Hello"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "42"},
                    {"type": "image", "source": {"type": "base64", "data": IMAGE}},
                ],
            },
        ],
    }
    assert texts.anthropic_prompt(body) == Prompt(["Be brief.", "Hello", "f", '{"a":1}', "42"], 3)
    partial = {
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "EqQBCkgIARABGAIiQL2b"},
            {"type": "text", "text": "It is"},
            {"type": "tool_use", "name": "f", "input": '{"loc'},  # cut mid-JSON
        ]
    }
    assert texts.anthropic_answer(partial) == ["hmm", "It is", "f", '{"loc']


def test_garbage_gives_no_text_and_no_error() -> None:
    assert texts.chat_prompt({"messages": "nope"}) == Prompt(["nope"], 1)
    assert texts.chat_prompt({"messages": [1, None, {"content": 3}]}) == Prompt([], 3)
    assert texts.chat_answer({"choices": None}) == []
    assert texts.responses_answer({}) == []
    assert texts.anthropic_answer({"content": [None]}) == []
