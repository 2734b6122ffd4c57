"""Provider streams decoded to neutral events (fed split at every byte offset) and encoded
into the other API's stream, which that API's official SDK types then read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter
from recorded_streams import ANTHROPIC_OVERLOADED, ANTHROPIC_TOOLS, OPENAI_TOOLS

from irisgate.translate import anthropic_messages, gemini, ir, openai_chat
from irisgate.translate.adapter import StreamDecoder
from irisgate.usage.tokens import Usage
from irisgate.wire.sse import SSEParser

ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def decode(decoder: StreamDecoder, pieces: list[bytes]) -> list[ir.Event]:
    events: list[ir.Event] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events + decoder.finish()


@pytest.mark.parametrize(
    ("module", "stream"),
    [(openai_chat, OPENAI_TOOLS), (anthropic_messages, ANTHROPIC_TOOLS)],
    ids=["openai_chat", "anthropic_messages"],
)
def test_decoding_does_not_depend_on_where_the_bytes_split(module: Any, stream: bytes) -> None:
    whole = decode(module.Decoder(), [stream])
    for cut in range(1, len(stream)):
        assert decode(module.Decoder(), [stream[:cut], stream[cut:]]) == whole, cut
    assert decode(module.Decoder(), [bytes([b]) for b in stream]) == whole


def test_openai_stream_as_neutral_events() -> None:
    events = decode(openai_chat.Decoder(), [OPENAI_TOOLS])
    assert events == [
        ir.Start("chatcmpl-1", "gpt-4.1"),
        ir.TextDelta(0, "Checking cafés"),
        ir.BlockEnd(0),
        ir.ToolCallStart(1, "call_a", "get_weather"),
        ir.ToolArgsDelta(1, '{"city": '),
        ir.ToolArgsDelta(1, '"Paris"}'),
        ir.BlockEnd(1),
        ir.ToolCallStart(2, "call_b", "get_time"),
        ir.ToolArgsDelta(2, '{"tz": "CET"}'),
        ir.BlockEnd(2),
        ir.Finish(
            "tool_use",
            Usage(input_tokens=160, output_tokens=30, cache_read_tokens=100, reasoning_tokens=12),
        ),
    ]


def test_anthropic_stream_as_neutral_events() -> None:
    events = decode(anthropic_messages.Decoder(), [ANTHROPIC_TOOLS])
    origin = "anthropic_messages"
    assert events == [
        ir.Start("msg_1", "claude-sonnet-4-5"),
        ir.ReasoningDelta(0, text="Two lookups."),
        ir.ReasoningDelta(0, signature="c2lnbmF0dXJl", origin=origin),
        ir.BlockEnd(0),
        ir.TextDelta(1, "Checking cafés"),
        ir.BlockEnd(1),
        ir.ToolCallStart(2, "toolu_a", "get_weather"),
        ir.ToolArgsDelta(2, '{"city": '),
        ir.ToolArgsDelta(2, '"Paris"}'),
        ir.BlockEnd(2),
        ir.ToolCallStart(3, "toolu_b", "get_time"),
        ir.ToolArgsDelta(3, '{"tz": "CET"}'),
        ir.BlockEnd(3),
        ir.Finish(
            "tool_use",
            Usage(
                input_tokens=160, output_tokens=30, cache_read_tokens=100, cache_write_5m_tokens=50
            ),
        ),
    ]


def _sse(data: bytes) -> list[tuple[str, Any]]:
    return [(e.event, json.loads(e.data)) for e in SSEParser().feed(data) if e.data != b"[DONE]"]


def test_an_anthropic_stream_reaches_an_openai_client_as_chunks_its_sdk_reads() -> None:
    encoder = openai_chat.Encoder("claude-sonnet-4-5")
    out = b"".join(
        encoder.encode(e) for e in decode(anthropic_messages.Decoder(), [ANTHROPIC_TOOLS])
    )
    out += encoder.close()
    assert out.endswith(b"data: [DONE]\n\n")
    chunks = [ChatCompletionChunk.model_validate(data) for _, data in _sse(out)]
    text, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["name"] = call.function.name or entry["name"]
                    entry["arguments"] += call.function.arguments or ""
    assert text == "Checking cafés"
    assert finish == "tool_calls"
    assert calls == {
        0: {"id": "toolu_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_b", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }
    usage = chunks[-1].usage
    assert usage is not None  # OpenAI's prompt_tokens include cache reads and writes
    assert (usage.prompt_tokens, usage.completion_tokens) == (160, 30)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100


def test_an_openai_stream_reaches_an_anthropic_client_as_events_its_sdk_reads() -> None:
    encoder = anthropic_messages.Encoder("gpt-4.1")
    out = b"".join(encoder.encode(e) for e in decode(openai_chat.Decoder(), [OPENAI_TOOLS]))
    out += encoder.close()
    events = _sse(out)
    for name, data in events:
        assert name == data["type"]
        ANTHROPIC_EVENT.validate_python(data)
    kinds = [name for name, _ in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    blocks: dict[int, dict[str, Any]] = {}
    open_blocks: set[int] = set()
    for name, data in events:
        if name == "content_block_start":
            assert data["index"] == len(blocks), "blocks are numbered in order"
            blocks[data["index"]] = dict(data["content_block"], partial="")
            open_blocks.add(data["index"])
        elif name == "content_block_delta":
            assert data["index"] in open_blocks
            delta = data["delta"]
            block = blocks[data["index"]]
            block["text" if delta["type"] == "text_delta" else "partial"] = block.get(
                "text" if delta["type"] == "text_delta" else "partial", ""
            ) + delta.get("text", delta.get("partial_json", ""))
        elif name == "content_block_stop":
            open_blocks.remove(data["index"])
    assert not open_blocks
    assert [b["type"] for b in blocks.values()] == ["text", "tool_use", "tool_use"]
    assert blocks[0]["text"] == "Checking cafés"
    assert json.loads(blocks[1]["partial"]) == {"city": "Paris"} and blocks[1]["id"] == "call_a"
    assert json.loads(blocks[2]["partial"]) == {"tz": "CET"} and blocks[2]["name"] == "get_time"
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    # Anthropic's input_tokens exclude cache reads (and writes)
    assert final["usage"] == {
        "input_tokens": 60,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 100,
        "output_tokens": 30,
    }


def test_thinking_text_alone_reaches_an_anthropic_client_without_a_signature() -> None:
    """Anthropic→Anthropic is never translated, but another provider's reasoning text may
    come to an Anthropic client: as thinking without a signature."""
    encoder = anthropic_messages.Encoder("m")
    out = encoder.encode(ir.ReasoningDelta(0, text="hmm", origin="openai_chat"))
    out += encoder.encode(ir.BlockEnd(0))
    kinds = [(n, d.get("delta", {}).get("type")) for n, d in _sse(out)]
    assert ("content_block_delta", "thinking_delta") in kinds
    assert ("content_block_delta", "signature_delta") not in kinds


GEMINI_SIGNATURE = "Q2lRQjBlMktiM1JmYzJsbg=="
#: a Gemini 3 tool call as `streamGenerateContent?alt=sse` sends it: no thoughts asked for,
#: the call still carries the signature Gemini wants back with it
GEMINI_SIGNED_CALL = (
    b'data: {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": '
    b'{"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": "'
    + GEMINI_SIGNATURE.encode()
    + b'"}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 9, '
    b'"candidatesTokenCount": 5, "totalTokenCount": 14}, "modelVersion": "gemini-3-pro-preview", '
    b'"responseId": "r3"}\r\n\r\n'
)


def _messages_content(out: bytes) -> list[dict[str, Any]]:
    """The content blocks a Messages client puts together from a stream its SDK reads."""
    blocks: dict[int, dict[str, Any]] = {}
    for _, data in _sse(out):
        event = ANTHROPIC_EVENT.validate_python(data)
        if event.type == "content_block_start":
            blocks[event.index] = event.content_block.model_dump()
        elif event.type == "content_block_delta":
            block, delta = blocks[event.index], event.delta
            if delta.type == "signature_delta":
                block["signature"] += delta.signature
            elif delta.type == "thinking_delta":
                block["thinking"] += delta.thinking
            elif delta.type == "input_json_delta":
                block["partial"] = block.get("partial", "") + delta.partial_json
    for block in blocks.values():
        if block["type"] == "tool_use":
            block["input"] = json.loads(block.pop("partial", "") or "{}")
    return [blocks[i] for i in sorted(blocks)]


def test_a_gemini_signature_rides_a_thinking_block_back_to_gemini_only() -> None:
    """Claude Code on Gemini 3: the call's thought signature reaches the Messages client as a
    thinking block's `signature` (marked), comes back with the history and goes to Gemini on
    the call it belongs to; an Anthropic provider never sees it."""
    encoder = anthropic_messages.Encoder("gemini-3-pro-preview")
    out = b"".join(encoder.encode(e) for e in decode(gemini.Decoder(), [GEMINI_SIGNED_CALL]))
    content = _messages_content(out + encoder.close())
    assert [b["type"] for b in content] == ["thinking", "tool_use"]
    marked = "irisgate:gemini_generate_content:s:" + GEMINI_SIGNATURE
    assert content[0]["thinking"] == "" and content[0]["signature"] == marked
    assert content[1]["input"] == {"command": "ls"}
    # the complete answer says the same
    answer = gemini.read_response(json.loads(GEMINI_SIGNED_CALL[len(b"data: ") :]))
    message = Message.model_validate(anthropic_messages.write_response(answer))
    assert message.content[0].type == "thinking" and message.content[0].signature == marked
    # the next turn, as Claude Code sends it
    body = {
        "max_tokens": 1000,
        "messages": [
            {"role": "user", "content": "call tool: list the files"},
            {
                "role": "assistant",
                "content": [{k: v for k, v in b.items() if v is not None} for b in content],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": content[1]["id"], "content": "a.txt"}
                ],
            },
        ],
    }
    request = anthropic_messages.read_request(body, model="gemini-3-pro-preview", stream=True)
    model_turn = gemini.write_request(request)["contents"][1]
    assert model_turn["parts"] == [
        {
            "functionCall": {"id": content[1]["id"], "name": "Bash", "args": {"command": "ls"}},
            "thoughtSignature": GEMINI_SIGNATURE,
        }
    ]
    to_anthropic = anthropic_messages.write_request(request)["messages"][1]["content"]
    assert [b["type"] for b in to_anthropic] == ["tool_use"]


def test_a_signature_that_only_looks_marked_is_anthropics_own() -> None:
    body = {
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "t", "signature": "irisgate:x"}],
            },
        ],
    }
    request = anthropic_messages.read_request(body, model="m", stream=False)
    assert request.messages[1].parts == (
        ir.Reasoning("t", "irisgate:x", origin="anthropic_messages"),
    )


def test_a_provider_error_mid_stream_reaches_each_client_in_its_own_form() -> None:
    events = decode(anthropic_messages.Decoder(), [ANTHROPIC_OVERLOADED])
    assert events[-1] == ir.StreamError(529, "Overloaded")
    openai_out = b"".join(openai_chat.Encoder("m").encode(e) for e in events)
    assert _sse(openai_out)[-1][1]["error"]["message"] == "Overloaded"
    encoder = anthropic_messages.Encoder("m")
    anthropic_out = b"".join(encoder.encode(e) for e in events)
    name, data = _sse(anthropic_out)[-1]
    assert name == "error" and data["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }


@pytest.mark.parametrize(
    ("module", "stream"),
    [(openai_chat, OPENAI_TOOLS), (anthropic_messages, ANTHROPIC_TOOLS)],
    ids=["openai_chat", "anthropic_messages"],
)
def test_a_stream_cut_short_ends_in_an_error_not_a_clean_finish(module: Any, stream: bytes) -> None:
    cut = stream[: len(stream) // 2]
    events = decode(module.Decoder(), [cut])
    assert isinstance(events[-1], ir.StreamError) and events[-1].status == 502
    assert not any(isinstance(e, ir.Finish) for e in events)
    encoder = openai_chat.Encoder("m")
    for event in events:
        encoder.encode(event)
    assert encoder.close() == b"", "no [DONE] after a broken stream"


def test_reasoning_text_of_a_chat_provider_reaches_an_anthropic_client_as_thinking() -> None:
    """Chat providers that stream `reasoning_content` (DeepSeek-style) show it as thinking."""
    chunk = (
        b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"reasoning_content":'
        b'"Let me see."},"finish_reason":null}]}\n\n'
        b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Yes."},'
        b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    events = decode(openai_chat.Decoder(), [chunk])
    assert events[1:4] == [
        ir.ReasoningDelta(0, text="Let me see."),
        ir.BlockEnd(0),
        ir.TextDelta(1, "Yes."),
    ]
    encoder = anthropic_messages.Encoder("m")
    out = _sse(b"".join(encoder.encode(e) for e in events))
    starts = [d["content_block"]["type"] for n, d in out if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [d["delta"] for n, d in out if n == "content_block_delta"]
    assert deltas[0] == {"type": "thinking_delta", "thinking": "Let me see."}
