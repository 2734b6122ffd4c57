"""A translated request in Session Logs, in Chromium: the capture says which APIs were
translated between and shows the provider's side of the exchange next to the caller's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import ADMIN, USER, context_as, openai_as, wait_recorded
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    config = {
        "providers": {
            "anthropic": {
                "baseurl": fake_llm.base_url,
                "apikey": "sk-ant-upstream",
                "authorization": "x-api-key",
                "models": ["claude-haiku-4-5"],
                "compatibility": {"anthropic_messages": True},
                "translate": True,
            }
        },
        "grants": [
            {
                "src": [ADMIN],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
            },
            {
                "src": ["*"],
                "app": {"tailscale.com/cap/aperture": [{"role": "user"}, {"models": "**"}]},
            },
        ],
    }
    server = IrisgateServer(
        json.dumps(config), data_dir=tmp_path_factory.mktemp("translation"), identity="serve"
    )
    with server:
        yield server


@pytest.fixture
def admin(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, ADMIN)
    yield context.new_page()
    context.close()


def test_session_logs_show_both_sides_of_a_translated_request(
    gw: IrisgateServer, admin: Page
) -> None:

    raw = openai_as(gw, USER).chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "the translated question"}]
    )
    record = wait_recorded(gw, raw.headers["x-irisgate-request-id"])
    assert record["upstream_format"] == "anthropic_messages"
    admin.goto(gw.url + "/ui/admin/sessions")
    admin.fill("#session-filters input[name=user]", USER)
    admin.click("#session-filters button[type=submit]")
    admin.locator("#sessions-table tbody tr button").first.click()
    admin.locator("#requests-table tbody tr button").first.click()
    expect(admin.locator("#capture-facts")).to_contain_text("openai_chat → anthropic_messages")
    expect(admin.locator("#capture-resp-body")).to_contain_text("chat.completion")
    upstream = admin.locator("#capture-upstream")
    expect(upstream).to_be_visible()
    upstream.locator("summary").first.click()
    expect(admin.locator("#capture-up-req-body")).to_contain_text('"max_tokens"')
    upstream.locator("summary").nth(1).click()
    expect(admin.locator("#capture-up-resp-body")).to_contain_text('"type": "message"')
