"""Every format's chat adapter decodes its API's stream into the chat's events the same way
however the bytes are split, says when a stream was cut, and survives garbage. The streams
are the fakes' renderings of the vendors' wire formats (Bedrock: binary event-stream frames)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irisgate.gateway.formats import chatwire, cloud, registry
from irisgate.gateway.formats.base import ApiFormat
from irisgate.testing import fake_anthropic, fake_bedrock, fake_google, fake_openai
from irisgate.testing.fake_reply import Reply, make_tool_call, split_words

PIECES = ("Hello", " from", " the", " wire.")
THINKING = split_words("First I think, then I answer.")


def reply(*, tool: bool = False, thinking: bool = False) -> Reply:
    call = make_tool_call("call_", "docs_echo", {"text": "hi"}, 3) if tool else None
    return Reply(
        model="m",
        created=1,
        pieces=() if tool else PIECES,
        tool_call=call,
        thinking_pieces=THINKING if thinking else (),
        prompt_tokens=7,
    )


def _gemini(r: Reply) -> bytes:
    return b"".join(fake_google.sse(fake_google.chunks(r, "resp1")))


def _converse(r: Reply) -> bytes:
    return b"".join(fake_bedrock.converse_events(r))


def _responses(r: Reply) -> bytes:
    return b"".join(fake_openai.response_events(r, "resp_1", "msg_0123456789", {}))


def _anthropic(r: Reply) -> bytes:
    return b"".join(fake_anthropic.message_events(r, "msg_1"))


def _chat(r: Reply) -> bytes:
    return b"".join(fake_openai.chat_chunks(r, "chatcmpl-1", True))


STREAMS: dict[str, tuple[ApiFormat, Callable[[Reply], bytes]]] = {
    "openai_chat": (registry.OPENAI_CHAT, _chat),
    "anthropic": (registry.ANTHROPIC_MESSAGES, _anthropic),
    "responses": (registry.OPENAI_RESPONSES, _responses),
    "gemini": (cloud.GEMINI, _gemini),
    "vertex_gemini": (cloud.VERTEX_GENERATE, _gemini),
    "vertex_claude": (cloud.VERTEX_RAW_PREDICT, _anthropic),
    "converse": (cloud.BEDROCK_CONVERSE, _converse),
}


def decode(fmt: ApiFormat, data: bytes, step: int | None = None) -> list[dict[str, object]]:
    assert fmt.chat_adapter is not None
    decoder = fmt.chat_adapter.decoder()
    events: list[dict[str, object]] = []
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.finish()


def merged(events: list[dict[str, object]]) -> list[dict[str, object]]:
    """Consecutive text (or reasoning) events joined: splits may cut a piece in two."""
    out: list[dict[str, object]] = []
    for event in events:
        if out and event["type"] in ("text", "reasoning") and out[-1]["type"] == event["type"]:
            out[-1] = {**out[-1], "text": str(out[-1]["text"]) + str(event["text"])}
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("name", list(STREAMS))
def test_text_answers_decode_the_same_however_the_bytes_are_split(name: str) -> None:
    fmt, render = STREAMS[name]
    data = render(reply())
    whole = decode(fmt, data)
    assert "".join(str(e["text"]) for e in whole if e["type"] == "text") == "".join(PIECES)
    assert whole[-1] == {"type": "end", "outcome": "completed"}
    assert any(e["type"] == "usage" for e in whole)
    for step in (1, 7, 64):
        assert merged(decode(fmt, data, step)) == merged(whole)


@pytest.mark.parametrize("name", ["anthropic", "responses", "gemini", "converse"])
def test_tool_calls_come_whole_with_what_goes_back_with_them(name: str) -> None:
    fmt, render = STREAMS[name]
    events = decode(fmt, render(reply(tool=True, thinking=True)), 5)
    [call] = [e for e in events if e["type"] == "call"]
    assert call["name"] == "docs_echo" and call["arguments"] == {"text": "hi"}
    reasoning = "".join(str(e["text"]) for e in events if e["type"] == "reasoning")
    assert reasoning.split() == "".join(THINKING).split()
    assert [e for e in events if e["type"] == "replay"]


@pytest.mark.parametrize("name", list(STREAMS))
def test_a_cut_stream_ends_without_an_outcome(name: str) -> None:
    fmt, render = STREAMS[name]
    data = render(reply())
    events = decode(fmt, data[: len(data) // 3])
    assert events[-1] == {"type": "end", "outcome": ""}


@pytest.mark.parametrize("name", list(STREAMS))
def test_garbage_never_raises(name: str) -> None:
    fmt, _ = STREAMS[name]
    for junk in (b"\x00\xff" * 40, b"data: {not json}\n\n", b'data: {"candidates": 5}\n\n'):
        events = decode(fmt, junk)
        assert events[-1]["type"] == "end"


def test_tool_arguments_that_are_not_an_object_are_a_problem_not_a_crash() -> None:
    event = chatwire.call_event("c1", "t", "[1, 2]")
    assert event["arguments"] == {} and "not a JSON object" in str(event["problem"])
    event = chatwire.call_event("c1", "t", '{"a": ')
    assert "not valid JSON" in str(event["problem"])


def test_bedrock_invoke_has_no_chat_adapter_and_converse_one() -> None:
    assert cloud.BEDROCK_INVOKE.chat_adapter is None
    assert cloud.BEDROCK_CONVERSE.chat_adapter is chatwire.CONVERSE


def test_every_format_the_chat_can_use_is_walked_here() -> None:
    from irisgate.chat.models import FORMATS

    chatty = {f.name for f in FORMATS if f.chat_adapter is not None}
    assert chatty == {fmt.name for fmt, _ in STREAMS.values()}
