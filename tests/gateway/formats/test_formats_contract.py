"""The format contract: every registered API format answers what it knows of a conversation.

Each format is walked with real-shape requests (a plain turn; a tool turn: the model's call
and its result sent back, with or without a new user message) and real-shape answers (plain,
streamed, and asking for a tool). The answers are the ones irisgate.testing's fakes send,
which speak each vendor's documented wire format; the requests are written as each vendor's
API reference shows them. A format answering empty where the wire has content fails here, as
does a format that is served on a path but missing from the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from irisgate.gateway.capture import read_answer
from irisgate.gateway.formats import cloud, templates
from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.nonchat import NotChat
from irisgate.gateway.formats.registry import (
    ANTHROPIC_MESSAGES,
    BATCH_CALL,
    FORMATS,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    PATHS,
)
from irisgate.testing import fake_anthropic, fake_bedrock, fake_google, fake_openai
from irisgate.testing.fake_reply import Reply, make_tool_call
from irisgate.usage.sessions import fingerprint

SYSTEM = "You are a careful assistant."
FIRST = "What is the weather in Paris?"
SECOND = "And in Rome, please?"
ARGS = {"city": "Paris"}
SSE = "text/event-stream"
EVENTSTREAM = "application/vnd.amazon.eventstream"


def _reply(*, tool: bool) -> Reply:
    call = make_tool_call("call_", "get_weather", ARGS, 3) if tool else None
    return Reply(model="m", created=1_700_000_000, pieces=("It is ", "sunny."), tool_call=call)


@dataclass(frozen=True)
class Shapes:
    """One format's requests, and how its answers are rendered."""

    plain: dict[str, Any]
    tool_turn: dict[str, Any]  # the call's result sent back, and a new user message
    other: dict[str, Any]  # another conversation's first turn
    body: Callable[[Reply], bytes]
    stream: Callable[[Reply], bytes]
    stream_type: str


def _chat() -> Shapes:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": FIRST}]
    return Shapes(
        plain={"model": "m", "messages": messages},
        tool_turn={
            "model": "m",
            "messages": [
                *messages,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": SECOND}]},
            ],
        },
        other={"model": "m", "messages": [messages[0], {"role": "user", "content": SECOND}]},
        body=lambda r: fake_openai.chat_completion(r, "chatcmpl-1"),
        stream=lambda r: b"".join(fake_openai.chat_chunks(r, "chatcmpl-1", True)),
        stream_type=SSE,
    )


def _responses() -> Shapes:
    first = [{"role": "user", "content": [{"type": "input_text", "text": FIRST}]}]
    request = {"model": "m", "instructions": SYSTEM, "input": first}
    return Shapes(
        plain=request,
        tool_turn={
            "model": "m",
            "instructions": SYSTEM,
            "input": [
                *first,
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"role": "user", "content": SECOND},
            ],
        },
        other={"model": "m", "instructions": SYSTEM, "input": SECOND},
        body=lambda r: fake_openai.response_body(r, "resp_1", "fc_1", request),
        stream=lambda r: b"".join(fake_openai.response_events(r, "resp_1", "fc_1", request)),
        stream_type=SSE,
    )


def _messages(extra: dict[str, Any], system: Any = SYSTEM) -> Shapes:
    """Anthropic Messages (also Vertex rawPredict and Bedrock InvokeModel bodies)."""
    first = {"role": "user", "content": FIRST}
    return Shapes(
        plain={**extra, "system": system, "messages": [first]},
        tool_turn={
            **extra,
            "system": system,
            "messages": [
                first,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": ARGS}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {"type": "text", "text": SECOND},
                    ],
                },
            ],
        },
        other={**extra, "system": system, "messages": [{"role": "user", "content": SECOND}]},
        body=lambda r: fake_anthropic.message(r, "msg_1"),
        stream=lambda r: b"".join(fake_anthropic.message_events(r, "msg_1")),
        stream_type=SSE,
    )


def _gemini(*, vertex: bool) -> Shapes:
    system = {"parts": [{"text": SYSTEM}]}
    first = {"role": "user", "parts": [{"text": FIRST}]}
    return Shapes(
        plain={"systemInstruction": system, "contents": [first]},
        tool_turn={
            "systemInstruction": system,
            "contents": [
                first,
                {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "get_weather", "args": ARGS}}],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}
                    ],
                },
                {"role": "user", "parts": [{"text": SECOND}]},
            ],
        },
        other={"systemInstruction": system, "contents": [{"parts": [{"text": SECOND}]}]},
        body=lambda r: fake_google.response(r, "resp-1", vertex=vertex),
        stream=lambda r: b"".join(fake_google.sse(fake_google.chunks(r, "resp-1", vertex=vertex))),
        stream_type=SSE,
    )


def _converse() -> Shapes:
    system = [{"text": SYSTEM}]
    first = {"role": "user", "content": [{"text": FIRST}]}
    return Shapes(
        plain={"system": system, "messages": [first]},
        tool_turn={
            "system": system,
            "messages": [
                first,
                {
                    "role": "assistant",
                    "content": [
                        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": ARGS}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                        {"text": SECOND},
                    ],
                },
            ],
        },
        other={"system": system, "messages": [{"role": "user", "content": [{"text": SECOND}]}]},
        body=fake_bedrock.converse_body,
        stream=lambda r: b"".join(fake_bedrock.converse_events(r)),
        stream_type=EVENTSTREAM,
    )


def _invoke() -> Shapes:
    shapes = _messages({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64})
    stream = lambda r: b"".join(fake_bedrock.invoke_events(r, "msg_1"))  # noqa: E731
    return Shapes(**{**shapes.__dict__, "stream": stream, "stream_type": EVENTSTREAM})


SHAPES: dict[str, Shapes] = {
    OPENAI_CHAT.name: _chat(),
    OPENAI_RESPONSES.name: _responses(),
    ANTHROPIC_MESSAGES.name: _messages({"model": "m", "max_tokens": 64}),
    cloud.GEMINI.name: _gemini(vertex=False),
    cloud.VERTEX_GENERATE.name: _gemini(vertex=True),
    cloud.VERTEX_RAW_PREDICT.name: _messages({"anthropic_version": "vertex-2023-10-16"}),
    cloud.BEDROCK_CONVERSE.name: _converse(),
    cloud.BEDROCK_INVOKE.name: _invoke(),
}
#: the APIs beyond chat, which hold no conversation (walked in test_formats_nonchat.py and
#: test_formats_openai_audio_batches.py)
NONCHAT_FORMATS = (
    "openai_embeddings",
    "openai_images",
    "openai_moderations",
    "gemini_embed_content",
    "openai_audio",
    "openai_batches",
)
#: the formats that hold a conversation
CONVERSATIONS = [f for f in FORMATS if not isinstance(f, NotChat)]
IDS = [f.name for f in CONVERSATIONS]


def test_every_served_format_is_registered_and_walked_here() -> None:
    served = {op.format.name for op in PATHS.values()}
    served |= {op.format.name for op in templates._OPERATIONS.values()}
    served.add(BATCH_CALL.format.name)  # /v1/files…, /v1/batches… (gateway/objects.py)
    assert served == {f.name for f in FORMATS}
    assert {f.name for f in CONVERSATIONS} == set(SHAPES)
    assert {f.name for f in FORMATS if isinstance(f, NotChat)} == set(NONCHAT_FORMATS)


@pytest.mark.parametrize("fmt", CONVERSATIONS, ids=IDS)
def test_first_turn_is_one_session_per_conversation(fmt: ApiFormat) -> None:
    shapes = SHAPES[fmt.name]
    first = fmt.first_turn(shapes.plain)
    text = orjson.dumps(first).decode()
    assert FIRST in text and SYSTEM in text, first
    # a later turn of the conversation is the same session, another conversation is not
    assert fingerprint(fmt.first_turn(shapes.tool_turn), "u") == fingerprint(first, "u")
    assert fingerprint(fmt.first_turn(shapes.other), "u") != fingerprint(first, "u")


@pytest.mark.parametrize("fmt", CONVERSATIONS, ids=IDS)
def test_user_message_is_the_last_thing_the_user_said(fmt: ApiFormat) -> None:
    shapes = SHAPES[fmt.name]
    assert fmt.user_message(shapes.plain) == FIRST
    assert fmt.user_message(shapes.tool_turn) == SECOND
    assert fmt.user_message({}) == ""


@pytest.mark.parametrize("fmt", CONVERSATIONS, ids=IDS)
@pytest.mark.parametrize("streamed", [False, True], ids=["body", "stream"])
def test_tool_calls_of_plain_streamed_and_tool_answers(fmt: ApiFormat, streamed: bool) -> None:
    shapes = SHAPES[fmt.name]
    for tool in (False, True):
        reply = _reply(tool=tool)
        wire = shapes.stream(reply) if streamed else shapes.body(reply)
        content_type = shapes.stream_type if streamed else "application/json"
        answer = read_answer(fmt, 200, {"content-type": content_type}, wire)
        assert answer.response is not None
        calls = fmt.tool_calls(answer.response)
        assert fmt.count_tool_calls(answer.response) == len(calls) == answer.tool_calls
        if tool:
            assert calls == [{"name": "get_weather", "params": ARGS}]
        else:
            assert calls == []
    assert fmt.tool_calls({}) == [] and fmt.count_tool_calls({}) == 0


@pytest.mark.parametrize("fmt", CONVERSATIONS, ids=IDS)
def test_catalog_entry_and_probe_reach_the_format(fmt: ApiFormat) -> None:
    entry = fmt.catalog_entry()
    assert entry["flag"] == fmt.flag and entry["title"] and entry["endpoints"]
    model = "claude-x@2025" if fmt is cloud.VERTEX_RAW_PREDICT else "model-1@2025"
    if fmt.name.startswith("bedrock"):
        model = "us.anthropic.claude-x-v1:0"
    probe = fmt.probe(model)
    assert probe is not None
    path, body = probe
    op = PATHS.get(path)
    if op is not None:
        assert op.format is fmt and fmt.model_of(body) == model
    else:
        found = templates.classify(path, b"")
        assert found is not None, path
        assert found[0].format is fmt and found[1].model == model
        assert found[0].billable and not found[1].stream
    assert fmt.user_message(body)  # the probe asks something


def test_probes_ask_only_the_models_their_api_serves() -> None:
    assert cloud.VERTEX_GENERATE.probe("claude-sonnet-4-5@20250929") is None
    assert cloud.VERTEX_RAW_PREDICT.probe("gemini-2.5-pro") is None
    assert cloud.BEDROCK_INVOKE.probe("mistral.mistral-large-2402-v1:0") is None
    assert cloud.BEDROCK_CONVERSE.probe("mistral.mistral-large-2402-v1:0") is not None


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"prompt": "<s>[INST] hi [/INST]"}, "<s>[INST] hi [/INST]"),
        ({"inputText": "titan says"}, "titan says"),
        ({"message": "cohere says"}, "cohere says"),
        ({"messages": [{"role": "user", "content": [{"text": "nova says"}]}]}, "nova says"),
    ],
)
def test_bedrock_invoke_reads_every_vendor_body(body: dict[str, Any], text: str) -> None:
    fmt = cloud.BEDROCK_INVOKE
    assert fmt.user_message(body) == text
    assert text in orjson.dumps(fmt.first_turn(body)).decode()


def test_gemini_cli_runs_in_one_place_are_sessions_of_their_own() -> None:
    """Gemini CLI starts every run with the same setup turn (date, OS, folder): the first
    thing the user asks after it tells the runs apart, and stays the same in later turns."""
    setup_text = "This is the Gemini CLI. We are setting up the context for our chat.\nMonday."
    setup = {"role": "user", "parts": [{"text": setup_text}]}
    ack = {"role": "model", "parts": [{"text": "Got it. Thanks for the context!"}]}

    def run(*asked: str) -> str:
        contents: list[dict[str, Any]] = [setup, ack]
        for i, text in enumerate(asked):
            if i:
                contents.append({"role": "model", "parts": [{"text": "done"}]})
            contents.append({"role": "user", "parts": [{"text": text}]})
        return fingerprint(cloud.GEMINI.first_turn({"contents": contents}), "u")

    assert run("fix the tests") == run("fix the tests", "now commit")
    assert run("fix the tests") != run("write the docs")
    alone = fingerprint(cloud.GEMINI.first_turn({"contents": [setup]}), "u")
    assert alone != fingerprint(cloud.GEMINI.first_turn({"contents": []}), "u")


def test_bedrock_invoke_reads_nova_tool_use() -> None:
    nova = {"output": {"message": {"content": [{"toolUse": {"name": "f", "input": {"a": 1}}}]}}}
    assert cloud.BEDROCK_INVOKE.tool_calls(nova) == [{"name": "f", "params": {"a": 1}}]
    assert cloud.BEDROCK_INVOKE.count_tool_calls(nova) == 1


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@pytest.mark.parametrize(
    "junk", [None, 3, "x", [1, None], {"messages": "x"}, {"contents": [None, {"parts": 5}]}]
)
def test_untrusted_shapes_never_raise(fmt: ApiFormat, junk: Any) -> None:
    body = junk if isinstance(junk, dict) else {"messages": junk, "contents": junk, "input": junk}
    fmt.first_turn(body)
    assert isinstance(fmt.user_message(body), str)
    assert isinstance(fmt.tool_calls(body), list)
    fmt.count_tool_calls(body)
