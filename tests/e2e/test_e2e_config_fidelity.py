"""Config written for Aperture means the same through irisgate: `keyid:` key references,
`<node>` buckets without a node, the models a bucket lists, and averages per million tokens.
irisgate's app runs in the test's process (`InProcessIrisgate`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import (
    ALICE_IP,
    _socket_of,
    client_from,
    gateway_config,
    openai_client,
    wait_for_record,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate

MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def start(fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path) -> Iterator[Any]:
    servers: list[InProcessIrisgate] = []

    def run(config: str, identity: str = "tailscale") -> InProcessIrisgate:
        extra = {"tailscaled_socket": _socket_of(localapi)} if identity == "tailscale" else {}
        server = InProcessIrisgate(
            config, data_dir=tmp_path / f"gw{len(servers)}", identity=identity, **extra
        )
        servers.append(server.start())
        return server

    yield run
    for server in servers:
        server.stop()


def _config(upstream: str, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config.update(changes)
    return config


def test_a_keyid_reference_is_never_sent_upstream_as_the_key(start: Any, fake_llm: FakeLLM) -> None:
    config = _config(fake_llm.base_url)
    config["providers"]["openai"]["apikey"] = "keyid:openai-prod"
    config["providers"]["local"]["apikey"] = "keyid:local-prod"
    config["providers"]["local"]["auth_mode"] = "passthrough"
    gw = start(json.dumps(config))
    # override mode: the provider is out of routing, and the caller is told why
    refused = client_from(ALICE_IP, gw).post(
        "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
    )
    assert refused.status_code == 404, refused.text
    assert "keyid:openai-prod refers to Aperture's hosted key store" in refused.text
    assert not fake_llm.requests
    # passthrough without a client key: nothing is injected in the reference's place
    answer = client_from(ALICE_IP, gw).post(
        "/v1/chat/completions", json={"model": "llama-local", "messages": MESSAGES}
    )
    assert answer.status_code == 200, answer.text
    assert fake_llm.requests, "the passthrough request reached the vendor"
    for request in fake_llm.requests:
        assert all("keyid" not in value for value in request.headers.values())
        assert "authorization" not in request.headers


def test_node_buckets_are_per_person_where_no_node_is_known(start: Any, fake_llm: FakeLLM) -> None:
    quotas = {"device:<node>": {"capacity": "$1.00", "rate": "$1.00/day"}}
    grants = [
        {
            "src": ["*"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "user"},
                    {"models": "**", "quotas": [{"bucket": "device:<node>"}]},
                ]
            },
        }
    ]
    gw = start(json.dumps(_config(fake_llm.base_url, quotas=quotas, grants=grants)), "serve")
    seen: dict[str, list[str]] = {}
    for login in ("alice@example.com", "bob@example.com"):
        headers = {"Tailscale-User-Login": login}
        client = client_from("127.0.0.1", gw)
        client.headers.update(headers)
        answer = client.post(
            "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
        )
        assert answer.status_code == 200, answer.text
        seen[login] = spent_buckets(client)
    assert seen == {
        "alice@example.com": ["device:user:alice@example.com"],
        "bob@example.com": ["device:user:bob@example.com"],
    }


def spent_buckets(client: httpx2.Client) -> list[str]:
    """The caller's buckets that have been charged, once any has been."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        buckets = client.get("/api/quotas").json()["buckets"]
        spent = [b["name"] for b in buckets if b["balance_nanodollars"] < 1_000_000_000]
        if spent:
            return spent
        time.sleep(0.05)
    raise AssertionError("no bucket was charged")


def test_bucket_models_leave_out_disabled_providers(start: Any, fake_llm: FakeLLM) -> None:
    quotas = {"daily:<user>": {"capacity": "$5.00", "rate": "$5.00/day"}}
    config = _config(fake_llm.base_url, quotas=quotas)
    config["providers"]["anthropic"]["disabled"] = True
    admin = config["grants"][0]["app"]["tailscale.com/cap/aperture"]
    admin.append({"models": "**", "quotas": [{"bucket": "daily:<user>"}]})
    gw = start(json.dumps(config))
    [bucket] = client_from(ALICE_IP, gw).get("/api/quotas").json()["buckets"]
    assert bucket["caller_models"] == [
        "openai/gpt-4o-mini",
        "openai/gpt-5-mini",
        "local/llama-local",
    ]


def test_average_per_million_tokens_counts_only_priced_tokens(
    start: Any, fake_llm: FakeLLM
) -> None:
    gw = start(gateway_config(fake_llm.base_url))
    client = openai_client(gw)
    priced = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    unpriced = client.chat.completions.with_raw_response.create(
        model="llama-local", messages=MESSAGES * 20
    )
    records = [
        wait_for_record(gw, answer.headers["x-irisgate-request-id"])
        for answer in (priced, unpriced)
    ]
    assert records[0]["cost_nanodollars"] > 0
    assert records[1]["cost_nanodollars"] is None
    expected = round(records[0]["cost_nanodollars"] * 1_000_000 / records[0]["total_tokens"])
    summary = client_from(ALICE_IP, gw).get("/api/usage/summary").json()
    assert summary["totals"]["total_tokens"] == sum(r["total_tokens"] for r in records)
    assert summary["totals"]["avg_cost_per_mtok_nanodollars"] == expected
    by_model = {m["model"]: m for m in summary["models"]}
    assert by_model["llama-local"]["avg_cost_per_mtok_nanodollars"] is None
    users = client_from(ALICE_IP, gw).get("/api/usage/users").json()["users"]
    assert users[0]["avg_cost_per_mtok_nanodollars"] == expected
