"""The API Keys page and Agent Config's key for agents off the tailnet, in Chromium.

A person makes a key on the page, sees its secret once, uses it from the anthropic SDK,
revokes it on the page and is refused with it afterwards; an admin makes a service key; the
Agent Config page makes a key for an agent. The secret is never on a page loaded later.
A key's own budget is set when it is made and changed later, by its owner and by admins,
with its balance shown from the quota API; the checks are the API's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest
from conftest import ADMIN, USER, api, context_as, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["quotas"] = {
        "per-key": {"capacity": "$5.00", "rate": "$5.00/day"},
        "small": {"capacity": "$1.00", "rate": "$1.00/day"},
    }
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("keys-page"),
        identity="serve",
    )
    with server:
        yield server


def ask(gw: IrisgateServer, secret: str) -> None:
    client = anthropic.Anthropic(base_url=gw.url, api_key=secret, max_retries=0)
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )


def made_secret(page: Page) -> str:
    secret = page.locator("#key-secret").inner_text(timeout=20_000)
    assert secret.startswith("irisgate_")
    return secret


def test_a_user_makes_uses_and_revokes_a_key(browser: Browser, gw: IrisgateServer) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gw.url + "/ui/keys")
    page.fill("#key-name", "laptop")
    page.fill("#key-models", "anthropic/**")
    page.click("#key-create")
    secret = made_secret(page)
    expect(page.locator("#keys-rows tr")).to_have_count(1)
    row = page.locator("#keys-rows tr").first
    expect(row).to_contain_text("laptop")
    expect(row).to_contain_text("anthropic/**")
    expect(row.locator(".key-state")).to_have_text("active")
    assert page.locator("#key-owner").count() == 0  # users make keys for themselves only
    ask(gw, secret)
    screenshot(page, "keys-page")
    row.locator("button.revoke").click()
    expect(page.locator("#keys-rows tr .key-state").first).to_have_text("revoked")
    with pytest.raises(anthropic.AuthenticationError):
        ask(gw, secret)
    page.reload()
    expect(page.locator("#keys-rows tr")).to_have_count(1)
    assert secret not in page.content()
    context.close()


def test_an_admin_makes_a_service_key_and_sees_every_key(
    browser: Browser, gw: IrisgateServer
) -> None:
    assert api(gw, USER).post("/api/keys", json={"name": "bobs"}).status_code == 201
    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(gw.url + "/ui/keys")
    page.fill("#key-name", "ci")
    page.fill("#key-owner", "ci-bot@service")
    page.click("#key-create")
    secret = made_secret(page)
    who = api(gw, ADMIN).get("/api/whoami", headers={"authorization": f"Bearer {secret}"})
    assert who.json()["login_name"] == "ci-bot@service"
    page.check("#keys-all")
    expect(page.locator("#keys-rows tr", has_text="ci-bot@service")).to_have_count(1)
    expect(page.locator("#keys-rows tr", has_text="bobs")).to_have_count(1)
    context.close()


def test_agent_config_makes_a_key_for_an_agent(browser: Browser, gw: IrisgateServer) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gw.url + "/ui/agent-config")
    page.click("#agent-key-create")
    secret = made_secret(page)
    ask(gw, secret)
    keys = api(gw, USER).get("/api/keys").json()
    assert any(k["name"] == "agent off the tailnet" and not k["revoked_at"] for k in keys)
    context.close()


def test_a_key_gets_a_budget_that_its_owner_and_admins_change(
    browser: Browser, gw: IrisgateServer
) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gw.url + "/ui/keys")
    page.fill("#key-name", "metered")
    page.select_option("#key-quota", "per-key")
    page.click("#key-create")
    secret = made_secret(page)
    row = page.locator("#keys-rows tr", has_text="metered")
    expect(row.locator(".key-budget-balance")).to_have_text("$5.00 of $5.00 (per-key)")
    ask(gw, secret)  # the key's own bucket is charged, besides its owner's
    page.reload()
    balance = row.locator(".key-budget-balance")
    expect(balance).to_contain_text(" of $5.00 (per-key)")
    assert balance.inner_text() != "$5.00 of $5.00 (per-key)"

    row.locator(".key-budget-select").select_option("small")
    row.locator(".key-budget-save").click()
    expect(row.locator(".key-budget-balance")).to_contain_text(" of $1.00 (small)")
    key_id = row.get_attribute("data-key")
    mine = {k["id"]: k for k in api(gw, USER).get("/api/keys").json()}
    assert mine[key_id]["quota"] == "small"
    context.close()

    admin = context_as(browser, ADMIN)
    page = admin.new_page()
    page.goto(gw.url + "/ui/keys")
    page.check("#keys-all")
    row = page.locator(f"#keys-rows tr[data-key='{key_id}']")
    expect(row.locator(".key-budget-balance")).to_contain_text(" of $1.00 (small)")
    row.locator(".key-budget-select").select_option("")
    row.locator(".key-budget-save").click()
    expect(row.locator(".key-budget-balance")).to_have_text("none")
    admin.close()
    assert {k["id"]: k for k in api(gw, USER).get("/api/keys").json()}[key_id]["quota"] == ""


def test_changing_a_budget_has_the_apis_checks(browser: Browser, gw: IrisgateServer) -> None:
    made = api(gw, USER).post("/api/keys", json={"name": "budgeted", "quota": "small"}).json()
    path = f"/api/keys/{made['id']}"
    unknown = api(gw, USER).patch(path, json={"quota": "no-such-quota"})
    assert unknown.status_code == 400 and "no-such-quota" in unknown.json()["error"]
    other = api(gw, "carol@example.com").patch(path, json={"quota": ""})
    assert other.status_code == 404  # someone else's key is not there for them
    # a key with a budget is narrower than its owner: it cannot lift its own budget
    itself = api(gw, USER).patch(
        path, json={"quota": ""}, headers={"authorization": f"Bearer {made['secret']}"}
    )
    assert itself.status_code == 403 and "narrower" in itself.json()["error"]
    assert api(gw, USER).patch(path, json={"name": "renamed"}).status_code == 400
    assert api(gw, USER).delete(path).status_code == 200
    assert api(gw, USER).patch(path, json={"quota": "per-key"}).status_code == 409

    # the page offers the config's quotas, and no budget
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gw.url + "/ui/keys")
    options = page.locator("#key-quota option").all_inner_texts()
    assert options == ["none of its own", "per-key", "small"]
    context.close()
