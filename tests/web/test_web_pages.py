"""Every dashboard page in Chromium, for an admin and a user, with data that went through the
gateway: loads, charts draw, tables sort/paginate/filter, redaction, CSV, access, screenshots.
"""

from __future__ import annotations

import csv
import io

import httpx2
import pytest
from conftest import (
    ADMIN,
    CROWD,
    USER,
    api,
    canvas_drawn,
    chat,
    context_as,
    screenshot,
    wait_recorded,
)
from playwright.sync_api import Browser, Page, expect

from irisgate.testing.server import IrisgateServer
from irisgate.web.nav import PAGES

# one of the suite's longest modules (~74 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

EMPTY = "\N{EN DASH}"  # what a stat shows before its data arrives
ADMIN_PAGES = [p for p in PAGES.values() if p.admin]
USER_PAGES = [p for p in PAGES.values() if not p.admin]


def _text_int(page: Page, selector: str) -> int:
    return int(page.inner_text(selector).replace(",", ""))


def test_every_page_loads_for_the_admin(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for entry in PAGES.values():
        page.goto(gateway.url + entry.path)
        expect(page.locator("h1")).to_be_visible()
        expect(page.locator(f'nav a[href="{entry.href}"]')).to_have_attribute(
            "aria-current", "page"
        )
        expect(page.locator("#signed-in")).to_have_text(ADMIN)
        page.wait_for_load_state("networkidle")
        screenshot(page, f"admin-{entry.key}")
    assert errors == []
    groups = page.locator(".nav-group h2").all_text_contents()
    assert groups == ["My irisgate", "Usage & Adoption", "Security", "Administration", "Reference"]


def test_user_sees_only_user_pages_and_gets_403_elsewhere(
    gateway: IrisgateServer, user_page: Page
) -> None:
    page = user_page
    for entry in USER_PAGES:
        response = page.goto(gateway.url + entry.path)
        assert response is not None and response.status == 200
        page.wait_for_load_state("networkidle")
        screenshot(page, f"user-{entry.key}")
    assert page.locator(".nav-group h2").all_text_contents() == ["My irisgate", "Usage & Adoption"]
    for entry in ADMIN_PAGES:
        response = page.goto(gateway.url + entry.path)
        assert response is not None and response.status == 403
        expect(page.locator("#denied")).to_contain_text("admin role required")
    bob = api(gateway, USER)
    for path in (
        "/api/usage/export.csv",
        "/api/usage/models",
        "/api/usage/agents",
        "/api/usage/active-users",
        "/api/sessions",
        "/api/config/versions",
        f"/api/dashboard/{ADMIN}",
    ):
        assert bob.get(path).status_code == 403, path
    response = page.goto(f"{gateway.url}/ui/dashboard/{ADMIN}")
    assert response is not None and response.status == 403


def test_dashboard_charts_and_updates_without_reload(
    gateway: IrisgateServer, user_page: Page
) -> None:
    page = user_page
    page.goto(gateway.url + "/ui/dashboard")
    expect(page.locator("#stat-requests")).not_to_have_text(EMPTY)
    assert canvas_drawn(page, "#chart-models")
    before = _text_int(page, "#stat-requests")
    assert before >= 2
    assert _text_int(page, "#stat-sessions") >= 1
    expect(page.locator("#timeline li").first).to_contain_text("gpt-4o-mini")
    wait_recorded(gateway, chat(gateway, USER, "gpt-5-mini", "live update"))
    expect(page.locator("#stat-requests")).to_have_text(str(before + 1), timeout=20_000)
    expect(page.locator("#timeline li").first).to_contain_text("gpt-5-mini")


def test_admin_opens_another_users_dashboard(gateway: IrisgateServer, admin_page: Page) -> None:
    admin_page.goto(f"{gateway.url}/ui/dashboard/{USER}")
    expect(admin_page.locator("h1")).to_have_text(f"Dashboard of {USER}")
    expect(admin_page.locator("#stat-requests")).not_to_have_text(EMPTY)
    data = api(gateway, ADMIN).get(f"/api/dashboard/{USER}").json()
    assert _text_int(admin_page, "#stat-requests") == data["totals"]["requests"]


def test_usage_overview_sort_paginate_filter(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/usage")
    rows = page.locator("#users-table tbody tr")
    expect(rows).to_have_count(10)
    assert canvas_drawn(page, "#chart-daily")
    expect(page.locator("#stat-users")).to_have_text(str(len(CROWD) + 2))
    expect(page.locator("#page-info")).to_contain_text("Page 1 of 2")
    first_page = rows.all_inner_texts()
    page.click("#users-pager [data-page=next]")
    expect(page.locator("#page-info")).to_contain_text("Page 2 of 2")
    expect(rows).to_have_count(len(CROWD) + 2 - 10)
    assert rows.all_inner_texts() != first_page
    # sort by login ascending: the first row is alice
    page.click("button[data-sort=login_name]")
    expect(rows.first.locator("td").nth(1)).to_have_text(ADMIN)
    page.click("button[data-sort=login_name]")
    expect(rows.first.locator("td").nth(1)).to_have_text(sorted(CROWD)[-1])
    # filter by model: only users who used it
    page.fill("#filters input[name=model]", "claude-haiku-4-5")
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(USER)
    expect(page.locator("#stat-users")).to_have_text("1")
    # the cost chart toggle draws too
    page.click("[data-metric=cost]")
    expect(page.locator("#metric-name")).to_have_text("estimated cost")
    assert canvas_drawn(page, "#chart-daily")


def test_non_admins_see_other_users_cost_redacted(gateway: IrisgateServer, user_page: Page) -> None:
    page = user_page
    page.goto(gateway.url + "/ui/usage?user=" + USER)
    expect(page.locator("#stat-cost")).not_to_have_text(EMPTY)
    expect(page.locator("#stat-cost")).not_to_have_text("redacted")
    page.goto(gateway.url + "/ui/usage")
    expect(page.locator("#stat-cost")).to_have_text("redacted")
    assert page.locator("#download-csv").count() == 0
    page.click("button[data-sort=login_name]")
    # the table is redrawn when the sorted rows arrive, header and rows at once: reading rows
    # before that could pair one row's login with another's cost in the next drawing
    sorted_by_login = page.locator("#users-table th:has(button[data-sort=login_name])")
    expect(sorted_by_login).to_have_attribute("aria-sort", "ascending")
    shown = page.eval_on_selector_all(  # one reading of the whole table
        "#users-table tbody tr",
        "rows => rows.map(r => [r.cells[1].innerText, r.cells[r.cells.length - 1].innerText])",
    )
    assert len(shown) == 10
    assert [login for login, _ in shown] == sorted(login for login, _ in shown)
    for login, avg in shown:
        assert (avg == "redacted") == (login != USER), (login, avg)
    users = api(gateway, USER).get("/api/usage/users", params={"per_page": 100}).json()["users"]
    others = [u for u in users if u["login_name"] != USER]
    assert others and all(u["cost_nanodollars"] is None for u in others)
    mine = next(u for u in users if u["login_name"] == USER)
    assert mine["cost_nanodollars"] is not None and not mine.get("cost_redacted")


def test_csv_download_matches_the_api(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/usage")
    expect(page.locator("#users-table tbody tr")).to_have_count(10)
    href = page.get_attribute("#download-csv", "href")
    assert href and href.startswith("/api/usage/export.csv?")
    response = page.request.get(gateway.url + href)  # as the browser would, with its identity
    assert response.status == 200
    assert "attachment" in response.headers["content-disposition"]
    text = response.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    per_user: dict[str, int] = {}
    for row in rows:
        per_user[row["login_name"]] = per_user.get(row["login_name"], 0) + int(row["total_tokens"])
    users = api(gateway, ADMIN).get("/api/usage/users", params={"per_page": 500}).json()["users"]
    assert per_user == {u["login_name"]: u["total_tokens"] for u in users}
    cost = sum(float(r["cost_usd"]) for r in rows)
    summary = api(gateway, ADMIN).get("/api/usage/summary").json()
    assert abs(cost - summary["totals"]["cost_nanodollars"] / 1e9) < 1e-6
    assert {r["model"] for r in rows} >= {"gpt-4o-mini", "gpt-5-mini", "claude-haiku-4-5"}


def test_activity_pages_show_models_agents_and_active_users(
    gateway: IrisgateServer, admin_page: Page
) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/model-activity")
    assert canvas_drawn(page, "#chart-activity")
    table = page.locator("#activity-table tbody tr")
    expect(table).to_have_count(3)
    page.click("button[data-sort=requests]")
    first = table.first.locator("td").nth(5).inner_text()
    page.click("button[data-sort=requests]")
    assert table.first.locator("td").nth(5).inner_text() != first
    page.goto(gateway.url + "/ui/admin/agent-activity")
    expect(page.locator("#activity-table")).to_contain_text("OpenAI/Python")
    expect(page.locator("#activity-table")).to_contain_text("Anthropic/Python")
    assert canvas_drawn(page, "#chart-activity")
    page.goto(gateway.url + "/ui/admin/user-activity")
    expect(page.locator("#stat-dau")).to_have_text(str(len(CROWD) + 2))
    assert canvas_drawn(page, "#chart-active")


def test_session_logs_open_a_request_capture(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/sessions")
    page.fill("#session-filters input[name=user]", USER)
    page.click("#session-filters button[type=submit]")
    rows = page.locator("#sessions-table tbody tr")
    expect(rows.first).to_contain_text(USER)
    expect(rows.filter(has_not_text=USER)).to_have_count(0)
    bob_asks = rows.filter(has_text="Anthropic/Python")
    bob_asks.first.locator("button").click()
    page.locator("#requests-table tbody tr button").first.click()
    expect(page.locator("#capture-req-body")).to_contain_text("bob asks")
    expect(page.locator("#capture-facts")).to_contain_text("claude-haiku-4-5")
    expect(page.locator("#capture-resp-body")).to_contain_text("content")
    screenshot(page, "admin-session-capture")


def test_phone_width_dark_theme_and_keyboard(gateway: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, ADMIN, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(gateway.url + "/ui/usage")
        expect(page.locator("#sidebar")).to_be_hidden()
        page.click("#menu-button")
        expect(page.locator("#sidebar")).to_be_visible()
        page.click("#theme-toggle")
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        screenshot(page, "phone-dark-menu")
        page.click("#menu-button")
        expect(page.locator("#users-table tbody tr")).to_have_count(10)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"page is {width}px wide at phone width"
        screenshot(page, "phone-dark-usage")
        # Ctrl+K jumps to a page by name
        page.keyboard.press("Control+k")
        assert page.evaluate("document.activeElement.id") == "page-search"
        page.keyboard.type("Models")
        page.keyboard.press("Enter")
        page.wait_for_url("**/ui/models")
        # keyboard only: Tab reaches the skip link first
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
    finally:
        context.close()


def test_an_unknown_page_is_a_404_inside_the_dashboard(
    gateway: IrisgateServer, user_page: Page
) -> None:
    page = user_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(gateway.url + "/ui/no-such-page")
    assert response is not None and response.status == 404
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    expect(page.locator("h1")).to_have_text("Page not found")
    expect(page.locator("#not-found")).to_contain_text("/ui/no-such-page")
    # the caller's navigation, as on every page: here a user's two groups
    assert page.locator(".nav-group h2").all_text_contents() == ["My irisgate", "Usage & Adoption"]
    expect(page.locator("#signed-in")).to_have_text(USER)
    page.locator("#sidebar a", has_text="Agent Config").click()
    page.wait_for_url("**/ui/agent-config")
    assert errors == []
    anonymous = httpx2.get(gateway.url + "/ui/no-such-page")  # unidentified: no nav
    assert anonymous.status_code == 404 and 'id="not-found"' in anonymous.text
    assert 'class="nav-group"' not in anonymous.text
    missing_file = api(gateway, USER).get("/ui/static/no-such-file.js")
    assert (missing_file.status_code, missing_file.text) == (404, "Not Found")
