"""Settings (config edit, inline errors, conflict, self-lockout, history and rollback), the
Models page's Test button, Agent Config, and the OpenAPI document, through a real irisgate."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import ADMIN, USER, api, context_as, openai_as, screenshot
from playwright.sync_api import Browser, Page, expect
from starlette.routing import Route

from irisgate.api.openapi import ENDPOINTS
from irisgate.app import web_routes
from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer


def test_models_page_lists_prices_and_the_test_button_round_trips(
    gateway: IrisgateServer, user_page: Page, fake_llm: FakeLLM
) -> None:
    page = user_page
    page.goto(gateway.url + "/ui/models")
    row = page.locator('tr[data-model="gpt-4o-mini"]')
    expect(row).to_contain_text("openai_chat")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^\$\d"))
    row.locator("button.info").focus()
    expect(row.locator("[role=tooltip]")).to_be_visible()
    expect(row.locator("[role=tooltip]")).to_contain_text("Cache read")
    row.locator("button.test").click()
    result = page.locator("tr.result-row td").first
    expect(result).to_contain_text("OK")
    expect(result).to_contain_text(re.compile(r"\d+ ms"))
    expect(result.locator(".test-cost")).to_contain_text(re.compile(r"cost: \$\d"))
    # the request went through the gateway as Bob
    recent = api(gateway, USER).get("/api/requests", params={"limit": 1}).json()["requests"][0]
    assert recent["login_name"] == USER and recent["model"] == "gpt-4o-mini"
    # an upstream failure shows the error, in the Anthropic format's own words
    fake_llm.fail_next(529)
    anthropic_row = page.locator('tr[data-model="claude-haiku-4-5"]')
    anthropic_row.locator("button.test").click()
    failed = anthropic_row.locator("xpath=following-sibling::tr[1]/td")
    expect(failed.locator(".test-error")).to_contain_text("HTTP 529")
    screenshot(page, "user-models-tested")


def test_agent_config_uses_this_address_and_granted_models(
    gateway: IrisgateServer, user_page: Page
) -> None:
    page = user_page
    page.goto(gateway.url + "/ui/agent-config")
    expect(page.locator("#endpoint")).to_have_text(gateway.url)
    expect(page.locator("#panel-claude-code")).to_contain_text(f"ANTHROPIC_BASE_URL={gateway.url}")
    page.click("#tab-codex")
    expect(page.locator("#panel-codex")).to_contain_text(f'base_url = "{gateway.url}/v1"')
    page.keyboard.press("ArrowRight")
    expect(page.locator("#panel-opencode")).to_be_visible()
    expect(page.locator("#missing-clients")).to_contain_text("Gemini CLI")


@pytest.fixture
def bare_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    """irisgate on its default config, whose providers have no keys yet."""
    server = IrisgateServer(
        None,
        data_dir=tmp_path_factory.mktemp("irisgate-bare"),
        identity="serve",
        env={"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""},
    )
    with server:
        yield server


def test_agent_config_without_providers_explains_what_to_do(
    bare_gateway: IrisgateServer, browser: Browser
) -> None:
    # the default config makes everyone an admin until the grants are narrowed
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(bare_gateway.url + "/ui/agent-config")
        expect(page.locator("#no-providers")).to_contain_text("No LLM provider is configured")
        screenshot(page, "agent-config-no-providers")
    finally:
        context.close()


def _editor_text(page: Page) -> str:
    value: str = page.eval_on_selector("#config-text", "t => t.value")
    return value


def test_config_edit_errors_conflict_and_rollback(
    gateway: IrisgateServer, admin_page: Page
) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/settings")
    expect(page.locator("#config-version")).not_to_have_text("")
    page.click("#tab-raw")
    original = _editor_text(page)
    assert "[redacted]" in original and "sk-upstream-openai-secret" not in original
    # an invalid value: the error is listed with its line and the line is marked
    broken = original.replace('"authorization": "x-api-key"', '"authorization": "sometimes"')
    page.fill("#config-text", broken)
    page.click("#save-raw")
    expect(page.locator("#config-errors li")).to_contain_text("authorization")
    expect(page.locator("#gutter .bad")).to_have_count(1)
    screenshot(page, "admin-settings-error")
    # a valid edit saves a new version
    page.fill("#config-text", original.replace("// dashboard tests", "// edited in the UI"))
    page.click("#save-raw")
    expect(page.locator("#save-status")).to_contain_text("Saved as version")
    saved = re.search(r"Saved as version (\d+)", page.inner_text("#save-status"))
    assert saved is not None
    edited_version = saved.group(1)
    expect(page.locator("#config-version")).to_have_text(edited_version)
    # someone else saves meanwhile: our next save is refused as stale and explained
    current = api(gateway, ADMIN).get("/api/config").json()
    resp = api(gateway, ADMIN).put(
        "/api/config",
        json={
            "config": current["config"].replace("// edited in the UI", "// edited elsewhere"),
            "hash": current["hash"],
        },
    )
    assert resp.status_code == 200
    page.fill("#config-text", _editor_text(page) + "\n")
    page.click("#save-raw")
    expect(page.locator("#save-status")).to_contain_text("Someone saved a newer version")
    # removing our own admin role is refused
    page.click("#reload-config")
    expect(page.locator("#save-status")).to_contain_text("Reloaded")
    page.fill("#config-text", _editor_text(page).replace('"role": "admin"', '"role": "user"'))
    page.click("#save-raw")
    expect(page.locator("#save-status")).to_contain_text("would remove your own admin role")
    # history: diff of our version, then roll back to it
    page.click("#tab-history")
    row = page.locator(f'#history-table tr[data-version="{edited_version}"]')
    row.locator(".show-diff").click()
    expect(page.locator("#diff .add")).to_contain_text(["+// edited in the UI"])
    row.locator(".rollback").click()
    page.click("#confirm-ok")
    expect(page.locator("#save-status")).to_contain_text(f"Rolled back to version {edited_version}")
    now = api(gateway, ADMIN).get("/api/config").json()
    assert "// edited in the UI" in now["config"] and "edited elsewhere" not in now["config"]
    assert now["version"] > int(edited_version)
    screenshot(page, "admin-settings-history")


def test_visual_editor_adds_a_provider_and_a_grant_and_shows_errors_at_the_field(
    gateway: IrisgateServer, admin_page: Page, fake_llm: FakeLLM
) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/settings")
    expect(page.locator("fieldset.providers")).to_have_count(2)
    # a stored key is write-only: the field is empty and the page never holds the key
    expect(page.locator('fieldset.providers[data-id="openai"] [data-field=apikey]')).to_have_value(
        ""
    )
    assert "sk-upstream-openai-secret" not in page.content()
    screenshot(page, "admin-settings-visual")
    page.click("#add-providers")
    card = page.locator("fieldset.providers").last
    card.locator("[name=id]").fill("local")
    card.locator("[data-field=baseurl]").fill("not a url")
    card.locator("[data-field=models]").fill("llama-local, qwen-local")
    page.click('[data-save="providers"]')
    error = card.locator('[data-key="baseurl"] .field-error')
    expect(error).not_to_be_empty()
    expect(page.locator("#save-status")).to_contain_text("error")
    card.locator("[data-field=baseurl]").fill(fake_llm.base_url)
    page.click('[data-save="providers"]')
    expect(page.locator("#save-status")).to_contain_text("Saved as version")
    page.click("#tab-grants")
    page.click("#add-grants")
    grant = page.locator("fieldset.grant").last
    grant.locator("[name=src]").fill("carol@example.com")
    grant.locator("[data-field=role]").select_option("user")
    grant.locator("button.add-capability").click()
    grant.locator("fieldset.capability").last.locator("[data-field=models]").fill("local/*")
    page.click('[data-save="grants"]')
    expect(page.locator("#save-status")).to_contain_text("Saved as version")
    providers = {p["id"]: p for p in api(gateway, ADMIN).get("/api/providers").json()}
    assert providers["local"]["models"] == ["llama-local", "qwen-local"]
    carol = api(gateway, "carol@example.com").get("/api/whoami").json()
    assert carol["role"] == "user"
    config = api(gateway, ADMIN).get("/api/config").json()["config"]
    assert "sk-upstream-openai-secret" not in config
    # the stored secret survived the round trip through the form: the gateway still works
    reply = openai_as(gateway, ADMIN).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "still keyed?"}]
    )
    assert reply.choices[0].message.content
    assert fake_llm.requests[-1].headers["authorization"] == "Bearer sk-upstream-openai-secret"


def test_openapi_documents_every_api_endpoint(gateway: IrisgateServer) -> None:
    doc = api(gateway, USER).get("/api/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for route in web_routes():
        if isinstance(route, Route) and route.path.startswith("/api/"):
            path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
            served |= {(m, path) for m in route.methods or () if m != "HEAD"}
    assert served == documented
    assert len(ENDPOINTS) == len(documented)


def test_api_docs_page_renders_the_document(gateway: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(gateway.url + "/ui/admin/api-docs")
        expect(page.locator(".endpoint")).to_have_count(len(ENDPOINTS))
        page.locator(".endpoint summary", has_text="/api/usage/users").click()
        expect(page.locator(".endpoint[open]")).to_contain_text("per_page")
    finally:
        context.close()
