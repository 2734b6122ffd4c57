"""Usage Overview filters (agent, status code, indexed headers) and CSV for them, the activity
pages' series and groupings, and the admin's User Dashboard, through a real irisgate fed by
the official OpenAI and Anthropic SDKs; then the pages in Chromium.

Indexed headers: `database.headers.filterable` names `x-team` (values kept) and `x-secret`
(`redact_values`: presence only); only the admin is granted `filterable_headers`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import (
    ADMIN,
    USER,
    anthropic_as,
    api,
    canvas_drawn,
    context_as,
    dashboard_config,
    identity_headers,
    openai_as,
    screenshot,
    wait_recorded,
)
from playwright.sync_api import Browser, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
CAROL = "carol@example.com"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:  # its own: this module makes it fail on purpose
        yield fake


def _openai(gw: IrisgateServer, login: str, team: str | None, secret: bool = False) -> str:
    headers = {"x-team": team} if team else {}
    if secret:
        headers["x-secret"] = "s3cr3t-value"
    reply = openai_as(gw, login).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers=headers,
    )
    return reply.headers["x-irisgate-request-id"]


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(upstream.base_url).split("\n", 1)[1])
    config["database"] = {
        "headers": {"filterable": [{"name": "X-Team"}, {"name": "x-secret", "redact_values": True}]}
    }
    config["grants"].append(
        {"src": [ADMIN], "app": {APERTURE: [{"filterable_headers": ["x-team", "x-secret"]}]}}
    )
    server = IrisgateServer(
        json.dumps(config), data_dir=tmp_path_factory.mktemp("usage-filters"), identity="serve"
    )
    with server:
        # OpenAI/Python: 3 of team red (one with the secret header), 1 of blue, 1 without
        _openai(server, USER, "red")
        _openai(server, USER, "red", secret=True)
        _openai(server, CAROL, "red")
        _openai(server, CAROL, "blue")
        _openai(server, ADMIN, None)
        # Anthropic/Python: 2 answered, 1 the upstream refused with 429 (team red)
        claude = anthropic_as(server, USER)
        for _ in range(2):
            claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=20,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-team": "blue"},
            )
        upstream.fail_next(429)
        with pytest.raises(Exception, match="429"):
            claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=20,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-team": "red"},
            )
        wait_recorded(server, _openai(server, ADMIN, None))
        yield server


def _summary(gw: IrisgateServer, login: str = ADMIN, **params: str) -> dict[str, Any]:
    resp = api(gw, login).get("/api/usage/summary", params=params)
    assert resp.status_code == 200, resp.text
    totals: dict[str, Any] = resp.json()["totals"]
    return totals


def test_agent_and_status_filters(gateway: IrisgateServer) -> None:
    assert _summary(gateway)["requests"] == 9
    assert _summary(gateway, agent="OpenAI/Python")["requests"] == 6
    assert _summary(gateway, agent="Anthropic/Python")["requests"] == 3
    assert _summary(gateway, agent="Anthropic/Python", status="2xx")["requests"] == 2
    refused = _summary(gateway, status="429")
    assert (refused["requests"], refused["error_requests"]) == (1, 1)
    assert _summary(gateway, status="4xx", model="gpt-4o-mini")["requests"] == 0
    users = api(gateway, ADMIN).get("/api/usage/users", params={"agent": "Anthropic/Python"})
    assert [u["login_name"] for u in users.json()["users"]] == [USER]
    bad = api(gateway, ADMIN).get("/api/usage/summary", params={"status": "42"})
    assert bad.status_code == 400
    assert "'status'" in bad.json()["error"]


def test_indexed_header_filters_need_the_grant(gateway: IrisgateServer) -> None:
    assert _summary(gateway, header="x-team", header_value="red")["requests"] == 4
    assert _summary(gateway, header="X-Team", header_value="blue")["requests"] == 3
    # no value: every request that carried the header
    assert _summary(gateway, header="x-team")["requests"] == 7
    red_ok = _summary(gateway, header="x-team", header_value="red", status="200")
    assert red_ok["requests"] == 3
    # redact_values: presence only, whatever value is asked for
    assert _summary(gateway, header="x-secret")["requests"] == 1
    assert _summary(gateway, header="x-secret", header_value="other")["requests"] == 1
    choices = api(gateway, ADMIN).get("/api/usage/filters").json()
    assert choices["headers"] == [
        {"name": "x-team", "redact_values": False},
        {"name": "x-secret", "redact_values": True},
    ]
    assert set(choices["agents"]) == {"OpenAI/Python", "Anthropic/Python"}
    # bob has no filterable_headers grant: no headers offered, filtering refused
    assert api(gateway, USER).get("/api/usage/filters").json()["headers"] == []
    refused = api(gateway, USER).get(
        "/api/usage/summary", params={"header": "x-team", "header_value": "red"}
    )
    assert refused.status_code == 403
    assert "x-team" in refused.json()["error"]
    unknown = api(gateway, ADMIN).get("/api/usage/summary", params={"header": "x-nope"})
    assert unknown.status_code == 403
    # the secret header's value is stored nowhere a dashboard reads
    assert "s3cr3t" not in api(gateway, ADMIN).get("/api/usage/export.csv").text


def test_csv_has_the_current_filters(gateway: IrisgateServer) -> None:
    resp = api(gateway, ADMIN).get(
        "/api/usage/export.csv", params={"header": "x-team", "header_value": "blue"}
    )
    assert resp.status_code == 200
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    got = sorted((r["login_name"], r["model"], int(r["requests"])) for r in rows)
    assert got == [(USER, "claude-haiku-4-5", 2), (CAROL, "gpt-4o-mini", 1)]
    everything = list(
        csv.DictReader(io.StringIO(api(gateway, ADMIN).get("/api/usage/export.csv").text))
    )
    assert sum(int(r["requests"]) for r in everything) == 9


def test_model_and_agent_activity_series(gateway: IrisgateServer) -> None:
    data = api(gateway, ADMIN).get("/api/usage/models").json()
    today = datetime.now(UTC).date().isoformat()
    daily = data["daily"]
    assert daily["days"][-1] == today
    assert len(daily["days"]) == 30
    by_name = {s["name"]: s for s in daily["series"]}
    assert set(by_name) == {"gpt-4o-mini", "claude-haiku-4-5"}
    model_totals = {m["model"]: m for m in data["models"]}
    for name, series in by_name.items():
        assert series["tokens"][-1] == model_totals[name]["total_tokens"] > 0
        assert series["cost"][-1] == model_totals[name]["cost_nanodollars"]
    agents = api(gateway, ADMIN).get("/api/usage/agents", params={"status": "2xx"}).json()
    assert {a["agent"]: a["requests"] for a in agents["agents"]} == {
        "OpenAI/Python": 6,
        "Anthropic/Python": 2,
    }
    assert {s["name"] for s in agents["daily"]["series"]} == {"OpenAI/Python", "Anthropic/Python"}


def test_user_activity_groups(gateway: IrisgateServer) -> None:
    today = datetime.now(UTC).date()
    since = (today - timedelta(days=13)).isoformat()
    client = api(gateway, ADMIN)
    for group in ("day", "week", "month", "4of7"):
        data = client.get("/api/usage/active-users", params={"group": group, "since": since})
        assert data.status_code == 200
        periods = data.json()["periods"]
        assert periods[-1]["users"] == (0 if group == "4of7" else 3), group
        if group == "day":
            assert len(periods) == 14
        if group == "week":  # from the Monday of each week, clipped to the range
            assert periods[0]["start"] == since
            assert all(datetime.fromisoformat(p["start"]).weekday() == 0 for p in periods[1:])
    bad = client.get("/api/usage/active-users", params={"group": "year"})
    assert bad.status_code == 400


def test_usage_page_filters_and_csv_link(browser: Browser, gateway: IrisgateServer) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(gateway.url + "/ui/usage")
    expect(page.locator("#stat-users")).to_have_text("3")
    expect(page.locator("#header-filter")).to_be_visible()
    page.fill("#filters [name=agent]", "Anthropic/Python")
    page.fill("#filters [name=status]", "2xx")
    page.select_option("#filters [name=header]", "x-team")
    page.fill("#filters [name=header_value]", "blue")
    page.click("#filters button[type=submit]")
    expect(page.locator("#stat-users")).to_have_text("1")
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    href = page.get_attribute("#download-csv", "href") or ""
    assert "agent=Anthropic%2FPython" in href
    assert "header=x-team" in href
    assert "header_value=blue" in href
    assert "status=2xx" in page.url
    screenshot(page, "usage-filters")
    context.close()
    # bob sees no header filter
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gateway.url + "/ui/usage")
    expect(page.locator("#stat-users")).to_have_text("3")
    expect(page.locator("#header-filter")).to_be_hidden()
    context.close()


def test_activity_pages_in_the_browser(browser: Browser, gateway: IrisgateServer) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(gateway.url + "/ui/admin/model-activity")
    assert canvas_drawn(page, "#chart-stacked")
    legend = page.locator("#chart-stacked .u-legend")
    expect(legend).to_contain_text("gpt-4o-mini")
    expect(legend).to_contain_text("claude-haiku-4-5")
    page.click("[data-metric=cost]")
    expect(page.locator("#metric-name")).to_have_text("cost")
    assert canvas_drawn(page, "#chart-stacked")
    expect(page.locator("#activity-table tbody tr")).to_have_count(2)
    expect(page.locator("#page-info")).to_have_text("Page 1 of 1 · 2 models")
    screenshot(page, "model-activity-stacked")
    page.goto(gateway.url + "/ui/admin/user-activity")
    page.click("[data-group='4of7']")
    expect(page.locator("#group-title")).to_have_text("Users active on 4 of 7 days")
    page.click("[data-group=week]")
    expect(page.locator("#group-title")).to_have_text("Weekly active users")
    assert "group=week" in page.url
    expect(page.locator("#periods-table tbody tr").last).to_contain_text("3")
    screenshot(page, "user-activity-week")
    context.close()


def test_admin_picks_a_user_dashboard(browser: Browser, gateway: IrisgateServer) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(gateway.url + "/ui/dashboard")
    expect(page.locator("#user-choices option")).to_have_count(3)
    page.fill("#user-picker [name=login]", CAROL)
    page.click("#user-picker button[type=submit]")
    page.wait_for_url("**/ui/dashboard/carol%40example.com")
    expect(page.locator("h1")).to_have_text(f"Dashboard of {CAROL}")
    expect(page.locator("#stat-requests")).to_have_text("2")
    screenshot(page, "user-dashboard-picked")
    context.close()
    # a user gets no picker
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gateway.url + "/ui/dashboard")
    expect(page.locator("#stat-requests")).to_have_text("5")  # 2 OpenAI, 2 Anthropic, 1 refused
    assert page.locator("#user-picker").count() == 0
    context.close()


def test_identity_headers_are_not_indexed(gateway: IrisgateServer) -> None:
    """Only the configured headers are offered: never a login header."""
    names = [h["name"] for h in api(gateway, ADMIN).get("/api/usage/filters").json()["headers"]]
    assert not {n for n in names if n.lower() in {k.lower() for k in identity_headers(ADMIN)}}
