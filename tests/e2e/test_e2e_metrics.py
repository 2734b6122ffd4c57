"""What operators see of a running irisgate: `/metrics` (Prometheus text), `Server-Timing`
on relayed answers, `/healthz` and `/readyz`. A real irisgate process in front of the
FakeLLM; the exposition is read with prometheus-client's own parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import openai
import pytest
from conftest import ALICE_IP, BOB_IP, gateway_config, http_from, openai_client
from prometheus_client.parser import text_string_to_metric_families

from irisgate.testing import FakeHook, FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append({"read_metrics": True})
    config["providers"]["down"] = {  # nothing listens there
        "baseurl": f"http://127.0.0.1:{free_port()}",
        "models": ["down-model"],
    }
    assert localapi.socket_path
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("metrics"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )
    with server:
        yield server


def samples(gw: IrisgateServer) -> Samples:
    resp = http_from(ALICE_IP, gw.url).get("/metrics")
    assert resp.status_code == 200
    found: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_requests_tokens_cost_and_latency_are_counted(gw: IrisgateServer) -> None:
    before = samples(gw)
    client = openai_client(gw)
    answers = [
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}]
        )
        for _ in range(3)
    ]
    after = samples(gw)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"provider": "openai", "model": "gpt-4o-mini", "api_format": "openai_chat"}
    assert grew("irisgate_requests_total", **ok, status="200") == 3
    input_tokens = sum(a.usage.prompt_tokens for a in answers if a.usage)
    output_tokens = sum(a.usage.completion_tokens for a in answers if a.usage)
    tokens = {"provider": "openai", "model": "gpt-4o-mini"}
    assert grew("irisgate_tokens_total", **tokens, type="input") == input_tokens
    assert grew("irisgate_tokens_total", **tokens, type="output") == output_tokens
    assert grew("irisgate_cost_dollars_total", **tokens) > 0
    timing = {"provider": "openai", "api_format": "openai_chat"}
    assert grew("irisgate_request_duration_seconds_count", **timing) == 3
    assert grew("irisgate_time_to_first_byte_seconds_count", **timing) == 3
    assert grew("irisgate_gateway_overhead_seconds_count") == 3
    assert value(after, "irisgate_config_version") >= 1
    assert ("irisgate_capture_queue_depth", frozenset()) in after
    assert ("irisgate_capture_dropped_total", frozenset()) in after


def test_label_sets_stay_bounded(gw: IrisgateServer) -> None:
    client = openai_client(gw)
    for n in range(3):  # models nobody serves: refused, and not one new label value each
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model=f"made-up-model-{n}", messages=[{"role": "user", "content": "x"}]
            )
    text = http_from(ALICE_IP, gw.url).get("/metrics").text
    assert "made-up-model" not in text
    assert "req_" not in text  # no request ids
    assert "alice@example.com" not in text  # no login names
    found = samples(gw)
    unrouted = [
        labels
        for (name, labels) in found
        if name == "irisgate_requests_total" and dict(labels)["provider"] == ""
    ]
    assert unrouted and all(dict(labels)["model"] == "" for labels in unrouted)


def test_upstream_errors_are_counted_by_kind(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    before = samples(gw)
    client = openai_client(gw)
    with pytest.raises(openai.APIStatusError) as down:
        client.chat.completions.create(
            model="down-model", messages=[{"role": "user", "content": "x"}]
        )
    assert down.value.status_code == 502
    fake_llm.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    after = samples(gw)

    def grew(provider: str, kind: str) -> float:
        labels = {"provider": provider, "kind": kind}
        return value(after, "irisgate_upstream_errors_total", **labels) - value(
            before, "irisgate_upstream_errors_total", **labels
        )

    assert grew("down", "unreachable") == 1
    assert grew("openai", "http_5xx") == 1


def test_quota_and_hook_metrics_are_not_faked(gw: IrisgateServer) -> None:
    text = http_from(ALICE_IP, gw.url).get("/metrics").text
    assert "# HELP irisgate_quota_rejections_total" in text  # declared ...
    assert not re.search(r"^irisgate_quota_rejections_total\{", text, re.MULTILINE)  # ... empty
    assert not re.search(r"^irisgate_hook_calls_total\{", text, re.MULTILINE)


def test_quota_and_hook_activity_is_counted(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A shared bucket that runs dry and two pre-request hooks, one of them down."""
    config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])
    caps = config["grants"][0]["app"]["tailscale.com/cap/aperture"]
    caps.append({"read_metrics": True})
    caps.append({"models": "openai/*", "quotas": [{"bucket": "team"}]})
    caps.append(
        {
            "send_hooks": [
                {"name": name, "events": ["pre_request"], "send": ["request_body"]}
                for name in ("allow", "down")
            ]
        }
    )
    config["quotas"] = {"team": {"capacity": "$0.000001", "rate": "$0/day"}}
    with FakeHook() as hooks:
        config["hooks"] = {
            "allow": {"url": hooks.url("allow"), "timeout": "5s"},
            "down": {"url": f"http://127.0.0.1:{free_port()}/down", "timeout": "5s"},
        }
        server = IrisgateServer(
            json.dumps(config),
            data_dir=tmp_path_factory.mktemp("metrics-quota"),
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
        )
        with server:
            client = openai_client(server)
            refused = 0
            for _ in range(5):
                try:
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                    )
                except openai.RateLimitError:
                    refused += 1
            assert refused >= 1
            found = samples(server)
    assert value(found, "irisgate_quota_rejections_total", bucket="team") == refused
    assert value(found, "irisgate_quota_balance_dollars", bucket="team") <= 0.000001
    assert value(found, "irisgate_hook_calls_total", hook="allow", event="pre_request") >= 1
    failures = value(
        found,
        "irisgate_hook_failures_total",
        hook="down",
        event="pre_request",
        reason="unreachable",
    )
    assert failures == value(found, "irisgate_hook_calls_total", hook="down", event="pre_request")
    assert failures >= 1
    # bounded labels: per-user buckets never appear, only the shared one
    assert all(
        dict(labels).get("bucket") in (None, "team") for _name, labels in found
    )


def test_metrics_refused_without_read_metrics(gw: IrisgateServer) -> None:
    resp = http_from(BOB_IP, gw.url).get("/metrics")
    assert resp.status_code == 403
    assert resp.json() == {"error": "access denied: read_metrics not granted"}


SERVER_TIMING = re.compile(r"gateway;dur=(\d+\.\d\d), upstream;dur=(\d+\.\d\d)")


@pytest.mark.parametrize("stream", [False, True])
def test_relayed_answers_carry_server_timing(
    gw: IrisgateServer, fake_llm: FakeLLM, stream: bool
) -> None:
    client = http_from(ALICE_IP, gw.url)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "t"}]}
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": stream}) as resp:
        assert resp.status_code == 200
        match = SERVER_TIMING.fullmatch(resp.headers["server-timing"])
        resp.read()
    assert match, resp.headers["server-timing"]
    gateway_ms, upstream_ms = float(match.group(1)), float(match.group(2))
    assert 0 <= gateway_ms < 10_000
    assert 0 < upstream_ms < 10_000


def test_health_and_readiness(gw: IrisgateServer) -> None:
    client = http_from(BOB_IP, gw.url)
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["config"].startswith("version ")
    assert body["checks"]["capture_queue"].startswith("ok: ")
