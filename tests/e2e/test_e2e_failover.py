"""Failover, provider health and several keys, end to end: a real irisgate process in front
of fault-injecting fake vendors, called with the official SDKs.

Each scenario has its own model and providers, so that the health one test leaves behind
(a rested key, an open circuit) never meets another test. The fakes: `fake_llm` (A, reset
before each test), `backup` (B), `hanging` (answers nothing while its `hang` is set),
`keyed` (accepts only `RIGHT_KEY`), and a bound socket that is not listening (refuses).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import ALICE_IP, anthropic_client, http_from, openai_client, wait_for_record
from prometheus_client.parser import text_string_to_metric_families

from irisgate.testing import FakeHook, FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

RIGHT_KEY = "sk-the-right-key-0123456789"
WRONG_KEY = "sk-a-revoked-key-9876543210"
GUARD = {"name": "guard", "events": ["pre_request"], "send": ["request_body"]}
MESSAGES = [{"role": "user", "content": "hello there world"}]


@pytest.fixture(scope="module")
def backup() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def hanging() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def keyed() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        fake.api_key = RIGHT_KEY
        yield fake


@pytest.fixture(scope="module")
def hooks() -> Iterator[FakeHook]:
    with FakeHook() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset(backup: FakeLLM, hanging: FakeLLM, keyed: FakeLLM) -> None:
    for fake in (backup, hanging, keyed):
        fake.reset()
    keyed.api_key = RIGHT_KEY


@pytest.fixture(scope="module")
def refusing() -> Iterator[str]:
    """A base URL whose port is bound but not listening: every connection is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _pair(name: str, first: str, second: str, **extra: Any) -> dict[str, Any]:
    """Two providers of model `m-<name>`: `<name>-a` at `first` preferred, `<name>-b` next."""
    compat = {"openai_chat": True, "anthropic_messages": True}
    return {
        f"{name}-a": {
            "baseurl": first,
            "apikey": "sk-a",
            "models": [f"m-{name}"],
            "preference": 10,
            "compatibility": compat,
            **extra,
        },
        f"{name}-b": {
            "baseurl": second,
            "apikey": "sk-b",
            "models": [f"m-{name}"],
            "preference": 5,
            "compatibility": compat,
        },
    }


def _config(a: str, b: str, hang: str, keyed: str, refusing: str, hook: str) -> str:
    providers: dict[str, Any] = {
        **_pair("refuse", refusing, b),
        **_pair("500", a, b),
        **_pair("429", a, b),
        **_pair("hang", hang, b),
        **_pair("drop", a, b),
        **_pair("cb", a, b),
        **_pair("last", a, b),
        "keys": {
            "baseurl": keyed,
            "apikey": [WRONG_KEY, "env:IRISGATE_TEST_RIGHT_KEY"],
            "models": ["m-keys"],
        },
        "solo": {"baseurl": a, "apikey": "sk", "models": ["m-solo"]},
        "w1": {"baseurl": b, "apikey": "sk", "models": ["m-w"], "weight": 1},
        "w3": {"baseurl": b, "apikey": "sk", "models": ["m-w"], "weight": 3},
    }
    grants = [
        {
            "src": ["alice@example.com"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "admin"},
                    {"models": "**", "read_metrics": True},
                    {"models": "*/m-500", "send_hooks": [GUARD]},
                ]
            },
        }
    ]
    hooks = {"guard": {"url": hook}}
    return json.dumps({"providers": providers, "grants": grants, "hooks": hooks})


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM,
    backup: FakeLLM,
    hanging: FakeLLM,
    keyed: FakeLLM,
    refusing: str,
    hooks: FakeHook,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    urls = (fake_llm.base_url, backup.base_url, hanging.base_url, keyed.base_url)
    config = _config(*urls, refusing, hooks.url("guard"))
    server = IrisgateServer(
        config,
        data_dir=Path(tmp_path_factory.mktemp("failover")),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={
            "IRISGATE_TEST_RIGHT_KEY": RIGHT_KEY,
            # a hanging upstream is given up on after 1 s without a byte (then failover)
            "IRISGATE_UPSTREAM_READ_TIMEOUT": "1",
            "IRISGATE_CIRCUIT_COOL_DOWN": "3600",
        },
    )
    with server:
        yield server


def _chat(gw: IrisgateServer, model: str, **extra: Any) -> tuple[str, Any]:
    """(irisgate request id, the parsed completion) of one chat call."""
    raw = openai_client(gw).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, **extra
    )
    return raw.headers["x-irisgate-request-id"], raw.parse()


def _metric(gw: IrisgateServer, name: str, **labels: str) -> float:
    answer = http_from(ALICE_IP, gw.url).get("/metrics")
    assert answer.status_code == 200, answer.text
    text = answer.text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_a_refused_connection_fails_over_and_the_answer_is_charged_once(
    gw: IrisgateServer, backup: FakeLLM
) -> None:
    request_id, completion = _chat(gw, "m-refuse")
    assert completion.choices[0].message.content
    assert len(backup.requests) == 1
    record = wait_for_record(gw, request_id)
    assert record["provider"] == "refuse-b"
    assert record["status"] == 200
    first, second = record["attempts"]
    assert (first["provider"], first["key"], first["status"]) == ("refuse-a", 0, 0)
    assert "cannot connect" in first["error"]
    assert (second["provider"], second["status"], second["error"]) == ("refuse-b", 200, "")
    assert record["input_tokens"] == completion.usage.prompt_tokens
    assert record["cost_nanodollars"] is not None or record["cost_basis"] == ""


def test_a_5xx_is_retried_on_the_next_provider_with_the_same_body(
    gw: IrisgateServer, fake_llm: FakeLLM, backup: FakeLLM, hooks: FakeHook
) -> None:
    fake_llm.fail_next(500)
    client = anthropic_client(gw)
    raw = client.messages.with_raw_response.create(
        model="m-500",
        max_tokens=32,
        messages=MESSAGES,  # type: ignore[arg-type]
    )
    message = raw.parse()
    assert message.content[0].type == "text"
    assert len(fake_llm.requests) == 1 and len(backup.requests) == 1
    assert backup.requests[0].body == fake_llm.requests[0].body  # re-sent unchanged
    assert backup.requests[0].headers["authorization"] == "Bearer sk-b"  # each provider's own key
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert record["provider"] == "500-b"
    assert [(a["provider"], a["status"]) for a in record["attempts"]] == [
        ("500-a", 500),
        ("500-b", 200),
    ]
    assert record["attempts"][0]["error"] == "upstream answered 500"
    assert len(hooks.calls) == 1  # the guardrail ran once for the request, not per attempt


def test_a_429_with_retry_after_rests_the_provider_that_long(
    gw: IrisgateServer, fake_llm: FakeLLM, backup: FakeLLM
) -> None:
    fake_llm.fail_next(429, headers={"Retry-After": "600"})
    request_id, _ = _chat(gw, "m-429")
    record = wait_for_record(gw, request_id)
    assert [a["status"] for a in record["attempts"]] == [429, 200]
    assert "Retry-After 600 s" in record["attempts"][0]["error"]
    assert _metric(gw, "irisgate_provider_key_available", provider="429-a", key="0") == 0
    # resting: the next requests go straight to the backup
    for _ in range(3):
        request_id, _ = _chat(gw, "m-429")
    assert len(fake_llm.requests) == 1
    assert len(backup.requests) == 4
    record = wait_for_record(gw, request_id)
    assert record["provider"] == "429-b" and record["attempts"] == []


def test_an_upstream_that_never_answers_fails_over_after_the_read_timeout(
    gw: IrisgateServer, hanging: FakeLLM, backup: FakeLLM
) -> None:
    hanging.hang = True
    try:
        request_id, completion = _chat(gw, "m-hang")
    finally:
        hanging.hang = False
    assert completion.choices[0].message.content
    record = wait_for_record(gw, request_id)
    assert [(a["provider"], a["status"]) for a in record["attempts"]] == [
        ("hang-a", 0),
        ("hang-b", 200),
    ]
    assert "no data from the upstream" in record["attempts"][0]["error"]


def test_a_stream_that_breaks_after_its_first_event_is_not_retried(
    gw: IrisgateServer, fake_llm: FakeLLM, backup: FakeLLM
) -> None:
    fake_llm.drop_after_events = 1
    stream = openai_client(gw).chat.completions.create(
        model="m-drop",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError):  # broken off, as the vendor's would be
        received.extend(stream)
    assert len(received) == 1
    assert backup.requests == []  # a byte had reached the client: nothing is retried
    fake_llm.wait_for(lambda: len(fake_llm.requests) == 1)
    assert len(fake_llm.requests) == 1


def test_repeated_failures_open_the_circuit_and_the_provider_is_left_out(
    gw: IrisgateServer, fake_llm: FakeLLM, backup: FakeLLM
) -> None:
    fake_llm.fail_next(503, count=5)
    for _ in range(5):
        _chat(gw, "m-cb")
    assert len(fake_llm.requests) == 5 and len(backup.requests) == 5
    assert _metric(gw, "irisgate_provider_circuit", provider="cb-a", state="open") == 1
    assert _metric(gw, "irisgate_provider_cool_down_seconds", provider="cb-a") > 0
    assert _metric(gw, "irisgate_provider_error_ratio", provider="cb-a") == 1
    request_id, _ = _chat(gw, "m-cb")
    assert len(fake_llm.requests) == 5  # open: not tried
    record = wait_for_record(gw, request_id)
    assert record["provider"] == "cb-b"


def test_the_last_providers_error_reaches_the_client_unchanged(
    gw: IrisgateServer, fake_llm: FakeLLM, backup: FakeLLM
) -> None:
    fake_llm.fail_next(502)
    backup.fail_next(500)
    with pytest.raises(openai.InternalServerError) as caught:
        _chat(gw, "m-last")
    assert caught.value.status_code == 500  # the backup's own answer, passed through
    request_id = caught.value.response.headers["x-irisgate-request-id"]
    record = wait_for_record(gw, request_id)
    assert record["status"] == 500 and record["provider"] == "last-b"
    assert [a["status"] for a in record["attempts"]] == [502, 500]


def test_a_refused_key_is_dropped_and_the_records_name_keys_by_index(
    gw: IrisgateServer, keyed: FakeLLM
) -> None:
    ids = []
    for n in range(6):
        raw = openai_client(gw).chat.completions.with_raw_response.create(
            model="m-keys",
            messages=[{"role": "user", "content": f"conversation {n}"}],
        )
        ids.append(raw.headers["x-irisgate-request-id"])
    sent = [r.headers["authorization"] for r in keyed.requests]
    assert sent.count(f"Bearer {WRONG_KEY}") == 1  # tried once, then dropped
    assert sent.count(f"Bearer {RIGHT_KEY}") == 6
    records = [wait_for_record(gw, i) for i in ids]
    attempts = [a for r in records for a in r["attempts"]]
    assert {(a["key"], a["status"]) for a in attempts} == {(0, 401), (1, 200)}
    assert _metric(gw, "irisgate_provider_key_available", provider="keys", key="0") == 0
    assert _metric(gw, "irisgate_provider_key_available", provider="keys", key="1") == 1
    stored = json.dumps(records)
    assert RIGHT_KEY not in stored and WRONG_KEY not in stored


def test_equal_preference_providers_share_sessions_by_weight_and_keep_each(
    gw: IrisgateServer,
) -> None:
    chosen: dict[str, str] = {}
    client = openai_client(gw)
    for n in range(24):
        session = f"session-{n}"
        for _ in range(2):  # a session's second request goes where its first went
            raw = client.chat.completions.with_raw_response.create(
                model="m-w", messages=MESSAGES, extra_headers={"x-session-id": session}
            )
            record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
            assert chosen.setdefault(session, record["provider"]) == record["provider"]
    shares = list(chosen.values())
    assert shares.count("w3") > shares.count("w1") > 0


def test_with_every_key_resting_irisgate_answers_429_itself_until_the_rest_ends(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_next(429, headers={"Retry-After": "600"})
    client = openai_client(gw)
    with pytest.raises(openai.RateLimitError) as upstream:
        client.chat.completions.create(model="m-solo", messages=MESSAGES)  # type: ignore[arg-type]
    assert upstream.value.response.headers["retry-after"] == "600"  # the vendor's own answer
    with pytest.raises(openai.RateLimitError) as resting:
        client.chat.completions.create(model="m-solo", messages=MESSAGES)  # type: ignore[arg-type]
    assert len(fake_llm.requests) == 1  # the rest spared the upstream the second request
    assert 0 < int(resting.value.response.headers["retry-after"]) <= 600
    body = resting.value.response.json()
    assert body["error"]["code"] == "upstream_rate_limited"
    assert "provider 'solo' is rate-limited" in body["error"]["message"]
    record = wait_for_record(gw, resting.value.response.headers["x-irisgate-request-id"])
    assert record["status"] == 429 and record["provider"] == "solo"
