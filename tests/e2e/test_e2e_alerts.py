"""Alerts through a real irisgate: budget thresholds crossed by real SDK requests, raised
once per crossing, delivered to webhooks (generic JSON and Slack `text`) and by e-mail over
SMTP with STARTTLS and AUTH, retried with back-off, failures shown to admins, and each
user's own notification list with unread counts.

irisgate's app runs in the test's process (`InProcessIrisgate`, a tailnet user per loopback
address); the webhook receiver and the SMTP server are real servers on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import (
    ALICE_IP,
    BOB_IP,
    _socket_of,
    anthropic_client,
    client_from,
    gateway_config,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.fake_server import wait_until
from irisgate.testing.fake_smtp import FakeSmtp
from irisgate.testing.fake_webhook import FakeWebhook
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.tls import self_signed

BOB = "bob@example.com"
DAILY = {"daily:<user>": {"capacity": "$0.0005", "rate": "$0/day"}}  # a few requests
FAST_RETRY = {"first": "50ms", "max": "200ms", "attempts": 3}


def alert_config(upstream: str, alerts: dict[str, Any], quotas: dict[str, Any] = DAILY) -> str:
    """The standard test config with `quotas` charged to Bob (anthropic + local models) and
    Alice, and the `alerts` section."""
    config = json.loads(gateway_config(upstream, quotas=quotas).split("\n", 1)[1])
    bucket = next(iter(quotas))
    for grant in config["grants"][:2]:
        grant["app"]["tailscale.com/cap/aperture"].append({"quotas": [{"bucket": bucket}]})
    config["alerts"] = alerts
    return json.dumps(config, indent=2)


@pytest.fixture
def start(fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path) -> Iterator[Any]:
    gateways: list[InProcessIrisgate] = []

    def run(config: str, **options: Any) -> InProcessIrisgate:
        gw = InProcessIrisgate(
            config,
            data_dir=tmp_path / f"gw{len(gateways)}",
            identity="tailscale",
            tailscaled_socket=_socket_of(localapi),
            **options,
        )
        gateways.append(gw.start())
        return gw

    yield run
    for gw in gateways:
        gw.stop()


@pytest.fixture
def webhook() -> Iterator[FakeWebhook]:
    with FakeWebhook() as hook:
        yield hook


def spend_until_refused(gw: InProcessIrisgate, ip: str) -> int:
    """Ask Claude (Anthropic's SDK) until the budget refuses (429); how many requests went
    through."""
    for count in range(100):
        try:
            ask(gw, ip)
        except anthropic.RateLimitError:
            return count
    raise AssertionError("no 429 after 100 requests")


def ask(gw: InProcessIrisgate, ip: str) -> None:
    anthropic_client(gw, ip).messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )


def alerts_of(gw: InProcessIrisgate, ip: str, query: str = "") -> dict[str, Any]:
    answer = client_from(ip, gw).get(f"/api/alerts{query}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_budget_thresholds_alert_once_to_webhooks_and_to_the_user(
    start: Any, fake_llm: FakeLLM, webhook: FakeWebhook
) -> None:
    gw = start(
        alert_config(
            fake_llm.base_url,
            {
                "budgets": {"daily:<user>": [50, 100]},
                "channels": {
                    "ops": {"type": "webhook", "url": webhook.url("ops")},
                    "chat": {
                        "type": "slack",
                        "url": webhook.url("slack"),
                        "min_severity": "critical",
                    },
                },
                "retry": FAST_RETRY,
            },
        )
    )
    passed = spend_until_refused(gw, BOB_IP)
    assert passed >= 2
    assert webhook.wait_for(lambda: len(webhook.received("ops")) == 2)
    assert webhook.wait_for(lambda: len(webhook.received("slack")) == 1)
    posted = sorted(webhook.received("ops"), key=lambda p: int(p["alert"]["threshold"]))
    assert [(p["alert"]["threshold"], p["alert"]["severity"]) for p in posted] == [
        ("50", "info"),
        ("100", "critical"),
    ]
    assert {p["alert"]["subject"] for p in posted} == {f"daily:{BOB}"}
    assert {p["alert"]["user"] for p in posted} == {BOB}
    assert posted[1]["alert"]["kind"] == "budget"
    assert "refused until it refills" in posted[1]["alert"]["message"]
    slack = webhook.received("slack")[0]
    assert set(slack) == {"text"}
    assert slack["text"].startswith(f"[irisgate critical] bucket daily:{BOB} reached 100 %")

    # refused again: the bucket is still past both thresholds, so nothing new is raised
    with pytest.raises(anthropic.RateLimitError):
        ask(gw, BOB_IP)
    bob = alerts_of(gw, BOB_IP)
    assert [(a["kind"], a["threshold"], a["read"]) for a in bob["alerts"]] == [
        ("budget", "100", False),
        ("budget", "50", False),
    ]
    assert bob["unread"] == 2
    assert "deliveries" not in bob["alerts"][0] and "failed_deliveries" not in bob

    # Alice (admin) sees Bob's alerts with their deliveries; they are unread for her too
    alice = alerts_of(gw, ALICE_IP)
    assert alice["unread"] == 2
    top = alice["alerts"][0]
    assert top["user"] == BOB
    assert sorted((d["channel"], d["state"]) for d in top["deliveries"]) == [
        ("chat", "delivered"),
        ("ops", "delivered"),
    ]
    assert [d["channel"] for d in alice["alerts"][1]["deliveries"]] == ["ops"]  # info: no slack

    # Bob marks one read, then all; Alice's read state is her own
    one = client_from(BOB_IP, gw).post("/api/alerts/read", json={"ids": [top["id"]]})
    assert one.json() == {"marked": 1, "unread": 1}
    rest = client_from(BOB_IP, gw).post("/api/alerts/read", json={"all": True})
    assert rest.json() == {"marked": 1, "unread": 0}
    assert client_from(BOB_IP, gw).get("/api/alerts/unread").json() == {"unread": 0}
    assert client_from(ALICE_IP, gw).get("/api/alerts/unread").json() == {"unread": 2}
    assert webhook.attempts("ops") == 2  # raised once each, delivered once each


def test_a_user_sees_only_their_own_alerts_and_cannot_mark_others(
    start: Any, fake_llm: FakeLLM
) -> None:
    gw = start(alert_config(fake_llm.base_url, {"budgets": {"daily:<user>": [100]}}))
    spend_until_refused(gw, ALICE_IP)
    assert wait_until(lambda: alerts_of(gw, ALICE_IP, "?all=0")["unread"] == 1)
    alice_alert = alerts_of(gw, ALICE_IP)["alerts"][0]
    assert alice_alert["user"] == "alice@example.com"
    assert alice_alert["deliveries"] == []  # no channel: the dashboard only
    assert alerts_of(gw, BOB_IP) == {"alerts": [], "unread": 0, "next_before": None}
    marked = client_from(BOB_IP, gw).post("/api/alerts/read", json={"ids": [alice_alert["id"]]})
    assert marked.json() == {"marked": 0, "unread": 0}
    assert alerts_of(gw, ALICE_IP)["unread"] == 1
    for bad in ({"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"ids": list(range(1, 502))}):
        refused = client_from(BOB_IP, gw).post("/api/alerts/read", json=bad)
        assert refused.status_code == 400, bad
        assert "'ids' must be a list of 1 to 500 alert ids" in refused.json()["error"]
    for bad in ({}, {"ids": [1], "all": True}, {"everything": True}):
        refused = client_from(BOB_IP, gw).post("/api/alerts/read", json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"].startswith('body must be {"ids": [1, 2]} or')
    refused = client_from(BOB_IP, gw).post("/api/alerts/read", json={"all": False})
    assert refused.json() == {"error": "'all' must be true (or send 'ids')"}


def test_a_failing_webhook_is_retried_with_back_off_then_delivered(
    start: Any, fake_llm: FakeLLM, webhook: FakeWebhook
) -> None:
    webhook.fail_next(2, status=503)
    gw = start(
        alert_config(
            fake_llm.base_url,
            {
                "budgets": {"daily:<user>": [100]},
                "channels": {"ops": {"type": "webhook", "url": webhook.url("ops")}},
                "retry": {"first": "50ms", "max": "1s", "attempts": 5},
            },
        )
    )
    spend_until_refused(gw, BOB_IP)
    assert webhook.wait_for(lambda: len(webhook.received("ops")) == 1)
    assert webhook.attempts("ops") == 3
    delivery = alerts_of(gw, ALICE_IP)["alerts"][0]["deliveries"][0]
    assert delivery["state"] == "delivered"
    assert delivery["attempts"] == 3
    assert delivery["last_error"] == "the webhook answered 503: failing on purpose (503)"
    assert alerts_of(gw, ALICE_IP)["failed_deliveries"] == []


def test_a_delivery_that_keeps_failing_is_given_up_and_shown_to_admins_only(
    start: Any, fake_llm: FakeLLM, webhook: FakeWebhook
) -> None:
    webhook.fail_next(100, status=500)
    secret_path = "T000/B000/s3cr3t-token"
    gw = start(
        alert_config(
            fake_llm.base_url,
            {
                "budgets": {"daily:<user>": [100]},
                "channels": {
                    "ops": {"type": "slack", "url": webhook.url(secret_path.replace("/", "-"))}
                },
                "retry": FAST_RETRY,
            },
        )
    )
    spend_until_refused(gw, BOB_IP)

    def given_up() -> list[dict[str, Any]]:
        failed = alerts_of(gw, ALICE_IP)["failed_deliveries"]
        return [d for d in failed if d["state"] == "failed"]

    assert wait_until(lambda: len(given_up()) == 1)
    failed = given_up()[0]
    assert failed["channel"] == "ops"
    assert failed["attempts"] == 3
    assert failed["kind"] == "budget" and failed["subject"] == f"daily:{BOB}"
    assert failed["last_error"] == "the webhook answered 500: failing on purpose (500)"
    assert webhook.attempts(secret_path.replace("/", "-")) == 3
    listing = client_from(ALICE_IP, gw).get("/api/alerts").text
    assert "s3cr3t" not in listing  # the URL (its token) is never shown
    assert "s3cr3t" not in client_from(ALICE_IP, gw).get("/api/config").text
    assert "failed_deliveries" not in alerts_of(gw, BOB_IP)


def test_alerts_are_mailed_over_smtp_with_starttls_and_auth(
    start: Any, fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_path))  # trust the test's CA
    with FakeSmtp(certificate, username="irisgate", password="mail-pass") as smtp:
        gw = start(
            alert_config(
                fake_llm.base_url,
                {
                    "budgets": {"daily:<user>": [100]},
                    "channels": {
                        "finance": {
                            "type": "email",
                            "to": ["finance@example.com", "ops@example.com"],
                            "kinds": ["budget"],
                        },
                        "providers-only": {
                            "type": "email",
                            "to": ["noc@example.com"],
                            "kinds": ["provider"],
                        },
                    },
                    "smtp": {
                        "host": "127.0.0.1",
                        "port": smtp.port,
                        "security": "starttls",
                        "username": "irisgate",
                        "password": "env:ALERT_SMTP_PASSWORD",
                        "from": "irisgate@example.com",
                    },
                    "retry": FAST_RETRY,
                },
            ),
            env={"ALERT_SMTP_PASSWORD": "mail-pass"},
        )
        spend_until_refused(gw, BOB_IP)
        assert smtp.wait_for(lambda: len(smtp.messages) == 1)
        received = smtp.messages[0]
        assert received.tls and received.login == "irisgate"
        assert received.mail_from == "irisgate@example.com"
        assert received.rcpt_tos == ("finance@example.com", "ops@example.com")
        message = received.message
        assert message["Subject"].startswith(f"[irisgate critical] bucket daily:{BOB} reached")
        body = message.get_payload()
        assert isinstance(body, str)
        assert "user: bob@example.com" in body and "kind: budget" in body
        delivery = alerts_of(gw, ALICE_IP)["alerts"][0]["deliveries"]
        assert [(d["channel"], d["state"]) for d in delivery] == [("finance", "delivered")]
        assert smtp.refused_logins == 0


def test_a_wrong_smtp_password_is_a_failed_delivery_naming_the_refusal(
    start: Any, fake_llm: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_path))
    with FakeSmtp(certificate, username="irisgate", password="right") as smtp:
        gw = start(
            alert_config(
                fake_llm.base_url,
                {
                    "budgets": {"daily:<user>": [100]},
                    "channels": {"mail": {"type": "email", "to": ["ops@example.com"]}},
                    "smtp": {
                        "host": "127.0.0.1",
                        "port": smtp.port,
                        "username": "irisgate",
                        "password": "wrong-password",
                        "from": "irisgate@example.com",
                    },
                    "retry": FAST_RETRY,
                },
            )
        )
        spend_until_refused(gw, BOB_IP)

        def failed() -> list[dict[str, Any]]:
            return [
                d for d in alerts_of(gw, ALICE_IP)["failed_deliveries"] if d["state"] == "failed"
            ]

        assert wait_until(lambda: len(failed()) == 1)
        assert failed()[0]["last_error"] == "the SMTP server refused the login: 535"
        assert failed()[0]["attempts"] == 3
        assert smtp.messages == [] and smtp.refused_logins >= 3
        assert "wrong-password" not in client_from(ALICE_IP, gw).get("/api/alerts").text


def test_a_refilled_bucket_re_arms_its_alert_for_the_next_crossing(
    start: Any, fake_llm: FakeLLM, webhook: FakeWebhook
) -> None:
    gw = start(
        alert_config(
            fake_llm.base_url,
            {
                "budgets": {"daily:<user>": [100]},
                "channels": {"ops": {"type": "webhook", "url": webhook.url("ops")}},
            },
        )
    )
    spend_until_refused(gw, BOB_IP)
    assert webhook.wait_for(lambda: len(webhook.received("ops")) == 1)
    refill = client_from(ALICE_IP, gw).post(
        "/api/quotas/refill", json={"bucket": f"daily:{BOB}", "amount": "0.0005"}
    )
    assert refill.status_code == 200, refill.text
    assert spend_until_refused(gw, BOB_IP) >= 1  # the refill let requests through again
    assert webhook.wait_for(lambda: len(webhook.received("ops")) == 2)
    alerts = alerts_of(gw, BOB_IP)["alerts"]
    assert [(a["threshold"], a["episode"], a["cleared_at"] is None) for a in alerts] == [
        ("100", 2, True),
        ("100", 1, False),
    ]


def test_budget_headers_tell_the_caller_what_is_left_when_turned_on(
    start: Any, fake_llm: FakeLLM
) -> None:
    quotas = {
        "daily:<user>": {"capacity": "$0.0005", "rate": "$0/day"},
        "team": {"capacity": "$10", "rate": "$0/day"},
    }
    config = json.loads(alert_config(fake_llm.base_url, {}, quotas=quotas))
    config["grants"][1]["app"]["tailscale.com/cap/aperture"].append(
        {"quotas": [{"bucket": "team"}]}
    )
    gw = start(json.dumps(config), env={"IRISGATE_BUDGET_HEADERS": "true"})
    sdk = anthropic_client(gw, BOB_IP)
    first = sdk.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    # the tightest of Bob's two budgets, before this request is charged (its estimate held)
    assert first.headers["x-irisgate-budget-bucket"] == f"daily:{BOB}"
    left = Decimal(first.headers["x-irisgate-budget-remaining"])
    assert Decimal("0") < left < Decimal("0.0005")
    second = sdk.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert Decimal(second.headers["x-irisgate-budget-remaining"]) < left  # the first was charged


def test_budget_headers_are_off_by_default(start: Any, fake_llm: FakeLLM) -> None:
    gw = start(alert_config(fake_llm.base_url, {}))
    answer = anthropic_client(gw, BOB_IP).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert "x-irisgate-budget-remaining" not in answer.headers
    assert "x-irisgate-request-id" in answer.headers


def test_a_provider_out_of_rotation_and_a_failing_hook_alert_admins_only(
    start: Any, fake_llm: FakeLLM, webhook: FakeWebhook
) -> None:
    from irisgate.testing.fake_hook import FakeHook

    with FakeHook() as hooks:
        hooks.answer("guard", status=500)
        config = json.loads(
            alert_config(
                fake_llm.base_url,
                {
                    "upstream_errors": {"rate": 0.5, "min_attempts": 4},
                    "channels": {
                        "noc": {
                            "type": "webhook",
                            "url": webhook.url("noc"),
                            "kinds": ["provider", "hook"],
                        }
                    },
                },
            )
        )
        config["hooks"] = {"guard": {"url": hooks.url("guard"), "fail_policy": "fail_open"}}
        config["grants"][1]["app"]["tailscale.com/cap/aperture"].append(
            {"send_hooks": [{"name": "guard", "events": ["pre_request"]}]}
        )
        gw = start(json.dumps(config))
        ask(gw, BOB_IP)  # the hook fails open: the request goes through
        assert wait_until(lambda: raised(gw, "hook"))
        hooks.answer("guard")  # the hook answers again: its alert is cleared (re-armed)
        ask(gw, BOB_IP)
        assert wait_until(lambda: cleared(gw, "hook"))
        fake_llm.fail_next(500, count=5)
        for _ in range(5):  # five failures in a row open the provider's circuit
            with pytest.raises(anthropic.APIStatusError):
                ask(gw, BOB_IP)
        assert wait_until(lambda: raised(gw, "provider") and raised(gw, "upstream_errors"))
        by_kind = {a["kind"]: a for a in alerts_of(gw, ALICE_IP)["alerts"]}
        assert by_kind["provider"]["subject"] == "anthropic"
        assert by_kind["provider"]["severity"] == "critical"
        assert "out of rotation" in by_kind["provider"]["message"]
        assert by_kind["upstream_errors"]["subject"] == "anthropic"
        assert "hook guard failed (pre_request)" in by_kind["hook"]["message"]
        assert by_kind["hook"]["user"] is None
        assert alerts_of(gw, BOB_IP)["alerts"] == []  # the gateway's own alerts are admins'
        # the channel takes provider and hook alerts only
        assert webhook.wait_for(lambda: len(webhook.received("noc")) == 2)
        assert {p["alert"]["kind"] for p in webhook.received("noc")} == {"provider", "hook"}


def raised(gw: InProcessIrisgate, kind: str) -> bool:
    return any(a["kind"] == kind for a in alerts_of(gw, ALICE_IP)["alerts"])


def cleared(gw: InProcessIrisgate, kind: str) -> bool:
    return any(
        a["kind"] == kind and a["cleared_at"] is not None for a in alerts_of(gw, ALICE_IP)["alerts"]
    )


def test_marking_read_from_another_site_is_refused(start: Any, fake_llm: FakeLLM) -> None:
    gw = start(alert_config(fake_llm.base_url, {"budgets": {"daily:<user>": [100]}}))
    spend_until_refused(gw, BOB_IP)
    assert wait_until(lambda: alerts_of(gw, BOB_IP)["unread"] == 1)
    evil = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    refused = client_from(BOB_IP, gw).post("/api/alerts/read", json={"all": True}, headers=evil)
    assert refused.status_code == 403
    form = client_from(BOB_IP, gw).post(
        "/api/alerts/read", content=b'{"all": true}', headers={"content-type": "text/plain"}
    )
    assert form.status_code == 415  # a body a form could send is never read
    assert alerts_of(gw, BOB_IP)["unread"] == 1
