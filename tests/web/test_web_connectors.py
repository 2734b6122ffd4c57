"""The Connectors pages through a real irisgate (serve mode) in Chromium: the users' view
with statuses and the Connect flow against a real OAuth 2.0 server (oauth2-mock-server, as in
tests/connectors), and the admins' editor: search, expand, per-type fields, masked preview,
add, rename and delete saved as config versions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN, USER, api, context_as, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeHttpApi
from irisgate.testing.oauth_server import oauth_mock_server
from irisgate.testing.server import IrisgateServer

# one of the suite's longest modules (~56 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

OAUTH_DIR = Path(__file__).resolve().parents[1] / "oauth"
CLIENT_ID = "irisgate-web-client"
CLIENT_SECRET = "web-oauth-client-secret-51c2"
WIKI_TOKEN = "wiki-bearer-secret-8d1e"
WEATHER_KEY = "weather-api-key-secret-3b7a"
VAULT_PASSWORD = "vault-password-secret-09f4"
SECRETS = (CLIENT_SECRET, WIKI_TOKEN, WEATHER_KEY, VAULT_PASSWORD)
APERTURE = "tailscale.com/cap/aperture"


@pytest.fixture(scope="module")
def oauth_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The strict oauth2-mock-server of tests/oauth (PKCE S256, client authentication)."""
    events = tmp_path_factory.mktemp("oauth-web") / "events.jsonl"
    with oauth_mock_server(OAUTH_DIR, CLIENT_ID, CLIENT_SECRET, events) as issuer:
        yield issuer


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as fake:
        yield fake


def connectors_config(issuer: str, upstream: str) -> str:
    servers: dict[str, Any] = {
        "notes": {
            "protocol": "http",
            "url": upstream,
            "description": "Personal notes API",
            "auth": {
                "type": "oauth2_authorization_code",
                "auth_url": issuer + "/authorize",
                "token_url": issuer + "/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scopes": ["read"],
            },
        },
        "wiki": {
            "protocol": "mcp",
            "url": "http://127.0.0.1:9/mcp",
            "description": "Team wiki",
            "context": "Search the wiki before answering questions about the team.",
            "auth": {"type": "bearer_token", "token": WIKI_TOKEN},
        },
        "weather": {
            "protocol": "http",
            "url": "http://127.0.0.1:9/weather",
            "description": "Forecasts",
            "auth": {"type": "api_key", "in": "query", "name": "appid", "secret": WEATHER_KEY},
        },
        "vault": {
            "protocol": "mcp",
            "url": "http://127.0.0.1:9/vault",
            # a reference: a rollback can restore it (literals only from the current version)
            "auth": {"type": "basic", "username": "svc", "password": "env:WEB_VAULT_PASSWORD"},
        },
        "broken": {
            "protocol": "http",
            "url": "http://127.0.0.1:9/broken",
            "auth": {"type": "bearer_token", "token": "env:IRISGATE_WEB_TEST_UNSET_TOKEN"},
        },
    }
    config = {
        "providers": {},
        "grants": [
            {"src": [ADMIN], "app": {APERTURE: [{"role": "admin", "connectors": ["**"]}]}},
            {
                "src": [USER],
                "app": {
                    APERTURE: [
                        {"role": "user", "connectors": ["notes", "wiki/*", "weather", "broken"]}
                    ]
                },
            },
        ],
        "connectors": {"servers": servers},
    }
    return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def gateway(
    oauth_issuer: str, upstream: FakeHttpApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        connectors_config(oauth_issuer, upstream.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate-web-connectors"),
        identity="serve",
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true", "WEB_VAULT_PASSWORD": VAULT_PASSWORD},
    )
    with server:
        yield server


def stored_servers(gw: IrisgateServer) -> dict[str, Any]:
    text = api(gw, ADMIN).get("/api/config").json()["config"]
    servers: dict[str, Any] = json.loads(text)["connectors"]["servers"]
    return servers


def version_count(gw: IrisgateServer) -> int:
    return len(api(gw, ADMIN).get("/api/config/versions").json()["versions"])


def assert_no_secret(page: Page) -> None:
    content = page.content()
    for secret in SECRETS:
        assert secret not in content


def test_users_view_shows_each_status_and_no_secret(
    gateway: IrisgateServer, user_page: Page
) -> None:
    page = user_page
    page.goto(gateway.url + "/ui/connectors")
    expect(page.locator("#sidebar a[aria-current=page]")).to_have_text("Connectors")
    item = page.locator("#connector-list li.connector")
    expect(item).to_have_count(5)
    expected = {
        "notes": "Needs auth",
        "wiki": "Ready",
        "weather": "Ready",
        "broken": "Misconfigured",
        "vault": "No access",
    }
    for connector_id, label in expected.items():
        expect(page.locator(f'li[data-connector="{connector_id}"] .status')).to_have_text(label)
    # only the per-user OAuth connector has a Connect button
    expect(page.locator("li.connector button.connect")).to_have_count(1)
    expect(page.locator('li[data-connector="notes"] button.connect')).to_have_text("Connect")
    # a user sees no Manage button and no upstream URL
    expect(page.locator("#manage")).to_have_count(0)
    page.locator('li[data-connector="wiki"] button.select').click()
    detail = page.locator("#connector-detail")
    expect(detail).to_contain_text("Search the wiki before answering")
    expect(detail.locator("#connector-endpoint")).to_have_text(gateway.url + "/v1/mcp")
    expect(detail).not_to_contain_text("Upstream URL")
    page.locator('li[data-connector="broken"] button.select').click()
    expect(detail).to_contain_text("IRISGATE_WEB_TEST_UNSET_TOKEN")
    assert_no_secret(page)
    screenshot(page, "user-connectors")
    # an admin gets the Manage button, which leads to the editor
    assert page.context.browser is not None
    context = context_as(page.context.browser, ADMIN)
    admin = context.new_page()
    try:
        admin.goto(gateway.url + "/ui/connectors")
        admin.locator("#manage").click()
        expect(admin).to_have_url(gateway.url + "/ui/admin/connectors")
        expect(admin.locator("h1")).to_have_text("Connector Settings")
    finally:
        context.close()
    # the editor is for admins only
    response = page.goto(gateway.url + "/ui/admin/connectors")
    assert response is not None and response.status == 403


def test_connect_goes_to_the_oauth_server_and_back_and_turns_ready(
    gateway: IrisgateServer, user_page: Page, upstream: FakeHttpApi, oauth_issuer: str
) -> None:
    page = user_page
    page.goto(gateway.url + "/ui/connectors")
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.locator('li[data-connector="notes"] button.connect').click()
    expect(page).to_have_url(re.compile(re.escape(gateway.url + "/aperture/auth/notes/callback")))
    # the browser itself went to the authorization server, with PKCE
    authorize = [url for url in seen if url.startswith(oauth_issuer + "/authorize")]
    assert authorize and "code_challenge_method=S256" in authorize[0]
    expect(page.locator("h1")).to_have_text("notes: Connected")
    screenshot(page, "user-connector-callback")
    page.get_by_role("link", name="Back to Connectors").click()
    expect(page.locator('li[data-connector="notes"] .status')).to_have_text("Ready")
    expect(page.locator('li[data-connector="notes"] button.connect')).to_have_text("Reconnect")
    screenshot(page, "user-connectors-connected")
    # the token works: the HTTP connector now calls upstream with Bob's own token
    with api(gateway, USER) as client:
        response = client.get("/v1/connectors/notes/today")
    assert response.status_code == 200, response.text
    assert upstream.requests[-1].path.endswith("/today")
    assert (
        upstream.requests[-1].headers["authorization"].startswith("Bearer at-authorization_code-")
    )


def test_editor_search_and_expand(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/connectors")
    rows = page.locator("#connector-table tr[data-connector]")
    expect(rows).to_have_count(5)
    wiki = page.locator('tr[data-connector="wiki"]')
    expect(wiki.locator("td").nth(1)).to_have_text("mcp")
    expect(wiki.locator("td").nth(2)).to_have_text("http://127.0.0.1:9/mcp")
    expect(wiki.locator("td").nth(3)).to_have_text("bearer token")
    page.fill("#connector-search", "api key")
    expect(page.locator("#connector-table tr[data-connector]:visible")).to_have_count(1)
    expect(page.locator('tr[data-connector="weather"]')).to_be_visible()
    page.fill("#connector-search", "mcp")
    expect(page.locator("#connector-table tr[data-connector]:visible")).to_have_count(2)
    page.fill("#connector-search", "no such connector")
    expect(page.locator("#no-match")).to_be_visible()
    page.fill("#connector-search", "")
    expect(rows).to_have_count(5)
    # a row expands to its description, context and auth fields, secrets masked
    detail = page.locator('tr[data-detail="wiki"]')
    expect(detail).to_be_hidden()
    wiki.locator("button.expand").click()
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("Team wiki")
    expect(detail).to_contain_text("Search the wiki before answering")
    expect(detail).to_contain_text("[redacted]")
    page.locator('tr[data-connector="weather"] button.expand').click()
    weather = page.locator('tr[data-detail="weather"]')
    expect(weather).to_contain_text("appid")
    expect(weather).to_contain_text("query")
    assert_no_secret(page)
    screenshot(page, "admin-connectors-expanded")


AUTH_FIELDS = {
    "none": [],
    "bearer_token": ["token"],
    "api_key": ["in", "name", "secret"],
    "basic": ["username", "password"],
    "oauth2_client_credentials": ["token_url", "client_id", "client_secret", "scopes"],
    "oauth2_authorization_code": [
        "auth_url",
        "token_url",
        "client_id",
        "client_secret",
        "scopes",
    ],
    "oauth2_dynamic_client_registration": ["scopes"],
}


def preview(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.inner_text("#connector-preview"))
    return data


def test_form_shows_the_fields_of_each_auth_type_and_masks_the_preview(
    gateway: IrisgateServer, admin_page: Page
) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/connectors")
    page.click("#add-connector")
    form = page.locator("#connector-form")
    for auth_type, fields in AUTH_FIELDS.items():
        form.locator("[name='auth.type']").select_option(auth_type)
        shown = form.locator("[data-auth-field]")
        expect(shown).to_have_count(len(fields))
        assert [shown.nth(i).get_attribute("data-auth-field") for i in range(len(fields))] == fields
    form.locator("[name=id]").fill("crm")
    form.locator("[name=url]").fill("https://crm.example.com/api")
    form.locator("[name='auth.type']").select_option("oauth2_client_credentials")
    form.locator("[name='auth.token_url']").fill("https://auth.example.com/token")
    form.locator("[name='auth.client_id']").fill("crm-client")
    form.locator("[name='auth.client_secret']").fill("typed-client-secret-77")
    form.locator("[name='auth.scopes']").fill("read, write")
    shown = preview(page)["crm"]
    assert shown["auth"] == {
        "type": "oauth2_client_credentials",
        "token_url": "https://auth.example.com/token",
        "client_id": "crm-client",
        "client_secret": "[redacted]",
        "scopes": ["read", "write"],
    }
    form.locator("[name='auth.type']").select_option("basic")
    form.locator("[name='auth.username']").fill("crm-user")
    form.locator("[name='auth.password']").fill("typed-password-88")
    assert preview(page)["crm"]["auth"] == {
        "type": "basic",
        "username": "crm-user",
        "password": "[redacted]",
    }
    form.locator("[name='auth.type']").select_option("api_key")
    form.locator("[name='auth.secret']").fill("env:CRM_KEY")  # a reference is not secret
    assert preview(page)["crm"]["auth"]["secret"] == "env:CRM_KEY"
    assert "typed-password-88" not in page.inner_text("#connector-preview")
    screenshot(page, "admin-connector-form")
    page.click("#cancel-edit")
    expect(page.locator("#editor")).to_be_hidden()


def test_add_rename_and_delete_are_config_versions(
    gateway: IrisgateServer, admin_page: Page
) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/connectors")
    expect(page.locator("#connector-table tr[data-connector]")).to_have_count(5)
    versions = version_count(gateway)
    # add: a bad URL is refused at the field, then a good one is saved
    page.click("#add-connector")
    form = page.locator("#connector-form")
    form.locator("[name=id]").fill("search")
    form.locator("[name=protocol]").select_option("http")
    form.locator("[name=url]").fill("ftp://search.example.com")
    form.locator("[name=description]").fill("Web search")
    form.locator("[name=context]").fill("Use for current events.")
    form.locator("[name='auth.type']").select_option("api_key")
    form.locator("[name='auth.in']").select_option("header")
    form.locator("[name='auth.name']").fill("X-Search-Key")
    form.locator("[name='auth.secret']").fill("search-key-secret-41")
    page.click("#save-connector")
    url_field = form.locator("[data-field=url]")
    expect(url_field).to_have_class(re.compile("invalid"))
    expect(url_field.locator(".field-error")).not_to_be_empty()
    screenshot(page, "admin-connector-error")
    assert version_count(gateway) == versions
    form.locator("[name=url]").fill("https://search.example.com/v1")
    page.click("#save-connector")
    expect(page.locator("#save-status")).to_contain_text("Connector search saved")
    expect(page.locator('tr[data-connector="search"]')).to_be_visible()
    assert version_count(gateway) == versions + 1
    stored = stored_servers(gateway)["search"]
    assert stored["auth"] == {
        "type": "api_key",
        "in": "header",
        "name": "X-Search-Key",
        "secret": "[redacted]",
    }
    assert stored["context"] == "Use for current events."
    assert "search-key-secret-41" not in page.content()

    # rename wiki (its stored token is never shown): the old entry goes, the token stays
    page.locator('tr[data-connector="wiki"] button.edit').click()
    expect(form.locator("[name=id]")).to_have_value("wiki")
    expect(form.locator("[name='auth.token']")).to_have_value("[redacted]")
    expect(form.locator("[data-auth-field=token]")).to_contain_text("leave")
    form.locator("[name=id]").fill("teamwiki")
    expect(page.locator("#connector-preview")).to_contain_text('"teamwiki"')
    page.click("#save-connector")
    expect(page.locator("#save-status")).to_contain_text("renamed from wiki")
    expect(page.locator('tr[data-connector="teamwiki"]')).to_be_visible()
    expect(page.locator('tr[data-connector="wiki"]')).to_have_count(0)
    servers = stored_servers(gateway)
    assert "wiki" not in servers
    assert servers["teamwiki"]["auth"] == {"type": "bearer_token", "token": "[redacted]"}
    assert servers["teamwiki"]["context"].startswith("Search the wiki")
    assert version_count(gateway) == versions + 2

    # delete asks first; Cancel keeps the connector
    page.locator('tr[data-connector="vault"] button.delete').click()
    dialog = page.locator("#confirm-delete")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete connector vault?")
    screenshot(page, "admin-connector-delete-confirm")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert "vault" in stored_servers(gateway)
    page.locator('tr[data-connector="vault"] button.delete').click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#save-status")).to_contain_text("Connector vault deleted")
    expect(page.locator('tr[data-connector="vault"]')).to_have_count(0)
    assert "vault" not in stored_servers(gateway)
    assert version_count(gateway) == versions + 3
    screenshot(page, "admin-connectors-after-edits")

    # each change is an ordinary config version: rolling back the delete brings vault back
    with api(gateway, ADMIN) as client:
        history = client.get("/api/config/versions").json()["versions"]
        before_delete = history[1]["id"]
        old = client.get(f"/api/config/versions/{before_delete}").json()["config"]
        current = client.get("/api/config").json()
        saved = client.put("/api/config", json={"config": old, "hash": current["hash"]})
        assert saved.status_code == 200, saved.text
    assert stored_servers(gateway)["vault"]["auth"]["password"] == "env:WEB_VAULT_PASSWORD"
    # users see the renamed connector under its new id
    with api(gateway, USER) as client:
        listed = {c["id"] for c in client.get("/api/connectors").json()["connectors"]}
    assert "teamwiki" in listed and "wiki" not in listed


def test_a_stale_save_is_refused_and_explained(gateway: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    try:
        page.goto(gateway.url + "/ui/admin/connectors")
        page.locator('tr[data-connector="weather"] button.edit').click()
        page.locator("#connector-form [name=description]").fill("Forecasts, edited")
        # someone else saves meanwhile
        with api(gateway, ADMIN) as client:
            current = client.get("/api/config").json()
            text = current["config"].replace('"Forecasts"', '"Forecasts (API)"')
            assert client.put(
                "/api/config", json={"config": text, "hash": current["hash"]}
            ).is_success
        page.click("#save-connector")
        expect(page.locator("#save-status")).to_contain_text("Someone saved a newer config")
        assert stored_servers(gateway)["weather"]["description"] == "Forecasts (API)"
    finally:
        context.close()


def test_the_picker_prefills_common_connectors(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/connectors")
    page.click("#add-connector")
    form = page.locator("#connector-form")
    picker = form.locator("[name=catalog]")
    expect(picker.locator("option")).to_have_count(9)  # "none" and eight connectors
    picker.select_option(label="GitHub")
    expect(form.locator("[name=id]")).to_have_value("github")
    expect(form.locator("[name=url]")).to_have_value("https://api.githubcopilot.com/mcp/")
    expect(form.locator("[name='auth.type']")).to_have_value("bearer_token")
    token = form.locator("[name='auth.token']")
    expect(token).to_have_attribute("placeholder", re.compile("personal access token"))
    # a server that registers its clients itself, over the legacy SSE transport
    picker.select_option(label="Atlassian (Jira, Confluence)")
    expect(form.locator("[name=id]")).to_have_value("atlassian")
    expect(form.locator("[name=transport]")).to_have_value("sse")
    expect(form.locator("[data-auth-field]")).to_have_count(1)  # only the optional scopes
    form.locator("[name=protocol]").select_option("http")
    expect(form.locator("[data-field=transport]")).to_be_hidden()  # an MCP setting
    form.locator("[name=protocol]").select_option("mcp")
    expect(form.locator("[data-field=transport]")).to_be_visible()
    shown = preview(page)["atlassian"]
    assert shown == {
        "protocol": "mcp",
        "url": "https://mcp.atlassian.com/v1/sse",
        "transport": "sse",
        "description": "Jira issues and Confluence pages",
        "provider": "Atlassian",
        "auth": {"type": "oauth2_dynamic_client_registration"},
    }
    screenshot(page, "admin-connector-picker")
    page.click("#save-connector")
    expect(page.locator("#save-status")).to_contain_text("Connector atlassian saved")
    stored = stored_servers(gateway)["atlassian"]
    assert stored["transport"] == "sse"
    assert stored["auth"] == {"type": "oauth2_dynamic_client_registration"}
    # editing it keeps the transport and shows the registered-client auth type
    page.locator('tr[data-connector="atlassian"] button.edit').click()
    expect(form.locator("[name=catalog]")).to_have_count(0)  # the picker is for new ones
    expect(form.locator("[name=transport]")).to_have_value("sse")
    expect(form.locator("[name='auth.type']")).to_have_value("oauth2_dynamic_client_registration")
