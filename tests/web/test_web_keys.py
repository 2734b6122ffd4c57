"""The API Keys page and Agent Config's key for agents off the tailnet, in Chromium.

A person makes a key on the page, sees its secret once, uses it from the anthropic SDK,
revokes it on the page and is refused with it afterwards; an admin makes a service key; the
Agent Config page makes a key for an agent. The secret is never on a page loaded later.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from conftest import ADMIN, USER, api, context_as, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        dashboard_config(fake_llm.base_url),
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
    expect(page.locator("#keys-rows tr", has_text=USER)).to_have_count(1)
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
