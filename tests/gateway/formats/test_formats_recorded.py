"""Recorded multi-event streams pinned: usage, tool calls and the stored capture, byte for byte.

`recorded/` holds streams as irisgate.testing's fakes send them: a Bedrock
InvokeModelWithResponseStream of Anthropic events (thinking, 20 text pieces, cache reads and
writes), one with a tool call, a ConverseStream, and a 20-chunk Gemini stream as SSE and as a
JSON array. `expected.json` is what the parsers of commit b2354ec made of them (before the
stream parsing was made cheaper): any change to the parsers must read them the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from irisgate.gateway.capture import read_answer
from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.cloud import BEDROCK_CONVERSE, BEDROCK_INVOKE, GEMINI

RECORDED = Path(__file__).parent / "recorded"
EXPECTED: dict[str, dict[str, Any]] = orjson.loads((RECORDED / "expected.json").read_bytes())
FORMATS: dict[str, ApiFormat] = {f.name: f for f in (BEDROCK_INVOKE, BEDROCK_CONVERSE, GEMINI)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream_reads_as_pinned(name: str) -> None:
    expected = EXPECTED[name]
    body = (RECORDED / name).read_bytes()
    headers = {"content-type": expected["content_type"]}
    answer = read_answer(FORMATS[expected["format"]], 200, headers, body)
    usage, stored, tool_calls = answer.usage, answer.body, answer.tool_calls
    assert usage.as_dict() == expected["usage"]
    assert stored.decode() == expected["response_body"]
    assert tool_calls == expected["tool_calls"]


def test_the_recordings_are_rich_enough() -> None:
    """The pins cover what the parsers must get right: text, thinking, tools, cache usage."""
    usage = {name: e["usage"] for name, e in EXPECTED.items()}
    text = usage["bedrock_invoke_text.eventstream"]
    assert text["cache_read_tokens"] and text["cache_write_5m_tokens"] and text["output_tokens"]
    assert EXPECTED["bedrock_invoke_tool.eventstream"]["tool_calls"] == 1
    assert usage["gemini_stream.sse"] == usage["gemini_stream.json"]
    assert usage["gemini_stream.sse"]["reasoning_tokens"]
    message = orjson.loads(EXPECTED["bedrock_invoke_text.eventstream"]["response_body"])
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
