"""The quota parts of the dashboard through a real irisgate: the admin Quotas page (balances
charged by real SDK requests, add funds and set balance behind a confirmation dialog, the
change history), the Models tooltip's buckets and the viewer's own budget on My Dashboard."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ADMIN,
    USER,
    anthropic_as,
    api,
    chat,
    context_as,
    dashboard_config,
    screenshot,
    wait_recorded,
)
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

BOB_DAILY = f"daily:{USER}"
ALICE_DAILY = f"daily:{ADMIN}"
TEAM = "team-anthropic"


def quota_config(upstream: str) -> str:
    config: dict[str, Any] = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": "sk-upstream-openai-secret",
                "models": ["gpt-4o-mini"],
                "compatibility": {"openai_chat": True},
            },
            "anthropic": {
                "baseurl": upstream,
                "apikey": "sk-ant-upstream-secret",
                "authorization": "x-api-key",
                "models": ["claude-sonnet-4-5"],
                "compatibility": {"anthropic_messages": True},
            },
        },
        "quotas": {
            "daily:<user>": {"capacity": "$10.00", "rate": "$5.00/day"},
            TEAM: {"capacity": "$50.00", "rate": "$50.00/month"},
        },
        "grants": [
            {
                "src": [ADMIN],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
            },
            {
                "src": ["*"],
                "app": {
                    "tailscale.com/cap/aperture": [
                        {"role": "user"},
                        {"models": "**", "quotas": [{"bucket": "daily:<user>"}]},
                        {"models": "anthropic/**", "quotas": [{"bucket": TEAM}]},
                    ]
                },
            },
        ],
    }
    return "// quota dashboard tests\n" + json.dumps(config, indent=2)


def buckets(gw: IrisgateServer, login: str, **params: str) -> dict[str, dict[str, Any]]:
    resp = api(gw, login).get("/api/quotas", params=params)
    assert resp.status_code == 200, resp.text
    return {b["name"]: b for b in resp.json()["buckets"]}


def wait_charged(gw: IrisgateServer, names: list[str]) -> dict[str, dict[str, Any]]:
    """The buckets once every one of `names` shows a debit (settlement follows the answer)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = buckets(gw, ADMIN)
        if all(
            n in seen and seen[n]["balance_nanodollars"] < seen[n]["capacity_nanodollars"]
            for n in names
        ):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{names} were not charged: {buckets(gw, ADMIN)}")


@pytest.fixture(scope="module")
def quota_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    """irisgate with per-user and shared buckets, charged by real requests that cost
    dollars (the fake upstream reports a million prompt tokens per request)."""
    with FakeLLM() as fake:
        fake.prompt_tokens = 1_000_000
        server = IrisgateServer(
            quota_config(fake.base_url),
            data_dir=tmp_path_factory.mktemp("irisgate-quotas"),
            identity="serve",
        )
        with server:
            reply = anthropic_as(server, USER).messages.with_raw_response.create(
                model="claude-sonnet-4-5",
                max_tokens=50,
                messages=[{"role": "user", "content": "bob asks claude"}],
            )
            wait_recorded(server, reply.headers["x-irisgate-request-id"])
            wait_recorded(server, chat(server, USER, "gpt-4o-mini", "bob asks gpt"))
            wait_recorded(server, chat(server, ADMIN, "gpt-4o-mini", "alice asks gpt"))
            wait_charged(server, [BOB_DAILY, ALICE_DAILY, TEAM])
            yield server


def dollars(nanodollars: int) -> str:
    return f"${nanodollars / 1e9:,.2f}"


def meter_value(page: Page, bucket: str) -> float:
    value = page.locator(f'tr[data-bucket="{bucket}"] [role=meter]').get_attribute("aria-valuenow")
    assert value is not None
    return float(value)


def test_api_says_which_models_charge_each_bucket(quota_gw: IrisgateServer) -> None:
    bob = buckets(quota_gw, USER)
    assert set(bob) == {BOB_DAILY, TEAM}
    assert bob[BOB_DAILY]["caller_models"] == ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]
    assert bob[TEAM]["caller_models"] == ["anthropic/claude-sonnet-4-5"]
    # admins see every bucket, their own (`own=1`) with the models that charge them
    assert {BOB_DAILY, ALICE_DAILY, TEAM} <= set(buckets(quota_gw, ADMIN))
    mine = buckets(quota_gw, ADMIN, own="1")
    assert set(mine) == {ALICE_DAILY, TEAM}
    assert mine[TEAM]["caller_models"] == ["anthropic/claude-sonnet-4-5"]
    # the change history of every bucket at once; bad limits are named
    admin = api(quota_gw, ADMIN)
    assert admin.get("/api/quotas/changes").status_code == 200
    bad = admin.get("/api/quotas/changes", params={"limit": "0"})
    assert bad.status_code == 400
    assert "'limit'" in bad.json()["error"]


def test_quotas_page_shows_charged_buckets(quota_gw: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(quota_gw.url + "/ui/quotas")  # the short address redirects
        expect(page).to_have_url(quota_gw.url + "/ui/admin/quotas")
        nav = page.locator(".nav-group", has_text="Administration")
        expect(nav.get_by_role("link", name="Quotas")).to_have_attribute("aria-current", "page")
        seen = buckets(quota_gw, ADMIN)
        for name in (BOB_DAILY, ALICE_DAILY, TEAM):
            row = page.locator(f'tr[data-bucket="{name}"]')
            expect(row).to_be_visible()
            bucket = seen[name]
            expect(row.locator(".balance-text")).to_contain_text(
                f"of {dollars(bucket['capacity_nanodollars'])}"
            )
            assert abs(meter_value(page, name) - bucket["balance_nanodollars"] / 1e9) < 0.01
            expect(row.locator(".rate")).to_have_text(bucket["rate"])
            expect(row.locator(".updated")).not_to_have_text("not charged yet")
        # the request through the SDK cost dollars: the bar is visibly below full
        assert meter_value(page, TEAM) < 49
        bob_row = page.locator(f'tr[data-bucket="{BOB_DAILY}"]')
        expect(bob_row).to_contain_text("template daily:<user>")
        expect(page.locator(f'tr[data-bucket="{TEAM}"]')).to_contain_text("anthropic/**")
        fill = page.locator(f'tr[data-bucket="{TEAM}"] .fill')
        width = fill.evaluate(
            "f => f.getBoundingClientRect().width / f.parentElement.getBoundingClientRect().width"
        )
        assert 0 < width < 0.99
    finally:
        context.close()


def test_add_funds_through_the_confirmation_dialog(
    quota_gw: IrisgateServer, browser: Browser
) -> None:
    admin = api(quota_gw, ADMIN)
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(quota_gw.url + "/ui/admin/quotas")
        row = page.locator(f'tr[data-bucket="{BOB_DAILY}"]')
        before = meter_value(page, BOB_DAILY)
        assert before < 9  # a $3+ request was charged to it
        changes_before = admin.get("/api/quotas/changes").json()["changes"]

        # Cancel changes nothing
        row.get_by_role("button", name="Add funds").click()
        dialog = page.locator("#quota-dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("Dollars to add").fill("1")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        assert admin.get("/api/quotas/changes").json()["changes"] == changes_before

        row.get_by_role("button", name="Add funds").click()
        expect(dialog).to_contain_text(f"Add funds to {BOB_DAILY}")
        dialog.get_by_label("Dollars to add").fill("2.50")
        expect(page.locator("#quota-preview")).to_contain_text("→")
        dialog.get_by_role("button", name="Add funds").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#quota-status")).to_contain_text(f"Added funds to {BOB_DAILY}")

        change = admin.get("/api/quotas/changes", params={"bucket": BOB_DAILY}).json()["changes"][0]
        assert change["action"] == "refill"
        assert change["changed_by"] == ADMIN
        assert change["amount_nanodollars"] == 2_500_000_000
        added = change["balance_after_nanodollars"] - change["balance_before_nanodollars"]
        assert added == 2_500_000_000
        api_balance = buckets(quota_gw, ADMIN)[BOB_DAILY]["balance_nanodollars"]
        assert api_balance >= change["balance_after_nanodollars"]
        expect(row.locator("[role=meter]")).not_to_have_attribute("aria-valuenow", str(before))
        assert abs(meter_value(page, BOB_DAILY) - (before + 2.5)) < 0.01
        # the bucket's owner sees it too
        assert abs(buckets(quota_gw, USER)[BOB_DAILY]["balance_nanodollars"] - api_balance) < 10**7

        history = page.locator("#changes-table tbody tr").first
        expect(history).to_contain_text(BOB_DAILY)
        expect(history).to_contain_text("Added $2.50")
        expect(history.locator(".who")).to_have_text(ADMIN)
        when = history.locator("time").get_attribute("datetime")
        assert when == change["changed_at"]
    finally:
        context.close()


def test_set_balance_and_its_errors(quota_gw: IrisgateServer, browser: Browser) -> None:
    admin = api(quota_gw, ADMIN)
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(quota_gw.url + "/ui/admin/quotas")
        row = page.locator(f'tr[data-bucket="{TEAM}"]')
        row.get_by_role("button", name="Set balance").click()
        dialog = page.locator("#quota-dialog")
        field = dialog.get_by_label("New balance in dollars")
        # above capacity: the server's error is shown in the dialog, which stays open
        field.fill("999")
        expect(page.locator("#quota-preview")).to_contain_text("above the capacity $50.00")
        dialog.get_by_role("button", name="Set balance").click()
        expect(page.locator("#quota-error")).to_contain_text("above the bucket's capacity $50.00")
        expect(dialog).to_be_visible()
        field.fill("lots")
        dialog.get_by_role("button", name="Set balance").click()
        expect(page.locator("#quota-error")).to_contain_text("'balance'")
        assert admin.get("/api/quotas/changes", params={"bucket": TEAM}).json()["changes"] == []

        field.fill("1.25")
        field.press("Enter")  # the keyboard confirms too
        expect(dialog).to_be_hidden()
        expect(row.locator(".balance-text")).to_have_text("$1.25 of $50.00")
        balance = buckets(quota_gw, ADMIN)[TEAM]["balance_nanodollars"]
        assert 1_250_000_000 <= balance < 1_260_000_000
        # the history, filtered to the bucket
        page.locator("#changes-bucket").select_option(TEAM)
        rows = page.locator("#changes-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Set to $1.25")
        expect(rows.first.locator(".who")).to_have_text(ADMIN)
        page.locator("#changes-bucket").select_option("")
        every = admin.get("/api/quotas/changes").json()["changes"]
        expect(page.locator("#changes-table tbody tr")).to_have_count(len(every))
        screenshot(page, "quotas")
    finally:
        context.close()


def test_quotas_page_is_admin_only(quota_gw: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    try:
        response = page.goto(quota_gw.url + "/ui/admin/quotas")
        assert response is not None and response.status == 403
        expect(page.locator("#denied")).to_contain_text("admin role required")
        expect(page.get_by_role("link", name="Quotas")).to_have_count(0)
        bob = api(quota_gw, USER)
        resp = bob.post("/api/quotas/refill", json={"bucket": BOB_DAILY, "amount": "5"})
        assert resp.status_code == 403
        assert bob.get("/api/quotas/changes").status_code == 403
    finally:
        context.close()


def test_models_tooltip_lists_the_viewers_buckets(
    quota_gw: IrisgateServer, browser: Browser
) -> None:
    seen = buckets(quota_gw, USER)
    context = context_as(browser, USER)
    page = context.new_page()
    try:
        page.goto(quota_gw.url + "/ui/models")
        claude = page.locator('tr[data-model="claude-sonnet-4-5"]')
        claude.locator("button.info").hover()
        tip = claude.locator("[role=tooltip]")
        expect(tip).to_be_visible()
        expect(tip).to_contain_text(BOB_DAILY)
        expect(tip).to_contain_text(TEAM)
        expect(tip).to_contain_text("$5.00/day")
        expect(tip).to_contain_text("$50.00/month")
        expect(tip).to_contain_text(f"of {dollars(seen[BOB_DAILY]['capacity_nanodollars'])}")
        expect(tip).to_contain_text("Last update")
        # the whole tooltip is on screen, not clipped by the table's scroll box
        on_top = tip.evaluate(
            """tip => {
                const box = tip.getBoundingClientRect();
                const hit = document.elementFromPoint(box.left + 8, box.bottom - 4);
                return box.bottom <= innerHeight && tip.contains(hit);
            }"""
        )
        assert on_top
        gpt = page.locator('tr[data-model="gpt-4o-mini"] [role=tooltip]')
        expect(gpt).to_contain_text(BOB_DAILY)
        expect(gpt).not_to_contain_text(TEAM)
        screenshot(page, "models-quota-tooltip")
    finally:
        context.close()


def test_my_dashboard_shows_own_budget(quota_gw: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    try:
        page.goto(quota_gw.url + "/ui/dashboard")
        section = page.locator("#my-quotas")
        expect(section).to_be_visible()
        expect(section.locator(".quota-card")).to_have_count(2)
        card = section.locator(f'.quota-card[data-bucket="{BOB_DAILY}"]')
        expect(card.locator("[role=meter]")).to_be_visible()
        expect(card).to_contain_text("Refills at $5.00/day")
        expect(section).not_to_contain_text(ALICE_DAILY)
        screenshot(page, "dashboard-budget")
    finally:
        context.close()
    # an admin's own dashboard lists only the admin's buckets, not everyone's
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(quota_gw.url + "/ui/dashboard")
        section = page.locator("#my-quotas")
        expect(section.locator(f'.quota-card[data-bucket="{ALICE_DAILY}"]')).to_be_visible()
        expect(section).not_to_contain_text(BOB_DAILY)
    finally:
        context.close()


def test_no_budget_section_without_buckets(tmp_path: Path, browser: Browser) -> None:
    """A deployment without quotas shows no empty budget panel."""
    with (
        FakeLLM() as fake,
        IrisgateServer(dashboard_config(fake.base_url), data_dir=tmp_path, identity="serve") as gw,
    ):
        context = context_as(browser, USER)
        page = context.new_page()
        try:
            with page.expect_response(lambda r: "/api/quotas?own=1" in r.url) as answer:
                page.goto(gw.url + "/ui/dashboard")
            assert answer.value.json() == {"buckets": []}
            expect(page.locator("#my-quotas")).to_be_hidden()
        finally:
            context.close()
