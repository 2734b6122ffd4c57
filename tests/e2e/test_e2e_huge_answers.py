"""Huge upstream answers do not exhaust memory: relay and capture stay bounded.

A real irisgate with `--max-capture-body 1MiB` relays 200 MiB answers from the fake vendor
(a stream of many events, one JSON body, one 200 MiB event, a gzip body that inflates to
200 MiB) to a real client. The client gets every byte; the server's peak resident memory
(VmHWM, reset before each answer) grows by a bounded amount, and comes back down; usage is
still read; the stored body is the first 1 MiB with a marker saying it was cut.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import ALICE_IP, gateway_config, http_from, wait_for_record
from rawhttp import memory_kib, reset_peak

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

MIB = 1024 * 1024
HUGE = 200 * MIB
#: peak growth allowed while relaying 200 MiB (it took 1.5 GiB before the tee was bounded)
PEAK_KIB = 64 * 1024
BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])
    config["providers"]["bedrock"] = {
        "baseurl": fake_llm.base_url,
        "apikey": "bedrock-api-key",
        "models": [BEDROCK_MODEL],
        "compatibility": {"bedrock_converse": True},
    }
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("huge"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_MAX_CAPTURE_BODY": "1MiB"},
    )
    with server:
        yield server


@pytest.fixture
def huge(fake_llm: FakeLLM) -> FakeLLM:
    fake_llm.record = False  # the fake keeps no copy of what it sends
    fake_llm.reply_text = "x" * HUGE
    return fake_llm


def _relay(
    gw: IrisgateServer,
    body: dict[str, Any],
    path: str = "/v1/chat/completions",
    **headers: str,
) -> tuple[int, bytes, str]:
    """POST through irisgate; (bytes received, their last KiB, request id)."""
    size, last = 0, b""
    with (
        http_from(ALICE_IP, gw.url) as client,
        client.stream("POST", path, json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        for chunk in resp.iter_raw():
            size += len(chunk)
            last = (last + chunk)[-1024:]
        return size, last, resp.headers["x-irisgate-request-id"]


def _ask(stream: bool) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a long answer, please"}],
        "stream": stream,
    }


def _measured(gw: IrisgateServer) -> tuple[int, dict[str, int]]:
    assert gw.process is not None
    pid = gw.process.pid
    reset_peak(pid)
    return pid, memory_kib(pid)


def _assert_bounded(pid: int, before: dict[str, int]) -> None:
    after = memory_kib(pid)
    assert after["VmHWM"] - before["VmRSS"] < PEAK_KIB, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < PEAK_KIB // 2, (before, after)


def _assert_cut(record: dict[str, Any], size: str = "") -> None:
    """The stored body is the first MiB and the marker (naming the size, when given)."""
    body = record["response_body"]
    assert len(body) < MIB + 1024
    marker = body[MIB:]
    assert marker.startswith(f"\n[irisgate: truncated; the body was {size}")
    assert marker.endswith(f", the first {MIB} bytes are stored (--max-capture-body)]")


@pytest.mark.parametrize("n_chunks", [3200, 1], ids=["3200-events", "one-200MiB-event"])
def test_a_200_mib_stream_is_relayed_whole_in_bounded_memory(
    gw: IrisgateServer, huge: FakeLLM, n_chunks: int
) -> None:
    huge.n_chunks = n_chunks
    pid, before = _measured(gw)
    size, last, request_id = _relay(gw, _ask(stream=True))
    assert size > HUGE
    assert last.endswith(b"data: [DONE]\n\n")
    record = wait_for_record(gw, request_id, timeout=60)
    _assert_bounded(pid, before)
    assert record["output_tokens"] == n_chunks  # the usage event, read from the tail
    assert record["input_tokens"] > 0
    assert record["cost_nanodollars"] > 0
    _assert_cut(record)


def test_a_200_mib_json_answer_is_relayed_whole_in_bounded_memory(
    gw: IrisgateServer, huge: FakeLLM
) -> None:
    huge.n_chunks = 3200
    pid, before = _measured(gw)
    size, last, request_id = _relay(gw, _ask(stream=False))
    assert size > HUGE
    assert json.loads(b'{"usage"' + last.rpartition(b'"usage"')[2])["usage"]
    record = wait_for_record(gw, request_id, timeout=60)
    _assert_bounded(pid, before)
    assert record["output_tokens"] == 3200  # the trailing usage member, read from the tail
    assert record["cost_nanodollars"] > 0
    _assert_cut(record, f"{size} bytes")


def test_a_200_mib_bedrock_event_stream_is_read_from_its_head_and_tail(
    gw: IrisgateServer, huge: FakeLLM
) -> None:
    huge.n_chunks = 3200
    pid, before = _measured(gw)
    ask = {"messages": [{"role": "user", "content": [{"text": "a long answer, please"}]}]}
    path = f"/bedrock/model/{BEDROCK_MODEL}/converse-stream"
    size, _, request_id = _relay(gw, ask, path)
    assert size > HUGE
    record = wait_for_record(gw, request_id, timeout=60)
    _assert_bounded(pid, before)
    assert record["output_tokens"] == 3200  # the metadata event, found in the tail's frames
    assert record["cost_nanodollars"] > 0
    stored = base64.b64decode(record["response_body"])  # binary frames: the API sends base64
    assert stored[MIB:] == (
        f"\n[irisgate: truncated; the body was {size} bytes, the first {MIB} bytes are stored"
        " (--max-capture-body)]"
    ).encode()


def test_a_small_gzip_answer_that_inflates_to_200_mib_is_stored_cut(
    gw: IrisgateServer, huge: FakeLLM
) -> None:
    huge.gzip = True
    pid, before = _measured(gw)
    size, _, request_id = _relay(gw, _ask(stream=False), **{"accept-encoding": "gzip"})
    assert size < 2 * MIB  # compressed on the wire
    record = wait_for_record(gw, request_id, timeout=60)
    _assert_bounded(pid, before)
    _assert_cut(record, "larger")


def test_an_answer_within_the_limit_is_stored_whole(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    fake_llm.reply_text = "y" * (MIB // 2)
    fake_llm.n_chunks = 10
    client = httpx2.Client(base_url=gw.url, transport=httpx2.HTTPTransport(local_address=ALICE_IP))
    with client:
        resp = client.post("/v1/chat/completions", json=_ask(stream=False))
    record = wait_for_record(gw, resp.headers["x-irisgate-request-id"])
    assert record["response_body"] == resp.text
    assert record["output_tokens"] == 10


def test_a_request_body_over_the_limit_is_stored_cut(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    ask = _ask(stream=False)
    ask["messages"][0]["content"] = "z" * (2 * MIB)
    with http_from(ALICE_IP, gw.url) as client:
        resp = client.post("/v1/chat/completions", json=ask)
    assert resp.status_code == 200
    sent = len(fake_llm.last_request.body)
    assert sent > 2 * MIB  # the upstream got all of it
    record = wait_for_record(gw, resp.headers["x-irisgate-request-id"])
    stored = record["request_body"]
    assert stored.startswith('{"model":"gpt-4o-mini"')
    assert stored[MIB:] == (
        f"\n[irisgate: truncated; the body was {sent} bytes, the first {MIB} bytes are stored"
        " (--max-capture-body)]"
    )
