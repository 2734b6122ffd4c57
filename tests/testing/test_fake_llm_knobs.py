"""FakeLLM's test knobs: gates, disconnects, delays, hangs, drops, gzip, failures, recording."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import aiohttp
import pytest

from irisgate.testing import FakeLLM, count_prompt_tokens

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}


async def test_gate_holds_the_stream_after_the_first_event(fake: FakeLLM) -> None:
    gate = threading.Event()
    fake.stream_gate = gate
    fake.n_chunks = 3
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + "/v1/chat/completions", json=STREAM) as response,
    ):
        first = await response.content.readuntil(b"\n\n")
        assert b'"role":"assistant"' in first
        assert await asyncio.to_thread(fake.wait_for, lambda: fake.gated_streams == 1)
        assert not response.content.at_eof()
        assert response.content.total_bytes == len(first)  # nothing after the first event

        gate.set()
        rest = await response.read()
    assert rest.endswith(b"data: [DONE]\n\n")
    assert await asyncio.to_thread(fake.wait_for, lambda: fake.completed_streams == 1)
    assert fake.cancelled_streams == 0


async def test_client_disconnect_cancels_the_stream(fake: FakeLLM) -> None:
    fake.stream_gate = threading.Event()
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            fake.base_url + "/v1/messages", json={**STREAM, "max_tokens": 9}
        )
        assert (await response.content.readuntil(b"\n\n")).startswith(b"event: message_start")
        response.close()  # drop the connection mid-stream

    assert await asyncio.to_thread(fake.wait_for, lambda: fake.cancelled_streams == 1)
    assert fake.completed_streams == 0


async def test_chunk_delay_spaces_events(fake: FakeLLM) -> None:
    fake.n_chunks = 4
    fake.chunk_delay = 0.03
    arrivals: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + "/v1/chat/completions", json=STREAM) as response,
    ):
        async for _ in response.content.iter_any():
            arrivals.append(time.monotonic())
    assert arrivals[-1] - arrivals[0] >= 0.03 * 5  # 7 events, 6 gaps; allow coalescing


async def test_first_byte_delay(fake: FakeLLM) -> None:
    fake.first_byte_delay = 0.2
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + "/v1/chat/completions", json=CHAT) as response,
    ):
        assert response.status == 200
    assert time.monotonic() - started >= 0.2


async def test_hang_never_answers_until_released(fake: FakeLLM) -> None:
    fake.hang = True
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(fake.base_url + "/v1/chat/completions", json=CHAT)
    assert len(fake.requests) == 1  # accepted and recorded, just not answered

    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(
            session.post(fake.base_url + "/v1/chat/completions", json=CHAT)
        )
        assert await asyncio.to_thread(fake.wait_for, lambda: len(fake.requests) == 2)
        assert not pending.done()
        fake.hang = False
        response = await pending
        assert response.status == 200
        response.release()


async def test_drop_after_events_cuts_the_connection(fake: FakeLLM) -> None:
    fake.drop_after_events = 2
    async with aiohttp.ClientSession() as session:
        response = await session.post(fake.base_url + "/v1/chat/completions", json=STREAM)
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert fake.dropped_streams == 1  # counted before the connection was cut


async def test_gzip_for_clients_that_accept_it(fake: FakeLLM) -> None:
    fake.gzip = True
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.post(
            fake.base_url + "/v1/chat/completions",
            json=CHAT,
            headers={"Accept-Encoding": "gzip"},
        ) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            body = json.loads(gzip.decompress(await response.read()))
            assert body["object"] == "chat.completion"
        async with session.post(
            fake.base_url + "/v1/chat/completions",
            json=CHAT,
            headers={"Accept-Encoding": "identity"},
        ) as response:
            assert "Content-Encoding" not in response.headers
            assert (await response.json())["object"] == "chat.completion"


def test_requests_are_recorded(fake: FakeLLM, post: Any) -> None:
    post(
        fake.base_url + "/v1/chat/completions?api-version=1",
        {**STREAM, "stream_options": {"include_usage": True}},
        {"Authorization": "Bearer sk-injected", "X-Trace": "abc"},
    )

    req = fake.last_request
    assert (req.method, req.path, req.query) == (
        "POST",
        "/v1/chat/completions",
        {"api-version": "1"},
    )
    assert req.headers["authorization"] == "Bearer sk-injected"
    assert req.headers["x-trace"] == "abc"
    assert json.loads(req.body) == req.json
    assert req.json["stream_options"] == {"include_usage": True}


def test_fail_next_with_custom_body(fake: FakeLLM, post: Any) -> None:
    fake.fail_next(503, b"upstream sad", {"Content-Type": "text/plain"}, count=2)

    first = post(fake.base_url + "/v1/chat/completions", CHAT)
    second = post(fake.base_url + "/v1/messages", {**CHAT, "max_tokens": 5})
    third = post(fake.base_url + "/v1/chat/completions", CHAT)

    assert first[0] == second[0] == 503
    assert first[2] == b"upstream sad"
    assert first[1]["Content-Type"] == "text/plain"
    assert third[0] == 200


def test_reset_restores_defaults(fake: FakeLLM, post: Any) -> None:
    fake.n_chunks = 1
    fake.fail_next(500)
    post(fake.base_url + "/v1/chat/completions", CHAT)

    fake.reset()

    assert fake.requests == []
    assert fake.n_chunks == 20
    assert post(fake.base_url + "/v1/chat/completions", CHAT)[0] == 200


def test_prompt_token_rule() -> None:
    body = {
        "system": [{"type": "text", "text": "You are terse."}],
        "instructions": "one",
        "messages": [
            {"role": "user", "content": "two three"},
            {"role": "user", "content": [{"type": "text", "text": "four"}, {"type": "image"}]},
            {"role": "tool", "content": "five"},
        ],
        "tools": [{"name": "not counted"}],
        "model": "not-counted",
    }
    assert count_prompt_tokens(body) == 8
    assert count_prompt_tokens({"input": [{"type": "function_call_output", "output": "a b"}]}) == 2
    assert count_prompt_tokens({}) == 1


def test_prompt_tokens_override(fake: FakeLLM, post: Any) -> None:
    fake.prompt_tokens = 1000
    _, _, raw = post(fake.base_url + "/v1/chat/completions", CHAT)

    assert json.loads(raw)["usage"]["prompt_tokens"] == 1000


def test_runs_as_a_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "irisgate.testing.fake_llm", "--port", "0", "--n-chunks", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            url + "/v1/chat/completions",
            data=json.dumps(CHAT).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["choices"][0]["message"]["content"] == "tok0 tok1"
    finally:
        proc.terminate()
        proc.wait(5)


def test_coalesce_sends_the_same_events_in_one_write(fake: FakeLLM, post: Any, sse: Any) -> None:
    fake.reply_text = "abcdef"
    fake.n_chunks = 3
    plain = sse(post(fake.base_url + "/v1/messages", {**STREAM, "max_tokens": 5})[2])
    fake.coalesce = True
    coalesced = sse(post(fake.base_url + "/v1/messages", {**STREAM, "max_tokens": 5})[2])

    def without_ids(events: list[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
        return [(name, data) for name, data in events if name != "message_start"]

    assert without_ids(coalesced) == without_ids(plain)
    assert fake.wait_for(lambda: fake.completed_streams == 2)


def test_start_fails_loudly_on_a_busy_port(fake: FakeLLM) -> None:
    port = int(fake.base_url.rsplit(":", 1)[1])
    other = FakeLLM()

    with pytest.raises(RuntimeError, match="FakeLLM failed to start"):
        other.start(port=port)


def test_obfuscation_padding_like_the_vendors(fake: FakeLLM, post: Any, sse: Any) -> None:
    fake.obfuscation = True
    fake.n_chunks = 2
    chat = fake.base_url + "/v1/chat/completions"

    chunks = [json.loads(d) for _, d in sse(post(chat, STREAM)[2]) if d != "[DONE]"]
    assert all(isinstance(c["obfuscation"], str) and c["obfuscation"] for c in chunks)
    opted_out = {**STREAM, "stream_options": {"include_obfuscation": False}}
    assert b"obfuscation" not in post(chat, opted_out)[2]

    responses = sse(post(fake.base_url + "/v1/responses", {**STREAM, "input": "x"})[2])
    deltas = [json.loads(d) for n, d in responses if n == "response.output_text.delta"]
    assert all("obfuscation" in d for d in deltas)

    events = sse(post(fake.base_url + "/v1/messages", {**STREAM, "max_tokens": 5})[2])
    padded = dict(events)
    assert padded["message_stop"].startswith('{"type":"message_stop" ')
    assert padded["ping"] == '{"type": "ping"}'
    assert padded["content_block_stop"] == '{"type":"content_block_stop","index":0}'
    assert json.loads(padded["message_delta"])["usage"]["output_tokens"] == 2
