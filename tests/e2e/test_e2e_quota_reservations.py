"""What a request reserves in a small bucket, and what a refusal says while money is held.

Requests are held in flight by the fake's stream gate (each stream pauses after its first
event), so what is reserved at each admission is known without any timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import ALICE_IP, _socket_of, gateway_config, openai_client, wait_for_record
from openai import Stream
from openai.types.chat import ChatCompletionChunk

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def gated(fake_llm: FakeLLM) -> Iterator[threading.Event]:
    gate = threading.Event()
    fake_llm.stream_gate = gate
    try:
        yield gate
    finally:
        gate.set()


def _server(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path, capacity: str
) -> IrisgateServer:
    import json

    config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])
    config["quotas"] = {"small": {"capacity": capacity, "rate": "$0/day"}}
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append(
        {"quotas": [{"bucket": "small"}]}
    )
    return IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=_socket_of(localapi),
    )


def _open(client: openai.OpenAI, **limit: Any) -> tuple[str, Stream[ChatCompletionChunk]]:
    """A streamed request admitted and paused upstream after its first event."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, **limit
    )
    stream = raw.parse()
    next(iter(stream))
    return raw.headers["x-irisgate-request-id"], stream


def test_requests_without_an_output_limit_do_not_reserve_a_fixed_cent(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path, gated: threading.Event
) -> None:
    # Each answer of the fake costs ~$0.00001. Before, each request without an output limit
    # reserved $0.01, so a $0.02 bucket refused the third one in flight as "exhausted".
    with _server(fake_llm, localapi, tmp_path, "$0.02") as gw:
        client = openai_client(gw, ALICE_IP)
        streams = [_open(client) for _ in range(4)]
        assert fake_llm.wait_for(lambda: fake_llm.gated_streams == 4)
        gated.set()
        for _, stream in streams:
            assert list(stream)
        ids = [rid for rid, _ in streams]
        costs = [wait_for_record(gw, rid)["cost_nanodollars"] for rid in ids]
        assert all(costs)


def test_a_refusal_while_money_is_reserved_names_the_requests_in_flight(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path, gated: threading.Event
) -> None:
    # 17,000 output tokens of gpt-4o-mini are $0.0102: one such request reserves all
    # of a $0.01 bucket while it runs, though it will cost a thousandth of that.
    big = {"max_tokens": 17_000}
    with _server(fake_llm, localapi, tmp_path, "$0.01") as gw:
        client = openai_client(gw, ALICE_IP)
        first, stream = _open(client, **big)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **big)
        message = refused.value.message
        assert "exhausted" not in message
        assert "bucket small has $0.01 unspent" in message
        assert "reserved by 1 request(s) in flight" in message
        retry_after = int(refused.value.response.headers["retry-after"])
        assert retry_after >= 1
        assert f"retry in {retry_after} s" in message
        gated.set()
        assert list(stream)
        wait_for_record(gw, first)
        # the reservation is released and the real (small) cost charged: room again
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, **big
        )
        assert raw.http_response.status_code == 200
