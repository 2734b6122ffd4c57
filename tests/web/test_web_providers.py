"""The admin Providers page (health per provider and key) and a failed-over request in Session
Logs, in Chromium, after traffic through a real irisgate whose preferred provider refuses
connections and whose backup has a revoked key first in its list."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import pytest
from conftest import ADMIN, USER, api, chat, context_as, wait_recorded
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

GOOD_KEY = "sk-backup-good-key-1234"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    closed = socket.socket()  # bound, never listening: connections are refused
    closed.bind(("127.0.0.1", 0))
    with FakeLLM() as backup:
        backup.api_key = GOOD_KEY
        config = {
            "providers": {
                "primary": {
                    "baseurl": f"http://127.0.0.1:{closed.getsockname()[1]}",
                    "apikey": "sk-primary",
                    "models": ["gpt-4o-mini"],
                    "preference": 10,
                },
                "other": {  # the session-logs test's own pair: no health shared
                    "baseurl": f"http://127.0.0.1:{closed.getsockname()[1]}",
                    "apikey": "sk-other",
                    "models": ["gpt-5-mini"],
                    "preference": 10,
                },
                "other-backup": {
                    "baseurl": backup.base_url,
                    "apikey": GOOD_KEY,
                    "models": ["gpt-5-mini"],
                },
                "backup": {
                    "name": "Backup vendor",
                    "baseurl": backup.base_url,
                    "apikey": ["sk-revoked-key-9999", GOOD_KEY],
                    "models": ["gpt-4o-mini"],
                },
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
            json.dumps(config), data_dir=tmp_path_factory.mktemp("providers"), identity="serve"
        )
        with server:
            yield server
    closed.close()


@pytest.fixture
def admin(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, ADMIN)
    yield context.new_page()
    context.close()


def test_providers_page_shows_circuit_errors_and_keys(gw: IrisgateServer, admin: Page) -> None:
    for n in range(5):  # five refusals in a row: the primary's circuit opens
        wait_recorded(gw, chat(gw, USER, text=f"question {n}"))
    admin.goto(gw.url + "/ui/admin/providers")
    primary = admin.locator("#provider-health tr[data-provider=primary]")
    expect(primary.locator(".circuit")).to_have_text("open")
    expect(primary.locator(".error-rate")).to_contain_text("100%")
    expect(primary.locator(".last-error")).to_contain_text("cannot connect")
    expect(primary.locator(".cool-down")).to_contain_text(" s")
    backup = admin.locator("#provider-health tr[data-provider=backup]")
    expect(backup).to_contain_text("Backup vendor")
    expect(backup.locator(".circuit")).to_have_text("closed")
    keys = backup.locator(".keys")
    expect(keys).to_contain_text("#1 available")
    assert "sk-" not in admin.content()  # keys by index, never the secret

    health = api(gw, ADMIN).get("/api/providers/health").json()
    assert [row["provider"] for row in health] == ["primary", "other", "other-backup", "backup"]
    assert health[0]["state"] == "open" and health[0]["cool_down_s"] > 0
    assert api(gw, USER).get("/api/providers/health").status_code == 403


def test_session_logs_show_requests_that_failed_over(gw: IrisgateServer, admin: Page) -> None:
    request_id = chat(gw, USER, "gpt-5-mini", text="the failover question")
    record = wait_recorded(gw, request_id)
    assert record["provider"] == "other-backup"
    admin.goto(gw.url + "/ui/admin/sessions")
    admin.fill("#session-filters input[name=user]", USER)
    admin.click("#session-filters button[type=submit]")
    admin.locator("#sessions-table tbody tr button").first.click()  # the latest session
    retried = admin.locator("#requests-table tbody tr .retried")
    expect(retried).to_have_text(re.compile(r"\d attempts"))
    retried.locator("xpath=ancestor::tr").locator("button").click()
    facts = admin.locator("#capture-facts")
    expect(facts).to_contain_text("Upstream attempts")
    expect(facts).to_contain_text("1. other key #0: no answer (cannot connect")
    expect(facts).to_contain_text("2. other-backup key #0: HTTP 200")
    expect(facts).to_contain_text("HTTP 200")
