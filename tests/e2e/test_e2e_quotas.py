"""Budgets through a real irisgate: templates, scoping by model, 429s in each caller's format,
refill, the quota API, streams and cancelled requests, restarts. irisgate's app runs in the
test's process (`InProcessIrisgate`, a tailnet user per loopback address) except where its
process is the point: a stream the client hangs up on, a restart after SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import (
    ALICE_IP,
    BOB_IP,
    CI_IP,
    Gateway,
    _socket_of,
    anthropic_client,
    client_from,
    gateway_config,
    openai_client,
    wait_for_record,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer

MESSAGES = [{"role": "user", "content": "hello there"}]


def quota_config(upstream: str, quotas: dict[str, Any], **caps: Any) -> str:
    """The standard test config; `caps` adds capability objects per identity key."""
    config_text = gateway_config(upstream, quotas=quotas)
    import json

    config = json.loads(config_text.split("\n", 1)[1])
    for index, extra in caps.items():
        grant = config["grants"][int(index.removeprefix("g"))]
        grant["app"]["tailscale.com/cap/aperture"].extend(extra)
    return json.dumps(config, indent=2)


@pytest.fixture
def start(fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path) -> Iterator[Any]:
    servers: list[Gateway] = []

    def run(config: str, data_dir: Path | None = None, process: bool = False) -> Any:
        """irisgate with `config`: its app in this process, or with `process` a process of
        its own."""
        options: dict[str, Any] = {
            "data_dir": data_dir or tmp_path / f"gw{len(servers)}",
            "identity": "tailscale",
            "tailscaled_socket": _socket_of(localapi),
        }
        server: Gateway
        if process:
            server = IrisgateServer(config, **options)
        else:
            server = InProcessIrisgate(config, **options)
        servers.append(server.start())
        return server

    yield run
    for server in servers:
        server.stop()


def chat(gw: Gateway, ip: str = ALICE_IP, model: str = "gpt-4o-mini") -> Any:
    return openai_client(gw, ip).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES
    )


def buckets(gw: Gateway, ip: str = ALICE_IP) -> dict[str, dict[str, Any]]:
    resp = client_from(ip, gw).get("/api/quotas")
    assert resp.status_code == 200, resp.text
    return {b["name"]: b for b in resp.json()["buckets"]}


def spend_until_refused(gw: Gateway, ip: str = ALICE_IP, limit: int = 50) -> list[str]:
    """Request ids of the requests that went through before the first 429."""
    passed: list[str] = []
    for _ in range(limit):
        try:
            raw = chat(gw, ip)
        except openai.RateLimitError:
            return passed
        passed.append(raw.headers["x-irisgate-request-id"])
    raise AssertionError(f"no 429 after {limit} requests")


def recorded_cost(gw: Gateway, request_ids: list[str]) -> int:
    return sum(wait_for_record(gw, rid)["cost_nanodollars"] for rid in request_ids)


ALICE_DAILY = {"daily:<user>": {"capacity": "$0.0001", "rate": "$0/day"}}


def test_exhausted_bucket_answers_429_in_openai_format_and_debits_actual_costs(
    start: Any, fake_llm: FakeLLM
) -> None:
    gw = start(
        quota_config(fake_llm.base_url, ALICE_DAILY, g0=[{"quotas": [{"bucket": "daily:<user>"}]}])
    )
    passed = spend_until_refused(gw)
    assert passed, "a full bucket must admit requests"
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw)
    error = refused.value
    assert error.status_code == 429
    assert error.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert "daily:alice@example.com" in error.message
    assert "does not refill" in error.message
    assert "retry-after" not in error.response.headers  # a $0 rate never refills
    calls_before = len(fake_llm.requests)
    with pytest.raises(openai.RateLimitError):
        chat(gw)
    assert len(fake_llm.requests) == calls_before, "a refused request must not go upstream"
    spent = recorded_cost(gw, passed)  # waits for the records: each is settled before stored
    balance = buckets(gw)["daily:alice@example.com"]
    assert balance["balance_nanodollars"] == 100_000 - spent
    assert balance["balance_nanodollars"] <= 0
    assert balance["capacity"] == "$0.0001"


def test_refill_brings_the_bucket_back_after_retry_after_seconds(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {"burst:<user>": {"capacity": "$0.00005", "rate": "$0.0006/min"}}  # 10k nano/s
    gw = start(
        quota_config(fake_llm.base_url, quotas, g0=[{"quotas": [{"bucket": "burst:<user>"}]}])
    )
    spend_until_refused(gw)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw)
    retry_after = int(refused.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 10
    assert f"refills in {retry_after} s" in refused.value.message
    time.sleep(retry_after)
    assert chat(gw).http_response.status_code == 200


def test_anthropic_callers_get_rate_limit_error_and_buckets_apply_by_model(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {"claude:<user>": {"capacity": "$0.00005", "rate": "$0/day"}}
    bob_caps = [{"models": "anthropic/**", "quotas": [{"bucket": "claude:<user>"}]}]
    gw = start(quota_config(fake_llm.base_url, quotas, g1=bob_caps))
    client = anthropic_client(gw, BOB_IP)
    with pytest.raises(anthropic.RateLimitError) as refused:  # noqa: PT012
        for _ in range(50):
            client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
    assert refused.value.status_code == 429
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert "claude:bob@example.com" in refused.value.message
    # the bucket is scoped to anthropic/**: bob's local model is not charged
    answer = chat(gw, BOB_IP, model="llama-local")
    assert answer.http_response.status_code == 200
    mine = buckets(gw, BOB_IP)
    assert list(mine) == ["claude:bob@example.com"]
    assert mine["claude:bob@example.com"]["used_by"] == [
        {"src": ["bob@example.com", "group:eng"], "models": ["anthropic/**"]}
    ]


def test_node_template_charges_the_calling_device(start: Any, fake_llm: FakeLLM) -> None:
    quotas = {"device:<node>": {"capacity": "$1.00", "rate": "$1.00/day"}}
    gw = start(
        quota_config(fake_llm.base_url, quotas, g2=[{"quotas": [{"bucket": "device:<node>"}]}])
    )
    assert chat(gw, CI_IP).http_response.status_code == 200
    own = buckets(gw, CI_IP)
    [name] = own
    assert name.startswith("device:n") and name != "device:<node>"
    assert own[name]["balance_nanodollars"] < 1_000_000_000


def test_invalid_quota_fails_closed_while_the_rest_keeps_working(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {"typo": {"capacity": "ten dollars", "rate": "$1/day"}}
    bob_caps = [{"models": "anthropic/**", "quotas": [{"bucket": "typo"}]}]
    gw = start(quota_config(fake_llm.base_url, quotas, g1=bob_caps))
    with pytest.raises(anthropic.RateLimitError) as refused:
        anthropic_client(gw, BOB_IP).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES
        )
    assert "quota typo is invalid" in refused.value.message
    assert "capacity" in refused.value.message
    assert chat(gw, BOB_IP, model="llama-local").http_response.status_code == 200
    assert chat(gw, ALICE_IP).http_response.status_code == 200
    assert "invalid quota" in buckets(gw)["typo"]["error"]
    assert gw.config_path is not None
    check = subprocess.run(
        [sys.executable, "-m", "irisgate", "config", "check", str(gw.config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1  # config check still fails on it
    assert 'quotas.typo.capacity: "ten dollars" is not a dollar amount' in check.stderr


def test_overdraft_chain_borrows_from_the_next_bucket(start: Any, fake_llm: FakeLLM) -> None:
    quotas = {
        "base:<user>": {"capacity": "$0.00003", "rate": "$0/day", "default_estimate": "$0.00001"},
        "extra": {"capacity": "$0.0001", "rate": "$0/day"},
    }
    caps = [{"quotas": [{"bucket": "base:<user>", "overdraft": ["extra"]}]}]
    gw = start(quota_config(fake_llm.base_url, quotas, g0=caps))
    passed = spend_until_refused(gw)
    recorded = recorded_cost(gw, passed)  # waits for the records: each is settled before stored
    state = buckets(gw)
    base, extra = state["base:alice@example.com"], state["extra"]
    assert base["balance_nanodollars"] == 0  # used up first, never overdrawn
    assert extra["balance_nanodollars"] <= 0  # the last bucket took the rest
    spent = 30_000 - base["balance_nanodollars"] + 100_000 - extra["balance_nanodollars"]
    assert spent == recorded


def test_streams_and_cancelled_streams_are_debited_their_recorded_cost(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {"daily:<user>": {"capacity": "$1.00", "rate": "$0/day"}}
    gw = start(
        quota_config(fake_llm.base_url, quotas, g0=[{"quotas": [{"bucket": "daily:<user>"}]}]),
        process=True,  # a client hanging up on a stream
    )
    client = openai_client(gw)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as resp:
        complete_id = resp.headers["x-irisgate-request-id"]
        list(resp.iter_lines())
    fake_llm.n_chunks = 1200
    fake_llm.chunk_delay = 0.05  # a 60 s answer: only the hang-up ends it sooner
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as resp:
        cancelled_id = resp.headers["x-irisgate-request-id"]
        next(resp.iter_lines())  # one event, then hang up
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    cancelled = wait_for_record(gw, cancelled_id)
    assert cancelled["cancelled"] is True
    # cut before OpenAI's usage chunk: its estimated usage is what the bucket is charged
    assert cancelled["usage_estimated"] is True
    assert cancelled["cost_nanodollars"] > 0
    expected = 1_000_000_000 - recorded_cost(gw, [complete_id, cancelled_id])
    deadline = time.monotonic() + 30  # only a stuck test waits this long
    while buckets(gw)["daily:alice@example.com"]["balance_nanodollars"] != expected:
        assert time.monotonic() < deadline, buckets(gw)
        time.sleep(0.05)


def test_quota_api_refill_and_set_are_admin_only_capped_and_audited(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {"daily:<user>": {"capacity": "$10.00", "rate": "$0/day"}}
    caps = [{"quotas": [{"bucket": "daily:<user>"}]}]
    gw = start(quota_config(fake_llm.base_url, quotas, g0=caps, g1=caps))
    admin, bob = client_from(ALICE_IP, gw), client_from(BOB_IP, gw)
    name = "daily:bob@example.com"
    resp = bob.post("/api/quotas/refill", json={"bucket": name, "amount": "5"})
    assert resp.status_code == 403
    resp = admin.post("/api/quotas/set", json={"bucket": name, "balance": "$2.50"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["bucket"]["balance"] == "$2.50"
    resp = admin.post("/api/quotas/refill", json={"bucket": name, "amount": 1.25})
    assert resp.json()["bucket"]["balance_nanodollars"] == 3_750_000_000
    resp = admin.post("/api/quotas/refill", json={"bucket": name, "amount": "100"})
    assert resp.json()["bucket"]["balance"] == "$10.00"  # never above capacity
    for body, message in [
        ({"bucket": name, "amount": "lots"}, "'amount' \"lots\" is not a dollar amount"),
        ({"bucket": name, "amount": "-1"}, "must not be negative"),
        ({"bucket": name, "amount": "0"}, "must be more than $0"),
        ({"bucket": name}, "'amount' is required"),
        ({"bucket": "weekly:bob", "amount": "1"}, "no quota in the config matches"),
    ]:
        resp = admin.post("/api/quotas/refill", json=body)
        assert resp.status_code in (400, 404), body
        assert message in resp.json()["error"], resp.json()
    resp = admin.post("/api/quotas/set", json={"bucket": name, "balance": "11"})
    assert "above the bucket's capacity $10.00" in resp.json()["error"]
    mine = buckets(gw, BOB_IP)
    assert list(mine) == [name]
    assert mine[name]["balance"] == "$10.00"
    assert set(buckets(gw)) >= {name}
    changes = admin.get("/api/quotas/changes", params={"bucket": name}).json()["changes"]
    assert [(c["action"], c["changed_by"], c["amount"]) for c in changes] == [
        ("refill", "alice@example.com", "$100.00"),
        ("refill", "alice@example.com", "$1.25"),
        ("set", "alice@example.com", "$2.50"),
    ]
    assert changes[0]["balance_after_nanodollars"] == 10_000_000_000
    assert bob.get("/api/quotas/changes", params={"bucket": name}).status_code == 403


def test_setting_a_balance_takes_effect_although_the_instance_holds_a_lease(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {"daily:<user>": {"capacity": "$10.00", "rate": "$0/day"}}
    gw = start(
        quota_config(fake_llm.base_url, quotas, g0=[{"quotas": [{"bucket": "daily:<user>"}]}])
    )
    first = chat(gw).headers["x-irisgate-request-id"]  # the instance now holds a lease
    admin = client_from(ALICE_IP, gw)
    name = "daily:alice@example.com"
    assert admin.post("/api/quotas/set", json={"bucket": name, "balance": "0"}).status_code == 200
    with pytest.raises(openai.RateLimitError):
        chat(gw)
    assert admin.post("/api/quotas/refill", json={"bucket": name, "amount": "1"}).status_code == 200
    second = chat(gw).headers["x-irisgate-request-id"]
    cost = recorded_cost(gw, [second])
    deadline = time.monotonic() + 30  # only a stuck test waits this long
    while buckets(gw)[name]["balance_nanodollars"] != 1_000_000_000 - cost:
        assert time.monotonic() < deadline, (buckets(gw), cost, recorded_cost(gw, [first]))
        time.sleep(0.05)


def test_balances_and_spending_survive_a_restart(
    start: Any, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    config = quota_config(
        fake_llm.base_url, ALICE_DAILY, g0=[{"quotas": [{"bucket": "daily:<user>"}]}]
    )
    data = tmp_path / "kept"
    gw = start(config, data, process=True)  # SIGTERM and its log
    ids = [chat(gw).headers["x-irisgate-request-id"] for _ in range(2)]
    gw.stop()  # SIGTERM: spending is reported, leases given back
    assert "could not be reported" not in gw.logs()
    again = start(config, data)
    cost = recorded_cost(again, ids)
    assert buckets(again)["daily:alice@example.com"]["balance_nanodollars"] == 100_000 - cost
    passed = spend_until_refused(again)
    assert buckets(again)["daily:alice@example.com"]["balance_nanodollars"] == (
        100_000 - cost - recorded_cost(again, passed)
    )


def test_management_errors_use_the_api_envelope(start: Any, fake_llm: FakeLLM) -> None:
    gw = start(quota_config(fake_llm.base_url, ALICE_DAILY))
    resp = client_from("127.0.0.1", gw).post("/api/quotas/refill", content=b"{")
    assert resp.status_code in (400, 403)
    assert "error" in resp.json()
