"""The hook runner against a real local hook server: what a pre-request chain decides, in
which order hooks run, what each one receives, and how a hook that cannot be used is handled.

In process (no irisgate server): the runner, irisgate's own HTTP/1.1 client and
`irisgate.testing.fake_hook.FakeHook` speaking the hook protocol over TCP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from irisgate.config.model import Capability, Config, Hook, HookRef, Secret
from irisgate.gateway.errors import GatewayError
from irisgate.gateway.http1 import Http1Client
from irisgate.gateway.relaycore import RelayResult
from irisgate.gateway.tee import Tee
from irisgate.grants import Access
from irisgate.hooks import runner as runner_module
from irisgate.hooks.plan import HookCall, HookPlan, Wired, plan_for
from irisgate.hooks.runner import HookRunner
from irisgate.identity import Identity
from irisgate.telemetry.metrics import Metrics
from irisgate.telemetry.record import RequestRecord
from irisgate.testing.fake_hook import FakeHook

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
KEY = "hook-key-1"


@pytest.fixture
def hooks() -> Iterator[FakeHook]:
    with FakeHook() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[Http1Client]:
    client = Http1Client(connect_timeout=5.0, read_timeout=30.0)
    yield client
    await client.close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port bound but not listening (held for the test): connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/down"


def hook(name: str, url: str, **kwargs: Any) -> Hook:
    return Hook(name=name, url=url, apikey=Secret(KEY, KEY), **kwargs)


def wired(h: Hook, *events: str, send: tuple[str, ...] = ("request_body",)) -> Wired:
    return Wired(h, frozenset(events or ("pre_request",)), frozenset(send))


def pre_plan(*hooks_: Hook, send: tuple[str, ...] = ("request_body",)) -> HookPlan:
    return HookPlan(tuple(wired(h, send=send) for h in hooks_), ())


def call(*, tool_calls: int = 0, stream: bool = False) -> HookCall:
    identity = Identity("alice@example.com", tailnet="example.com", node_id="n1")
    access = Access("user", (), opaque={"example.com/cap/team": ({"team": "red"},)})
    record = RequestRecord(
        request_id="req_1",
        started_at=datetime.now(UTC),
        login_name=identity.login_name,
        model="gpt-4o",
        provider="openai",
        user_agent="test-agent",
    )
    record.session_id = "s1"
    record.tool_calls = tool_calls
    record.stream = stream
    quotas = {"team": {"current": 5, "capacity": 10, "rate": "$1/day"}}
    return HookCall(identity, access, record, "http://gw/v1/chat/completions", quotas, 2_500_000)


def make_runner(http: Http1Client, max_answer: int = 1 << 20) -> HookRunner:
    runner = HookRunner(lambda: http, max_answer)
    runner.metrics = Metrics()
    return runner


async def until(predicate: Callable[[], bool]) -> bool:
    """Let the loop run (the runner's workers deliver) until `predicate` holds; its last
    value after 30 s at most."""
    for _ in range(3000):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def counted(runner: HookRunner, metric: str, **labels: str) -> float:
    assert runner.metrics is not None
    value = runner.metrics.registry.get_sample_value(metric, labels)
    return value or 0.0


async def test_allow_passes_the_body_on_unchanged(hooks: FakeHook, http: Http1Client) -> None:
    runner = make_runner(http)
    body, modified = await runner.before(pre_plan(hook("ok", hooks.url("ok"))), call(), BODY)
    assert (body, modified) == (BODY, False)
    assert len(hooks.calls_to("ok")) == 1
    assert counted(runner, "irisgate_hook_calls_total", hook="ok", event="pre_request") == 1


async def test_a_hook_receives_metadata_and_what_it_asked_for(
    hooks: FakeHook, http: Http1Client
) -> None:
    send = ("request_body", "user_message", "estimated_cost", "quotas", "grants")
    await make_runner(http).before(pre_plan(hook("see", hooks.url("see")), send=send), call(), BODY)
    (received,) = hooks.calls_to("see")
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["content-type"] == "application/json"
    payload = received.payload
    assert payload["request_body"] == BODY
    assert payload["user_message"] == "hello there"
    meta = payload["metadata"]
    assert meta["login_name"] == "alice@example.com"
    assert meta["url"] == "http://gw/v1/chat/completions"
    assert (meta["model"], meta["provider"]) == ("gpt-4o", "openai")
    assert (meta["request_id"], meta["session_id"]) == ("req_1", "s1")
    assert (meta["tailnet_name"], meta["stable_node_id"]) == ("example.com", "n1")
    assert meta["user_agent"] == "test-agent"
    assert meta["estimated_cost"]["dollars"] == 0.0025
    assert meta["quotas"] == {"team": {"current": 5, "capacity": 10, "rate": "$1/day"}}
    assert meta["grants"] == {"example.com/cap/team": [{"team": "red"}]}


async def test_a_hook_receives_only_what_it_asked_for(hooks: FakeHook, http: Http1Client) -> None:
    await make_runner(http).before(pre_plan(hook("less", hooks.url("less")), send=()), call(), BODY)
    (received,) = hooks.calls_to("less")
    assert set(received.payload) == {"metadata"}
    assert not {"estimated_cost", "quotas", "grants"} & set(received.payload["metadata"])


@pytest.mark.parametrize(
    ("authorization", "header"),
    [("x-api-key", "x-api-key"), ("x-goog-api-key", "x-goog-api-key")],
)
async def test_the_key_goes_in_the_header_the_hook_names(
    hooks: FakeHook, http: Http1Client, authorization: str, header: str
) -> None:
    h = hook("k", hooks.url("k"), authorization=authorization)
    await make_runner(http).before(pre_plan(h), call(), BODY)
    (received,) = hooks.calls_to("k")
    assert received.headers[header] == KEY
    assert "authorization" not in received.headers


async def test_a_hook_without_a_key_gets_no_auth_header(hooks: FakeHook, http: Http1Client) -> None:
    h = Hook(name="anon", url=hooks.url("anon"), apikey=Secret("", ""))
    await make_runner(http).before(pre_plan(h), call(), BODY)
    (received,) = hooks.calls_to("anon")
    assert "authorization" not in received.headers


async def test_block_stops_the_chain_with_the_hooks_status_and_message(
    hooks: FakeHook, http: Http1Client
) -> None:
    hooks.answer("deny", {"action": "block", "status_code": 451, "message": "not that"})
    plan = pre_plan(hook("deny", hooks.url("deny")), hook("later", hooks.url("later")))
    with pytest.raises(GatewayError) as caught:
        await make_runner(http).before(plan, call(), BODY)
    assert (caught.value.status, caught.value.message) == (451, "not that")
    assert hooks.calls_to("later") == []


@pytest.mark.parametrize("status", [None, 200, 600, True, "451"])
async def test_block_without_a_usable_status_or_message_is_a_403_naming_the_hook(
    hooks: FakeHook, http: Http1Client, status: object
) -> None:
    hooks.answer("deny", {"action": "block", "status_code": status, "message": ""})
    with pytest.raises(GatewayError) as caught:
        await make_runner(http).before(pre_plan(hook("deny", hooks.url("deny"))), call(), BODY)
    assert caught.value.status == 403
    assert caught.value.message == "request blocked by guardrail deny"


async def test_modify_replaces_the_body_for_the_next_hook_and_the_upstream(
    hooks: FakeHook, http: Http1Client
) -> None:
    scrubbed = {"model": "gpt-4o", "messages": [{"role": "user", "content": "[redacted]"}]}
    hooks.answer("scrub", {"action": "modify", "request_body": scrubbed})
    plan = pre_plan(hook("scrub", hooks.url("scrub")), hook("after", hooks.url("after")))
    body, modified = await make_runner(http).before(plan, call(), BODY)
    assert (body, modified) == (scrubbed, True)
    assert hooks.calls_to("after")[0].payload["request_body"] == scrubbed


async def test_hooks_run_by_preference_then_name_and_merge_their_grants(
    hooks: FakeHook, http: Http1Client
) -> None:
    config = Config(
        {},
        (),
        hooks={
            "b": hook("b", hooks.url("b")),
            "a": hook("a", hooks.url("a")),
            "first": hook("first", hooks.url("first"), preference=5),
            "off": hook("off", hooks.url("off"), disabled=True),
            "post": hook("post", hooks.url("post")),
        },
    )
    access = Access(
        "user",
        (
            Capability(send_hooks=(HookRef("b", ("pre_request",), ("user_message",)),)),
            Capability(
                models=("openai/*",),
                send_hooks=(
                    HookRef("b", ("pre_request",), ("request_body",)),
                    HookRef("a", ("pre_request",), ()),
                    HookRef("first", ("pre_request",), ()),
                    HookRef("off", ("pre_request",), ()),
                    HookRef("missing", ("pre_request",), ()),
                    HookRef("post", ("entire_request",), ()),
                ),
            ),
            Capability(models=("other/*",), send_hooks=(HookRef("a", ("entire_request",), ()),)),
        ),
    )
    plan = plan_for(config, access, "openai/gpt-4o")
    assert plan is not None
    assert [w.hook.name for w in plan.pre] == ["first", "a", "b"]
    assert [w.hook.name for w in plan.post] == ["post"]
    assert plan.pre[2].send == {"user_message", "request_body"}
    await make_runner(http).before(plan, call(), BODY)
    assert [c.name for c in hooks.calls] == ["first", "a", "b"]
    assert set(hooks.calls_to("b")[0].payload) == {"metadata", "request_body", "user_message"}
    assert plan_for(config, access, "anthropic/claude") is not None  # the unscoped "b"
    assert plan_for(config, Access("user", ()), "openai/gpt-4o") is None
    only_off = Access("user", (Capability(send_hooks=(HookRef("off", ("pre_request",), ()),)),))
    assert plan_for(config, only_off, "openai/gpt-4o") is None
    never = Access("user", (Capability(send_hooks=(HookRef("a", ("sometime",), ()),)),))
    assert plan_for(config, never, "openai/gpt-4o") is None


class _Snapshot:
    def __init__(self, config: Config) -> None:
        self.config = config


async def test_the_runner_plans_nothing_without_hooks_in_the_config(http: Http1Client) -> None:
    runner = make_runner(http)
    access = Access("user", (Capability(send_hooks=(HookRef("a", ("pre_request",), ()),)),))
    assert runner.plan(_Snapshot(Config({}, ())), access, "openai/gpt-4o") is None  # type: ignore[arg-type]
    config = Config({}, (), hooks={"a": hook("a", "http://127.0.0.1:9/a")})
    planned = runner.plan(_Snapshot(config), access, "openai/gpt-4o")  # type: ignore[arg-type]
    assert planned is not None and [w.hook.name for w in planned.pre] == ["a"]


# A hook that cannot be used: every way, under both policies.


def _failing(hooks: FakeHook, refused_url: str, gate: threading.Event, how: str) -> Hook:
    """A hook that fails `how`; its timeout is short only where the failure is a timeout."""
    if how == "timeout":
        hooks.gate["slow"] = gate
        return hook("slow", hooks.url("slow"), timeout_seconds=0.2)
    if how == "down":
        return hook("down", refused_url)
    if how == "http_500":
        hooks.answer("err", status=500)
        return hook("err", hooks.url("err"))
    if how == "oversized":
        hooks.answer("big", {"action": "allow", "padding": "x" * 500})
        return hook("big", hooks.url("big"))
    answers = {
        "bad_json": b"{not json",
        "not_an_object": b'["allow"]',
        "unknown_action": b'{"action": "maybe"}',
        "modify_without_body": b'{"action": "modify", "request_body": "text"}',
        "empty": b"",
    }
    hooks.answer_bytes(how, answers[how])
    return hook(how, hooks.url(how))


FAILURES = {
    "timeout": ("did not answer within 0.2s", "timeout"),
    "down": ("is unreachable", "unreachable"),
    "http_500": ("answered HTTP 500", "http_status"),
    "oversized": ("answered more than 256 bytes (the limit set by --max-hook-answer)", ""),
    "bad_json": ("answered with invalid JSON", ""),
    "not_an_object": ("answered something other than a JSON object", ""),
    "unknown_action": ("answered unknown action 'maybe'", ""),
    "modify_without_body": ("answered modify without a request_body object", ""),
    "empty": ("answered something other than a JSON object", ""),
}


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let a held answer go, so the fake hook stops at once


@pytest.mark.parametrize("how", list(FAILURES))
async def test_a_failing_hook_under_fail_closed_refuses_with_503(
    hooks: FakeHook, http: Http1Client, refused_url: str, gate: threading.Event, how: str
) -> None:
    failing = _failing(hooks, refused_url, gate, how)
    closed = Hook(**{**_fields(failing), "fail_policy": "fail_closed"})
    runner = make_runner(http, max_answer=256)
    with pytest.raises(GatewayError) as caught:
        await runner.before(pre_plan(closed), call(), BODY)
    text, reason = FAILURES[how]
    assert caught.value.status == 503
    assert caught.value.message.startswith(f"guardrail {closed.name} is unavailable: ")
    assert text in caught.value.message
    labels = {"hook": closed.name, "event": "pre_request", "reason": reason or "invalid_answer"}
    assert counted(runner, "irisgate_hook_failures_total", **labels) == 1


@pytest.mark.parametrize("how", list(FAILURES))
async def test_a_failing_hook_under_fail_open_is_skipped(
    hooks: FakeHook, http: Http1Client, refused_url: str, gate: threading.Event, how: str
) -> None:
    failing = _failing(hooks, refused_url, gate, how)
    hooks.answer("next", {"action": "modify", "request_body": {"model": "m", "n": 1}})
    plan = pre_plan(failing, hook("next", hooks.url("next"), preference=-1))
    body, modified = await make_runner(http, max_answer=256).before(plan, call(), BODY)
    assert (body, modified) == ({"model": "m", "n": 1}, True)
    assert hooks.calls_to("next")[0].payload["request_body"] == BODY


def _fields(h: Hook) -> dict[str, Any]:
    return {name: getattr(h, name) for name in Hook.__dataclass_fields__}


# Post-response events: queued, delivered by the workers, never in the client's way.


def _relayed(status: int, raw: bytes = b"") -> RelayResult:
    result = RelayResult(Tee(1 << 20), status=status)
    result.tee.add(raw)
    return result


async def test_post_response_events_go_out_with_the_answer(
    hooks: FakeHook, http: Http1Client
) -> None:
    runner = make_runner(http)
    runner.start()
    try:
        everything = ("request_body", "response_body", "raw_responses", "tools")
        plan = HookPlan(
            (),
            (
                wired(hook("audit", hooks.url("audit")), "entire_request", send=everything),
                wired(hook("tools", hooks.url("tools")), "tool_call_entire_request"),
            ),
        )
        c = call(stream=True)
        c.record.request_body = b'{"model": "gpt-4o"}'
        c.record.response_body = b'{"choices": []}'
        sse = b'data: {"n": 1}\n\ndata: [DONE]\n\n'
        runner.after(plan, c, _relayed(200, sse))
        assert await until(lambda: len(hooks.calls_to("audit")) == 1)
        payload = hooks.calls_to("audit")[0].payload
        assert payload["request_body"] == {"model": "gpt-4o"}
        assert payload["response_body"] == {"choices": []}
        assert payload["raw_responses"] == [{"n": 1}]
        assert payload["tool_calls"] == []
        # no tool calls: the tool-call hook is not told; with one it is
        runner.after(plan, call(tool_calls=1), _relayed(200))
        assert await until(lambda: len(hooks.calls_to("tools")) == 1)
        assert len(hooks.calls_to("audit")) == 2
    finally:
        await runner.stop()
    assert counted(runner, "irisgate_hook_calls_total", hook="audit", event="post_response") == 2


async def test_no_event_for_a_request_the_upstream_never_answered(
    hooks: FakeHook, http: Http1Client
) -> None:
    runner = make_runner(http)
    plan = HookPlan((), (wired(hook("audit", hooks.url("audit")), "entire_request"),))
    runner.after(plan, call(), _relayed(0))
    runner.start()
    await runner.stop()
    assert hooks.calls_to("audit") == []


async def test_a_failed_event_is_counted_and_the_worker_goes_on(
    hooks: FakeHook, http: Http1Client, refused_url: str
) -> None:
    runner = make_runner(http)
    runner.start()
    try:
        plan = HookPlan(
            (),
            (
                wired(hook("down", refused_url), "entire_request"),
                wired(hook("audit", hooks.url("audit")), "entire_request"),
            ),
        )
        for _ in range(runner_module.WORKERS + 1):
            runner.after(plan, call(), _relayed(200))
        assert await until(lambda: len(hooks.calls_to("audit")) == runner_module.WORKERS + 1)
    finally:
        await runner.stop()
    labels = {"hook": "down", "event": "post_response", "reason": "unreachable"}
    assert counted(runner, "irisgate_hook_failures_total", **labels) == runner_module.WORKERS + 1


async def test_a_full_outbox_drops_events_and_stop_reports_the_undelivered(
    hooks: FakeHook, http: Http1Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "QUEUE_SIZE", 2)
    monkeypatch.setattr(runner_module, "DRAIN_SECONDS", 0.0)
    runner = make_runner(http)  # not started: nothing takes events out
    plan = HookPlan((), (wired(hook("audit", hooks.url("audit")), "entire_request"),))
    for _ in range(5):
        runner.after(plan, call(), _relayed(200))
    assert runner.dropped == 3
    await runner.stop()  # no workers: the two queued events are left, and logged
    assert hooks.calls_to("audit") == []
