"""Who the dashboard shows as signed in, in `tailscale` identity mode (WhoIs of the browser's
own TCP connection, answered by the fake tailscaled), and what it refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import chat, screenshot, wait_recorded
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

# one of the suite's longest modules (~41 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

# Chromium connects from 127.0.0.1: the fake tailscaled says that address is a tagged node.
BROWSER_IP = "127.0.0.1"


@pytest.fixture(scope="module")
def tagged_gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    sock = tmp_path_factory.mktemp("ts") / "tailscaled.sock"
    localapi = FakeLocalAPI()
    localapi.add_tagged(BROWSER_IP, ["tag:ci", "tag:prod"], node_name="ci-runner")
    localapi.start(str(sock))
    config = {
        "providers": {
            "openai": {
                "baseurl": fake_llm.base_url,
                "apikey": "sk-upstream",
                "models": ["gpt-4o-mini"],
                "compatibility": {"openai_chat": True},
            }
        },
        "grants": [
            {
                "src": ["tag:ci"],
                "app": {"tailscale.com/cap/aperture": [{"role": "user", "models": "openai/*"}]},
            }
        ],
    }
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-tagged"),
        identity="tailscale",
        tailscaled_socket=str(sock),
    )
    try:
        with server:
            yield server
    finally:
        localapi.stop()


@pytest.fixture
def plain_page(browser: Browser) -> Iterator[Page]:
    """A browser context with no identity headers at all (on the session's Chromium: a
    second sync Playwright cannot start while that one runs)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def test_tag_identity_sees_the_warning(tagged_gateway: IrisgateServer, plain_page: Page) -> None:
    page = plain_page
    page.goto(tagged_gateway.url + "/ui/dashboard")
    expect(page.locator("#signed-in")).to_have_text("tag:ci,tag:prod")
    expect(page.locator("#tag-warning")).to_contain_text("tag identity")
    screenshot(page, "tagged-dashboard-warning")


def test_serve_mode_without_identity_headers_is_refused(
    gateway: IrisgateServer, plain_page: Page
) -> None:
    response = plain_page.goto(gateway.url + "/ui/usage")
    assert response is not None and response.status == 403
    expect(plain_page.locator("#denied")).to_contain_text("Tailscale-User-Login")
    assert plain_page.locator("#sidebar a").count() == 0


def test_page_text_is_escaped(gateway: IrisgateServer, plain_page: Page) -> None:
    login = '<img src=x onerror="window.pwned=1">@example.com'
    # the page reads what is stored: wait for the record, not for the answer alone
    wait_recorded(gateway, chat(gateway, login, text="escape me"))
    plain_page.set_extra_http_headers({"Tailscale-User-Login": login})
    plain_page.goto(gateway.url + "/ui/usage")
    expect(plain_page.locator("#signed-in")).to_have_text(login)
    plain_page.click("button[data-sort=login_name]")  # "<" sorts first
    expect(plain_page.locator("#users-table tbody tr").first).to_contain_text(login)
    assert plain_page.evaluate("window.pwned") is None
    assert plain_page.locator("img[src=x]").count() == 0
