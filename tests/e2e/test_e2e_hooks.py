"""Guardrail hooks through a real irisgate, with real HTTP servers as hooks (reference §9).

FakeHook serves every hook of a test on its own path: allowing (the default), blocking,
modifying, slow (a delay past the hook's timeout), failing (HTTP 500) and down (a port where
nothing listens). Clients are the official SDKs. irisgate's app runs in the test's process
(`InProcessIrisgate`, a tailnet user per loopback address) except where its process is the
point: its log, its memory, a stream read from a socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import (
    BOB_IP,
    Gateway,
    _socket_of,
    anthropic_client,
    gateway_config,
    openai_client,
    wait_for_record,
)
from rawhttp import memory_kib, reset_peak

from irisgate.testing import FakeHook, FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer, free_port

MIB = 1024 * 1024
MESSAGES = [{"role": "user", "content": "my ssn is 123-45-6789"}]
ALL_SEND = [
    "request_body",
    "response_body",
    "raw_responses",
    "user_message",
    "tools",
    "grants",
    "estimated_cost",
    "quotas",
]


@pytest.fixture
def hooks() -> Iterator[FakeHook]:
    with FakeHook() as fake:
        yield fake


@pytest.fixture
def start(fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path) -> Iterator[Any]:
    servers: list[Gateway] = []

    def run(
        hooks: dict[str, Any],
        wiring: list[dict[str, Any]],
        alice_caps: list[dict[str, Any]] = (),  # type: ignore[assignment]
        env: dict[str, str] | None = None,
        process: bool = False,
        **extra: Any,
    ) -> Any:
        """irisgate with `hooks` defined and wired (send_hooks) for alice and bob: its app in
        this process, or with `process` a process of its own (its logs, its memory)."""
        config = json.loads(
            gateway_config(fake_llm.base_url, hooks=hooks, **extra).split("\n", 1)[1]
        )
        for grant in config["grants"][:2]:
            grant["app"]["tailscale.com/cap/aperture"].append({"send_hooks": wiring})
        config["grants"][0]["app"]["mycompany.com/cap/policy"] = [{"tier": "enterprise"}]
        config["grants"][0]["app"]["tailscale.com/cap/aperture"].extend(alice_caps)
        options: dict[str, Any] = {
            "data_dir": tmp_path / f"gw{len(servers)}",
            "identity": "tailscale",
            "tailscaled_socket": _socket_of(localapi),
            "env": env,
        }
        server: Gateway
        if process:
            server = IrisgateServer(json.dumps(config), **options)
        else:
            server = InProcessIrisgate(json.dumps(config), **options)
        servers.append(server.start())
        return server

    yield run
    for server in servers:
        server.stop()


def pre(name: str, send: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "events": ["pre_request"], "send": send or ["request_body"]}


def test_allow_hook_receives_metadata_and_what_send_selects(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM
) -> None:
    gw = start(
        {"guard": {"url": hooks.url("guard"), "apikey": "hook-secret"}},
        [pre("guard", ["request_body", "user_message", "grants", "estimated_cost"])],
    )
    raw = openai_client(
        gw, default_headers={"User-Agent": "test-agent/1.0"}
    ).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=10
    )
    assert raw.http_response.status_code == 200
    [call] = hooks.calls_to("guard")
    assert call.headers["authorization"] == "Bearer hook-secret"
    meta = call.payload["metadata"]
    assert meta["login_name"] == "alice@example.com"
    assert meta["user_agent"] == "test-agent/1.0"
    assert meta["url"] == f"{gw.url}/v1/chat/completions"
    assert (meta["model"], meta["provider"]) == ("gpt-4o-mini", "openai")
    assert meta["request_id"] == raw.headers["x-irisgate-request-id"]
    assert meta["session_id"]
    assert meta["stable_node_id"]
    assert "tailnet_name" in meta
    assert meta["grants"] == {"mycompany.com/cap/policy": [{"tier": "enterprise"}]}
    assert meta["estimated_cost"]["dollars"] > 0
    assert "quotas" not in meta  # not in send
    assert call.payload["request_body"]["messages"] == MESSAGES
    assert call.payload["user_message"] == MESSAGES[0]["content"]
    for field in ("response_body", "raw_responses", "tool_calls"):
        assert field not in call.payload  # post-response fields only


def test_block_answers_in_the_callers_format_with_the_hooks_status(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM
) -> None:
    hooks.answer("deny", {"action": "block", "status_code": 451, "message": "no SSNs here"})
    gw = start({"deny": {"url": hooks.url("deny")}}, [pre("deny")])
    with pytest.raises(openai.APIStatusError) as blocked:
        openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert blocked.value.status_code == 451
    assert blocked.value.body["type"] == "guardrail_blocked"  # type: ignore[index]
    assert blocked.value.body["message"] == "no SSNs here"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as refused:
        anthropic_client(gw, BOB_IP).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES
        )
    assert refused.value.status_code == 451
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert fake_llm.requests == [], "a blocked request never reaches the upstream"
    hooks.answer("deny", {"action": "block"})
    with pytest.raises(openai.PermissionDeniedError) as default:
        openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert "request blocked by guardrail deny" in default.value.message


def test_embeddings_and_images_pass_the_same_hooks(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM
) -> None:
    """A guardrail sees what an embedding request embeds and may rewrite it; an image edit
    (an upload, no JSON body to show) runs its post-response hooks only."""

    def scrub(payload: Any) -> dict[str, Any]:
        body = payload["request_body"]
        body["input"] = [text.replace("123-45-6789", "[ssn]") for text in body["input"]]
        return {"action": "modify", "request_body": body}

    hooks.answer("scrub", scrub)
    openai_flags = {"openai_chat": True, "openai_embeddings": True, "openai_images": True}
    providers = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])["providers"]
    providers["openai"].update(
        models=["text-embedding-3-small", "gpt-image-1"], compatibility=openai_flags
    )
    gw = start(
        {"scrub": {"url": hooks.url("scrub")}, "audit": {"url": hooks.url("audit")}},
        [
            pre("scrub", ["request_body", "user_message"]),
            {"name": "audit", "events": ["entire_request"], "send": ["response_body"]},
        ],
        providers=providers,
    )
    client = openai_client(gw)
    client.embeddings.create(model="text-embedding-3-small", input=["my ssn is 123-45-6789"])
    [call] = hooks.calls_to("scrub")
    assert call.payload["user_message"] == "my ssn is 123-45-6789"
    assert call.payload["metadata"]["model"] == "text-embedding-3-small"
    assert fake_llm.last_request.json["input"] == ["my ssn is [ssn]"]
    assert hooks.wait_for(lambda: len(hooks.calls_to("audit")) == 1)
    client.images.edit(
        model="gpt-image-1", image=("a.png", b"\x89PNG\r\n", "image/png"), prompt="p"
    )
    assert len(hooks.calls_to("scrub")) == 1  # no JSON body: no pre-request hook
    assert hooks.wait_for(lambda: len(hooks.calls_to("audit")) == 2)


def test_modify_chain_runs_by_preference_and_the_capture_stores_the_forwarded_body(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM
) -> None:
    def scrub(payload: Any) -> dict[str, Any]:
        body = payload["request_body"]
        body["messages"] = [{"role": "user", "content": "my ssn is [redacted]"}]
        return {"action": "modify", "request_body": body}

    def shout(payload: Any) -> dict[str, Any]:
        body = payload["request_body"]
        body["messages"][0]["content"] = body["messages"][0]["content"].upper()
        return {"action": "modify", "request_body": body}

    hooks.answer("scrub", scrub)
    hooks.answer("shout", shout)
    gw = start(
        {
            "b-shout": {"url": hooks.url("shout"), "preference": 1},
            "a-scrub": {"url": hooks.url("scrub"), "preference": 5},
            "c-audit": {"url": hooks.url("audit"), "preference": 1},
        },
        [pre("c-audit"), pre("b-shout"), pre("a-scrub")],
    )
    raw = openai_client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert [c.name for c in hooks.calls] == ["scrub", "shout", "audit"]
    assert hooks.calls_to("audit")[0].payload["request_body"]["messages"][0]["content"] == (
        "MY SSN IS [REDACTED]"
    )
    forwarded = fake_llm.last_request.json
    assert forwarded["messages"] == [{"role": "user", "content": "MY SSN IS [REDACTED]"}]
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert "MY SSN IS [REDACTED]" in record["request_body"]
    assert "123-45-6789" not in record["request_body"]


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
def test_slow_failing_and_down_hooks_follow_the_fail_policy(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM, policy: str
) -> None:
    hooks.delay["slow"] = 5.0
    hooks.answer("broken", status=500)
    hooks.answer("garbage", {"action": "shrug"})
    down = f"http://127.0.0.1:{free_port()}/hook"
    targets = {
        "slow": hooks.url("slow"),
        "broken": hooks.url("broken"),
        "garbage": hooks.url("garbage"),
        "down": down,
    }
    for name, url in targets.items():
        gw = start({name: {"url": url, "timeout": "300ms", "fail_policy": policy}}, [pre(name)])
        client = openai_client(gw)
        if policy == "fail_open":
            answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert answer.choices[0].message.content, name
        else:
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert failed.value.status_code == 503, name
            assert f"guardrail {name} is unavailable" in failed.value.message
        gw.stop()


def test_a_hook_answer_nested_too_deep_is_a_hook_failure_not_a_500(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM
) -> None:
    def deep(payload: Any) -> dict[str, Any]:
        body = payload["request_body"]
        value: Any = []
        for _ in range(199):  # deeper than irisgate takes, not than the fake hook can encode
            value = [value]
        body["metadata"] = value
        return {"action": "modify", "request_body": body}

    hooks.answer("deep", deep)
    gw = start(
        {"deep": {"url": hooks.url("deep"), "fail_policy": "fail_closed"}},
        [pre("deep")],
        process=True,  # its log
    )
    with pytest.raises(openai.InternalServerError) as failed:
        openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert failed.value.status_code == 503
    assert "guardrail deep is unavailable" in failed.value.message
    assert fake_llm.requests == []
    assert "hook deep answered with invalid JSON: nested deeper than 128 levels" in gw.logs()


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
def test_a_hook_answer_over_the_size_limit_is_a_hook_failure_and_is_not_read(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM, policy: str
) -> None:
    """A 64 MiB answer past `--max-hook-answer 1MiB`: the fail policy decides, and the
    server's peak memory shows the answer was never taken in."""
    huge = {"action": "allow", "padding": "x" * (64 * MIB)}
    hooks.answer("chatty", lambda payload: huge)
    gw = start(
        {"chatty": {"url": hooks.url("chatty"), "fail_policy": policy}},
        [pre("chatty")],
        env={"IRISGATE_MAX_HOOK_ANSWER": "1MiB"},
        process=True,  # its peak memory
    )
    assert gw.process is not None
    reset_peak(gw.process.pid)
    before = memory_kib(gw.process.pid)["VmHWM"]
    client = openai_client(gw)
    if policy == "fail_open":
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.choices[0].message.content
    else:
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert failed.value.status_code == 503
        assert (
            "guardrail chatty is unavailable: hook chatty answered more than 1048576 bytes "
            "(the limit set by --max-hook-answer)"
        ) in failed.value.message
        assert fake_llm.requests == []
    assert len(hooks.calls_to("chatty")) == 1
    assert memory_kib(gw.process.pid)["VmHWM"] - before < 16 * 1024  # KiB; 64 MiB before


def test_post_response_events_arrive_without_delaying_the_client(
    start: Any, hooks: FakeHook, fake_llm: FakeLLM
) -> None:
    gate = threading.Event()
    hooks.gate["audit"] = gate  # the audit hook holds every answer until the test opens it
    gw = start(
        {"audit": {"url": hooks.url("audit")}, "tools": {"url": hooks.url("tools")}},
        [
            {"name": "audit", "events": ["entire_request"], "send": ALL_SEND},
            {"name": "tools", "events": ["tool_call_entire_request"], "send": ["tools"]},
        ],
        quotas={"daily:<user>": {"capacity": "$10.00", "rate": "$10.00/day"}},
        process=True,  # the stream read from a socket while the audit hook is held
    )
    client = openai_client(gw)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text  # the whole answer arrived while the audit hook is still held
    assert hooks.wait_for(lambda: len(hooks.calls_to("audit")) == 1)
    gate.set()
    [event] = hooks.calls_to("audit")
    assert event.payload["request_body"]["messages"] == MESSAGES
    assert event.payload["response_body"]["choices"][0]["message"]["content"] == text
    raw = event.payload["raw_responses"]
    assert isinstance(raw, list) and len(raw) > 1
    assert raw[0]["object"] == "chat.completion.chunk"
    assert event.payload["tool_calls"] == []
    assert event.payload["metadata"]["estimated_cost"]["dollars"] > 0
    assert event.payload["metadata"]["estimated_cost"]["usage"]["output_tokens"] == 20
    assert hooks.calls_to("tools") == [], "no tool call: no tool_call_entire_request"
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "please call tool"}],
        tools=tools,  # type: ignore[arg-type]
    )
    assert hooks.wait_for(lambda: len(hooks.calls_to("tools")) == 1)
    [call] = hooks.calls_to("tools")
    assert call.payload["tool_calls"][0]["name"] == "lookup"
    assert isinstance(call.payload["tool_calls"][0]["params"], dict)
    assert "response_body" not in call.payload


def test_quotas_metadata_is_in_nanodollars(start: Any, hooks: FakeHook) -> None:
    gw = start(
        {"guard": {"url": hooks.url("guard")}},
        [pre("guard", ["quotas"])],
        quotas={"daily:<user>": {"capacity": "$10.00", "rate": "$5.00/day"}},
        alice_caps=[{"quotas": [{"bucket": "daily:<user>"}]}],
    )
    openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    meta = hooks.calls_to("guard")[0].payload["metadata"]
    assert meta["quotas"] == {
        "daily:alice@example.com": {
            "current": 10_000_000_000,
            "capacity": 10_000_000_000,
            "rate": "$5.00/day",
        }
    }


def test_disabled_hook_does_not_fire(start: Any, hooks: FakeHook, fake_llm: FakeLLM) -> None:
    gw = start({"guard": {"url": hooks.url("guard"), "disabled": True}}, [pre("guard")])
    openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert hooks.calls == []


def test_hooks_apply_only_to_the_models_of_their_capability_and_fire_once(
    start: Any, hooks: FakeHook
) -> None:
    gw = start(
        {"guard": {"url": hooks.url("guard")}},
        [pre("guard", ["user_message"])],
        alice_caps=[
            {"models": "anthropic/**", "send_hooks": [pre("guard", ["request_body"])]},
            {"models": "openai/gpt-5*", "send_hooks": [pre("guard")]},
        ],
    )
    anthropic_client(gw).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    [call] = hooks.calls_to("guard")  # wired three times, merged into one call
    assert set(call.payload) == {"metadata", "request_body", "user_message"}
    hooks.calls.clear()
    gw2 = start(
        {"guard": {"url": hooks.url("guard")}},
        [],
        alice_caps=[{"models": "anthropic/**", "send_hooks": [pre("guard")]}],
    )
    openai_client(gw2).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert hooks.calls == [], "not wired for openai models"
