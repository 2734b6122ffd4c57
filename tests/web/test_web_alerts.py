"""The notification bell and the Notifications page through a real irisgate and Chromium:
Bob's budget runs out through real Anthropic SDK requests; he sees his two alerts with an
unread count in the bell and marks them read; Alice (admin) sees them too, with the webhook
delivery that failed. Page text goes in as text: a message is never markup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from conftest import ADMIN, USER, anthropic_as, api, context_as, screenshot
from playwright.sync_api import Browser, expect

from irisgate.testing import FakeLLM
from irisgate.testing.fake_server import wait_until
from irisgate.testing.fake_webhook import FakeWebhook
from irisgate.testing.server import IrisgateServer

BOB_DAILY = f"daily:{USER}"


def alerts_config(upstream: str, webhook: str) -> str:
    aperture = "tailscale.com/cap/aperture"
    config: dict[str, Any] = {
        "providers": {
            "anthropic": {
                "baseurl": upstream,
                "apikey": "sk-ant-upstream-secret",
                "authorization": "x-api-key",
                "models": ["claude-haiku-4-5"],
                "compatibility": {"anthropic_messages": True},
            },
        },
        "quotas": {"daily:<user>": {"capacity": "$0.0005", "rate": "$0/day"}},
        "grants": [
            {"src": [ADMIN], "app": {aperture: [{"role": "admin"}, {"models": "**"}]}},
            {
                "src": ["*"],
                "app": {
                    aperture: [
                        {"role": "user"},
                        {"models": "**", "quotas": [{"bucket": "daily:<user>"}]},
                    ]
                },
            },
        ],
        "alerts": {
            "budgets": {"daily:<user>": [50, 100]},
            "channels": {"ops": {"type": "webhook", "url": webhook}},
            "retry": {"first": "50ms", "max": "100ms", "attempts": 1},
        },
    }
    return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def alerts_gw(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """Bob's budget spent through real requests; the webhook refuses every delivery."""
    with FakeWebhook() as webhook:
        webhook.fail_next(1000, status=502)
        server = IrisgateServer(
            alerts_config(fake_llm.base_url, webhook.url("ops")),
            data_dir=tmp_path_factory.mktemp("irisgate-alerts"),
            identity="serve",
        )
        with server:
            for _ in range(100):
                try:
                    anthropic_as(server, USER).messages.create(
                        model="claude-haiku-4-5",
                        max_tokens=50,
                        messages=[{"role": "user", "content": "<b>bob</b> asks"}],
                    )
                except anthropic.RateLimitError:
                    break

            def given_up() -> bool:
                failed = api(server, ADMIN).get("/api/alerts").json()["failed_deliveries"]
                return len([d for d in failed if d["state"] == "failed"]) == 2

            assert wait_until(given_up)
            yield server


def test_a_user_sees_their_alerts_in_the_bell_and_marks_them_read(
    alerts_gw: IrisgateServer, browser: Browser
) -> None:
    def bucket() -> dict[str, Any]:
        (only,) = api(alerts_gw, USER).get("/api/quotas").json()["buckets"]
        return dict(only)

    assert wait_until(lambda: bucket()["burn_per_day_nanodollars"] > 0)  # records rolled up
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(f"{alerts_gw.url}/ui/dashboard")
    count = page.locator("#bell-count")
    expect(count).to_have_text("2")
    expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications: 2 unread")
    # My Dashboard shows the balance of the bucket that ran out, and Bob's burn rate
    card = page.locator(f'#my-quota-list [data-bucket="{BOB_DAILY}"]')
    expect(card).to_be_visible()
    bob = bucket()
    assert bob["balance_nanodollars"] <= 0
    assert bob["burn_per_day_nanodollars"] * 7 >= bob["capacity_nanodollars"] - 7
    assert bob["days_left"] == 0
    expect(card.locator(".burn")).to_have_text(
        f"Burn rate {bob['burn_per_day']}/day (last 7 days) · lasts 0 days at this rate"
    )
    page.locator("#bell").click()
    expect(page).to_have_url(f"{alerts_gw.url}/ui/notifications")
    items = page.locator("#alert-list .alert-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text(f"bucket {BOB_DAILY} reached 100 % of its capacity")
    expect(items.nth(0)).to_have_attribute("data-severity", "critical")
    expect(items.nth(1)).to_contain_text(f"bucket {BOB_DAILY} reached 50 %")
    expect(page.locator("#alerts-unread")).to_have_text("2 unread")
    expect(page.locator("#failed-table")).to_have_count(0)  # deliveries are for admins
    screenshot(page, "notifications-user")
    items.nth(1).locator(".mark-read").click()
    expect(count).to_have_text("1")
    expect(page.locator("#alert-list .alert-item.unread")).to_have_count(1)
    page.locator("#mark-all-read").click()
    expect(count).to_be_hidden()
    expect(page.locator("#alert-list .alert-item.unread")).to_have_count(0)
    page.reload()
    expect(page.locator("#alert-list .alert-item")).to_have_count(2)
    expect(page.locator("#bell-count")).to_be_hidden()
    context.close()


def test_an_admin_sees_every_alert_and_the_failed_deliveries(
    alerts_gw: IrisgateServer, browser: Browser
) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(f"{alerts_gw.url}/ui/admin/settings")  # the bell is on every page
    expect(page.locator("#bell-count")).to_have_text("2")
    page.goto(f"{alerts_gw.url}/ui/notifications")
    items = page.locator("#alert-list .alert-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text(f"user {USER}")
    expect(items.nth(0).locator(".deliveries")).to_have_text("ops: failed")
    rows = page.locator("#failed-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("given up")
    expect(rows.nth(0)).to_contain_text("the webhook answered 502: failing on purpose (502)")
    expect(page.locator("#failed-empty")).to_be_hidden()
    screenshot(page, "notifications-admin")
    context.close()


def test_the_alerts_editor_in_settings_saves_thresholds_and_keeps_the_secret_url(
    alerts_gw: IrisgateServer, browser: Browser
) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    before = api(alerts_gw, ADMIN).get("/api/config").json()
    page.goto(f"{alerts_gw.url}/admin/settings/alerts")
    panel = page.locator("#panel-alerts")
    channels = panel.locator('[data-field="channels"]')
    expect(channels).to_contain_text('"url": "[redacted]"')  # the literal URL never shown
    assert "/ops" not in page.content()
    panel.locator('[data-field="budgets"]').fill('{"daily:<user>": [80, 100]}')
    panel.locator('[data-field="retry.attempts"]').fill("4")
    page.click('[data-save="alerts"]')
    expect(page.locator("#save-status")).to_contain_text("Saved as version")
    after = api(alerts_gw, ADMIN).get("/api/config").json()
    assert after["version"] > before["version"]
    alerts = after["value"]["alerts"]
    assert alerts["budgets"] == {"daily:<user>": [80, 100]}
    assert alerts["retry"] == {"first": "50ms", "max": "100ms", "attempts": 4}
    assert alerts["channels"]["ops"] == {"type": "webhook", "url": "[redacted]"}
    # a bad value is refused with its path, and the running config stays
    panel.locator('[data-field="budgets"]').fill('{"daily:<user>": [0]}')
    page.click('[data-save="alerts"]')
    expect(panel).to_contain_text("must be a whole percentage from 1 to 1000, not 0")
    assert api(alerts_gw, ADMIN).get("/api/config").json()["version"] == after["version"]
    assert errors == []
    context.close()
