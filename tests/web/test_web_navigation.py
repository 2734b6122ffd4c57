"""Navigation as in Aperture, through a real irisgate in Chromium: the admin pages at
`/admin/…` (the `/ui/` addresses still work), the Integrations page, the Feedback link, the
node-key-expiry banner from tailscaled's status, and the chat sidebar's Quotas and Admin
console links; every page under the Content-Security-Policy without a violation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import ADMIN, USER, context_as, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.config.hujson import parse
from irisgate.config.schema import build_config
from irisgate.config.secrets import SecretSource
from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer
from irisgate.web.headers import POLICY
from irisgate.web.integrations import INTEGRATIONS
from irisgate.web.nav import PAGES

FEEDBACK = "https://feedback.example.com/irisgate?from=dashboard"
# Chromium connects from 127.0.0.1: the fake tailscaled says that address is Alice's laptop.
BROWSER_IP = "127.0.0.1"
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
ADMIN_PAGES = [p for p in PAGES.values() if p.admin]


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """serve mode, no tailscaled, no Feedback address."""
    server = IrisgateServer(
        dashboard_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate-nav"),
        identity="serve",
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def localapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLocalAPI]:
    fake = FakeLocalAPI()
    fake.add_user(BROWSER_IP, ADMIN, "Alice", node_name="alice-laptop")
    fake.key_expiry = datetime.now(UTC) + timedelta(days=3, hours=2)
    fake.start(str(tmp_path_factory.mktemp("ts") / "tailscaled.sock"))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def tailnet_gateway(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """tailscale mode: Alice (an admin) on the fake tailscaled, whose node key expires in
    three days; a Feedback address is set."""
    server = IrisgateServer(
        dashboard_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate-tailnet"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_FEEDBACK_URL": FEEDBACK},
    )
    with server:
        yield server


def watched(browser: Browser, login: str | None) -> Page:
    context = (
        context_as(browser, login)
        if login
        else browser.new_context(viewport={"width": 1280, "height": 860})
    )
    context.set_default_timeout(20_000)
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    _ERRORS[id(page)] = []
    page.on("pageerror", lambda exc: _ERRORS[id(page)].append(str(exc)))
    return page


#: script errors of each watched page
_ERRORS: dict[int, list[str]] = {}


def close_clean(page: Page) -> None:
    assert page.evaluate("window.__violations") == []
    assert _ERRORS.pop(id(page)) == []
    page.context.close()


def test_admin_pages_at_aperture_addresses_and_the_old_ones(
    gateway: IrisgateServer, browser: Browser
) -> None:
    page = watched(browser, ADMIN)
    try:
        for entry in ADMIN_PAGES:
            assert entry.href == "/admin/" + entry.path.removeprefix("/ui/admin/")
            response = page.goto(gateway.url + entry.href)
            assert response is not None and response.status == 200, entry.href
            assert response.headers["content-security-policy"] == POLICY
            expect(page.locator("h1")).to_be_visible()
            expect(page.locator(f'nav a[href="{entry.href}"]')).to_have_attribute(
                "aria-current", "page"
            )
            old = page.goto(gateway.url + entry.path)
            assert old is not None and old.status == 200, entry.path
        page.goto(gateway.url + "/admin/")
        expect(page).to_have_url(gateway.url + "/admin/adoption")
        expect(page.locator("h1")).to_have_text("Usage Overview")
        missing = page.goto(gateway.url + "/admin/no-such-page")
        assert missing is not None and missing.status == 404
        expect(page.locator("main")).to_contain_text("/admin/no-such-page")
        # no Feedback address configured: no link; no tailscaled: no key banner
        expect(page.locator("#feedback")).to_have_count(0)
        expect(page.locator("#key-expiry")).to_have_count(0)
    finally:
        close_clean(page)


def test_admin_addresses_refuse_users(gateway: IrisgateServer, browser: Browser) -> None:
    page = watched(browser, USER)
    try:
        for entry in ADMIN_PAGES:
            response = page.goto(gateway.url + entry.href)
            assert response is not None and response.status == 403, entry.href
            expect(page.locator("#denied")).to_contain_text("admin role required")
    finally:
        close_clean(page)


def test_integrations_page_shows_every_snippet(gateway: IrisgateServer, browser: Browser) -> None:
    page = watched(browser, ADMIN)
    try:
        page.goto(gateway.url + "/admin/integrations")
        for item in INTEGRATIONS:
            card = page.locator(f"#integration-{item.key}")
            expect(card.locator("h3")).to_have_text(item.title)
            assert card.locator("code").text_content() == item.snippet
        expect(page.locator("#hooks .integration")).to_have_count(
            sum(1 for i in INTEGRATIONS if i.kind == "hook")
        )
        expect(page.locator("#exporters .integration")).to_have_count(
            sum(1 for i in INTEGRATIONS if i.kind == "exporter")
        )
        page.locator("#integration-cribl button.copy").click()
        expect(page.locator("#integration-cribl button.copy")).not_to_have_text("Copy")
        screenshot(page, "admin-integrations")
    finally:
        close_clean(page)


def _merged(base: dict[str, Any], snippet: dict[str, Any]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in snippet.items():
        if isinstance(value, list):
            merged.setdefault(key, []).extend(value)
        else:
            merged.setdefault(key, {}).update(value)
    return merged


@pytest.mark.parametrize("item", INTEGRATIONS, ids=lambda i: i.key)
def test_every_snippet_is_a_config_irisgate_loads(item: Any) -> None:
    base = json.loads(dashboard_config("https://api.example.com").split("\n", 1)[1])
    env = dict.fromkeys(
        (
            "OSO_API_KEY",
            "CRIBL_TOKEN",
            "GUARD_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "S3_KEY_ID",
            "S3_SECRET",
        ),
        "value",
    )
    text = json.dumps(_merged(base, parse(item.snippet).value))
    _config, warnings = build_config(text, SecretSource(env))  # raises ConfigError on errors
    assert [str(w) for w in warnings] == []


def test_key_expiry_banner_and_feedback_link_for_admins_on_the_tailnet(
    tailnet_gateway: IrisgateServer, browser: Browser
) -> None:
    page = watched(browser, None)  # identified by tailscaled, not by headers
    try:
        page.goto(tailnet_gateway.url + "/admin/quotas")
        expect(page.locator("#signed-in")).to_have_text(ADMIN)
        banner = page.locator("#key-expiry")
        expect(banner).to_contain_text("node key expires in 3 days")
        expect(banner).to_contain_text("tailscale up --force-reauth")
        feedback = page.locator("#feedback")
        expect(feedback).to_have_attribute("href", FEEDBACK)
        expect(feedback).to_have_attribute("target", "_blank")
        screenshot(page, "admin-key-expiry-banner")
    finally:
        close_clean(page)


def test_chat_sidebar_links_to_quotas_and_the_admin_console(
    gateway: IrisgateServer, browser: Browser
) -> None:
    admin = watched(browser, ADMIN)
    user = watched(browser, USER)
    try:
        admin.goto(gateway.url + "/chat/")
        expect(admin.locator("#quotas-link")).to_have_attribute("href", "/admin/quotas")
        expect(admin.locator("#admin-link")).to_have_attribute("href", "/admin/")
        user.goto(gateway.url + "/chat/")
        expect(user.locator("#quotas-link")).to_have_attribute("href", "/ui/dashboard#my-quotas")
        expect(user.locator("#admin-link")).to_have_count(0)
        with user.context.expect_page() as new_tab:
            user.click("#quotas-link")
        opened = new_tab.value
        opened.wait_for_load_state()
        expect(opened.locator("h1")).to_have_text("My Dashboard")
    finally:
        close_clean(admin)
        close_clean(user)
