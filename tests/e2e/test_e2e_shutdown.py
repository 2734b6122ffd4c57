"""SIGTERM through a real irisgate: the shutdown grace, the 503s and readiness during it, and
streams still running at its end cut, recorded as cancelled by the shutdown, estimated,
priced and charged to quotas before the process exits.

Expected counts as in test_e2e_estimates: the prompt is 9 o200k_base tokens with framing,
every "tokN" piece of the fake's answer 2 tokens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from conftest import ALICE_IP, _socket_of, anthropic_client, http_from, openai_client
from conftest import wait_for_record as record_of
from test_e2e_quotas import buckets, quota_config

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

PROMPT = [{"role": "user", "content": "hello there world"}]
ESTIMATED_PROMPT = 9
QUOTAS = {"daily:<user>": {"capacity": "$1.00", "rate": "$0/day"}}
CAPACITY = 1_000_000_000
BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.fixture
def gate(fake_llm: FakeLLM) -> Iterator[threading.Event]:
    """Streams pause after the role delta and 5 pieces until the test opens the gate."""
    event = threading.Event()
    fake_llm.stream_gate = event
    fake_llm.gate_after_events = 6
    yield event
    event.set()  # never leave the fake's threads waiting


@pytest.fixture
def server(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> Iterator[Any]:
    started: list[IrisgateServer] = []

    def run(*args: str) -> IrisgateServer:
        config = quota_config(
            fake_llm.base_url, QUOTAS, g0=[{"quotas": [{"bucket": "daily:<user>"}]}]
        )
        gw = IrisgateServer(
            config,
            data_dir=tmp_path / "data",
            identity="tailscale",
            tailscaled_socket=_socket_of(localapi),
            extra_args=args,
        )
        started.append(gw.start())
        return gw

    yield run
    for gw in started:
        gw.stop()


def open_stream(gw: IrisgateServer) -> tuple[str, Iterator[Any]]:
    """A chat stream read up to the gate: (request id, the rest of its chunks)."""
    stream = openai_client(gw).chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
    )
    chunks = iter(stream)
    pieces = 0
    while pieces < 5:
        chunk = next(chunks)
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
    return stream.response.headers["x-irisgate-request-id"], chunks


def test_stream_still_open_at_the_end_of_the_grace_is_cut_recorded_and_charged(
    server: Any, fake_llm: FakeLLM, gate: threading.Event
) -> None:
    gw = server("--shutdown-grace", "0.5")
    request_id, rest = open_stream(gw)
    assert gw.process is not None
    gw.process.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIConnectionError):  # broken off, not a clean end
        list(rest)
    assert gw.process.wait(30) == 0
    # the upstream request was cancelled too
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1, timeout=30)
    logs = gw.logs()
    assert "request cut by shutdown" in logs
    assert "could not be reported" not in logs

    again = server()  # the same database: the record was written before the exit
    record = record_of(again, request_id)
    assert record["cancelled"] is True
    assert record["error"] == "shutdown: cut after the 0.5 s shutdown grace"
    assert record["status"] == 200  # what the client received before the cut
    assert record["usage_estimated"] is True
    assert record["input_tokens"] == ESTIMATED_PROMPT
    assert record["output_tokens"] == 2 * 5
    assert record["cost_nanodollars"] > 0
    bucket = buckets(again)["daily:alice@example.com"]
    assert bucket["balance_nanodollars"] == CAPACITY - record["cost_nanodollars"]


def test_a_stream_still_flowing_at_the_end_of_the_grace_is_billed_what_it_relayed(
    server: Any, fake_llm: FakeLLM
) -> None:
    fake_llm.n_chunks, fake_llm.chunk_delay = 3000, 0.01  # a 30 s answer, events flowing
    gw = server("--shutdown-grace", "0.5")
    stream = openai_client(gw).chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
    )
    request_id = stream.response.headers["x-irisgate-request-id"]
    chunks = iter(stream)
    next(chunks)
    assert gw.process is not None
    gw.process.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIConnectionError):
        list(chunks)
    assert gw.process.wait(30) == 0

    again = server()
    record = record_of(again, request_id)
    assert record["cancelled"] is True
    assert record["error"].startswith("shutdown")
    text = json.loads(record["response_body"])["choices"][0]["message"]["content"]
    pieces = len(text.split())
    assert pieces > 0
    assert record["usage_estimated"] is True
    assert record["output_tokens"] == 2 * pieces  # every relayed "tokN" piece, billed
    assert record["cost_nanodollars"] > 0
    bucket = buckets(again)["daily:alice@example.com"]
    assert bucket["balance_nanodollars"] == CAPACITY - record["cost_nanodollars"]


def test_during_the_grace_new_requests_get_503_in_their_format_and_readyz_is_not_ready(
    server: Any, fake_llm: FakeLLM, gate: threading.Event
) -> None:
    gw = server()  # the default grace (30 s): the held stream ends it by finishing
    request_id, rest = open_stream(gw)
    probe = http_from(ALICE_IP, gw.url)
    assert probe.get("/readyz").status_code == 200
    assert gw.process is not None
    gw.process.send_signal(signal.SIGTERM)
    assert fake_llm.wait_for(lambda: probe.get("/readyz").status_code == 503, timeout=30)
    ready = probe.get("/readyz").json()
    assert ready["status"] == "not ready"
    assert ready["checks"]["shutdown"] == "draining: 1 request(s) in flight"
    assert probe.get("/healthz").status_code == 200

    with pytest.raises(openai.APIStatusError) as refused:
        openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert refused.value.status_code == 503
    assert "shutting down" in refused.value.message
    assert refused.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.APIStatusError) as ant:
        anthropic_client(gw).messages.create(
            model="claude-sonnet-4-5",
            max_tokens=16,
            messages=PROMPT,  # type: ignore[arg-type]
        )
    assert ant.value.status_code == 503
    assert ant.value.body["type"] == "error"  # type: ignore[index]
    assert "shutting down" in ant.value.body["error"]["message"]  # type: ignore[index]
    gemini = probe.post("/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert gemini.status_code == 503
    assert gemini.json()["error"]["status"] == "UNAVAILABLE"
    bedrock = probe.post(f"/bedrock/model/{BEDROCK_MODEL}/converse", json={})
    assert bedrock.status_code == 503
    assert bedrock.headers["x-amzn-errortype"].startswith("ServiceUnavailableException:")
    assert "shutting down" in bedrock.json()["message"]
    api = probe.get("/api/whoami")
    assert api.status_code == 503
    assert "shutting down" in api.json()["error"]
    unserved = probe.post("/v1/embeddings", json={})  # no operation: still OpenAI's envelope
    assert unserved.status_code == 503
    assert unserved.json()["error"]["type"] == "service_unavailable"
    assert "shutting down" in unserved.json()["error"]["message"]

    gate.set()  # the stream in flight finishes within the grace, whole
    text = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text.split()[-1] == "tok19"
    assert gw.process.wait(30) == 0
    assert "request cut by shutdown" not in gw.logs()

    again = server()
    record = record_of(again, request_id)
    assert record["cancelled"] is False
    assert record["error"] == ""
    assert record["usage_estimated"] is False  # the upstream's own usage


def test_a_second_sigterm_cuts_at_once_and_reported_usage_counts_as_reported(
    server: Any, fake_llm: FakeLLM, gate: threading.Event
) -> None:
    gw = server()  # 30 s grace, cut short by the second signal
    probe = http_from(ALICE_IP, gw.url)
    with anthropic_client(gw).messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=PROMPT,  # type: ignore[arg-type]
    ) as stream:
        request_id = stream.response.headers["x-irisgate-request-id"]
        assert fake_llm.wait_for(lambda: fake_llm.gated_streams == 1, timeout=30)
        assert gw.process is not None
        gw.process.send_signal(signal.SIGTERM)
        assert fake_llm.wait_for(lambda: probe.get("/readyz").status_code == 503, timeout=30)
        gw.process.send_signal(signal.SIGTERM)
        with pytest.raises(httpx2.RemoteProtocolError):  # broken off (the stream helper's way)
            list(stream)
    assert gw.process.wait(30) == 0

    record = record_of(server(), request_id)
    assert record["error"] == "shutdown: cut by a second stop signal during the grace"
    assert record["input_tokens"] == 3  # message_start's own count (the fake counts words)
    assert record["usage_estimated"] is True  # the output: counted by irisgate
    assert record["output_tokens"] > 0
    assert record["cost_nanodollars"] > 0


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_bad_shutdown_grace_stops_the_start_naming_the_flag(value: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "irisgate", "serve", "--data-dir", str(tmp_path)],
        env={**os.environ, "IRISGATE_SHUTDOWN_GRACE": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--shutdown-grace must be" in done.stderr
