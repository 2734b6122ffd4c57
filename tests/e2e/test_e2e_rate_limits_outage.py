"""Rate limits while PostgreSQL is down: admission never waits for the database, so the
limits go on holding on the instance (its own counts), the failing sync is logged once,
and it syncs again when the database is back."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from conftest import ALICE_IP, gateway_config, openai_client

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.postgres import PostgresCluster
from irisgate.testing.server import IrisgateServer

MESSAGES = [{"role": "user", "content": "hello there"}]


def test_limits_hold_through_an_outage_and_sync_again(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    pg = postgres_cluster
    rate_limits = {"rph:<user>": {"requests": 3, "per": "hour"}}
    config = json.loads(
        gateway_config(fake_llm.base_url, rate_limits=rate_limits).split("\n", 1)[1]
    )
    alice = config["grants"][0]["app"]["tailscale.com/cap/aperture"]
    alice.append({"models": "openai/gpt-4o-mini", "rate_limits": ["rph:<user>"]})
    assert localapi.socket_path
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        database=pg.url,
    )
    try:
        with server as gw:
            client = openai_client(gw, ALICE_IP)
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            pg.stop()
            for _ in range(2):  # answered while the database is away (records spooled)
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert 'rate limit "rph:alice@example.com" reached' in refused.value.message
            assert fake_llm.wait_for(lambda: "rate limits not synced" in gw.logs(), 30)
            pg.start()
            assert fake_llm.wait_for(lambda: "rate limits synced again" in gw.logs(), 60)
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            logs = gw.logs()
    finally:
        if not pg.running():
            pg.start()
    assert logs.count("rate limits not synced") == 1, logs[-3000:]
    assert logs.count("rate limits synced again") == 1
    assert "Traceback" not in logs
    assert len(fake_llm.requests) == 3
