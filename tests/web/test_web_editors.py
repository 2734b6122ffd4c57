"""The visual config editors of Settings, in Chromium against a real irisgate: each editor
changes its section, saves a config version whose text keeps every comment of the file,
refuses a stale save and a save that would lock its admin out, and never shows a stored
secret; the pages run under the Content-Security-Policy without a violation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN, api, context_as, openai_as, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

# one of the suite's longest modules (~68 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

PROVIDER_KEY = "sk-editor-test-provider-key"
HOOK_KEY = "hook-editor-test-key"

CONFIG = """// Editors test: every comment below must survive the visual editors.
{
  /* providers */
  "providers": {
    "openai": {
      "baseurl": "UPSTREAM", // the fake vendor
      "apikey": "PROVIDER_KEY",
      "models": ["gpt-4o-mini"],
      "compatibility": {"openai_chat": true},
    },
  },
  // who may do what
  "grants": [
    {"src": ["ADMIN"],
     "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]}},
    {
      "src": ["*"],
      "app": {"tailscale.com/cap/aperture": [
        {"role": "user"}, // everyone
        {"models": "openai/*"},
      ]},
    },
  ],
  "quotas": {
    "daily:<user>": {"capacity": "$10.00", "rate": "$5.00/day"}, // per person
  },
  "rate_limits": {"rpm:<user>": {"requests": 600, "per": "minute"}},
  "hooks": {
    "audit": {"url": "https://audit.example.com/hook", "apikey": "HOOK_KEY"}, // not wired
  },
  "database": {
    "retention": {"duration": "720h"}, // thirty days
  },
  // export off until a bucket is named
  "exporters": {"s3": {"bucket_name": "", "region": "us-east-1"}},
  "flags": {"chat_ui": {"value": true}}, // chat for everyone
}
"""
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def comments(text: str) -> list[str]:
    """The comments of a HuJSON text, in order (strings skipped)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', text, re.DOTALL)
    return [token for token in tokens if token.startswith("/")]


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    text = (
        CONFIG.replace("UPSTREAM", fake_llm.base_url)
        .replace("PROVIDER_KEY", PROVIDER_KEY)
        .replace("HOOK_KEY", HOOK_KEY)
        .replace("ADMIN", ADMIN)
    )
    server = IrisgateServer(
        text, data_dir=tmp_path_factory.mktemp("irisgate-editors"), identity="serve"
    )
    with server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, ADMIN)
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    assert page.evaluate("window.__violations") == []
    assert errors == []
    context.close()


def current(gateway: IrisgateServer) -> dict[str, Any]:
    data: dict[str, Any] = api(gateway, ADMIN).get("/api/config").json()
    return data


def saved(page: Page) -> int:
    expect(page.locator("#save-status")).to_contain_text("Saved as version")
    found = re.search(r"Saved as version (\d+)", page.inner_text("#save-status"))
    assert found is not None
    return int(found.group(1))


def assert_comments_kept(gateway: IrisgateServer) -> str:
    text: str = current(gateway)["config"]
    assert comments(text) == comments(CONFIG)
    return text


def test_provider_editor_edits_every_field_and_keeps_comments_and_the_key(
    gateway: IrisgateServer, page: Page, fake_llm: FakeLLM
) -> None:
    page.goto(gateway.url + "/admin/settings/providers")
    card = page.locator('fieldset.providers[data-id="openai"]')
    key = card.locator('[data-field="apikey"]')
    expect(key).to_have_value("")  # write-only: the stored key is never sent to the page
    expect(key).to_have_attribute("type", "password")
    assert PROVIDER_KEY not in page.content()
    card.locator('[data-field="name"]').fill("OpenAI (prod)")
    card.locator('[data-field="description"]').fill("the main account")
    card.locator('[data-field="preference"]').fill("7")
    card.locator('[data-field="cost_basis"]').select_option("openai")
    card.locator('[data-field="add_headers"]').fill("X-Team: platform")
    card.locator('[name$=":compatibility:openai_responses"]').check()
    card.locator('[data-field="translate"]').check()
    page.click('[data-save="providers"]')
    version = saved(page)
    screenshot(page, "admin-settings-providers")
    data = current(gateway)
    assert data["version"] == version
    openai_entry = data["value"]["providers"]["openai"]
    assert openai_entry["name"] == "OpenAI (prod)" and openai_entry["preference"] == 7
    assert openai_entry["cost_basis"] == "openai"
    assert openai_entry["add_headers"] == ["X-Team: platform"]
    assert openai_entry["compatibility"] == {"openai_chat": True, "openai_responses": True}
    assert openai_entry["translate"] is True
    text = assert_comments_kept(gateway)
    assert '"baseurl": "' + fake_llm.base_url + '", // the fake vendor' in text
    # the stored key still reaches the vendor, with the new header
    fake_llm.reset()
    openai_as(gateway, ADMIN).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    sent = fake_llm.requests[-1].headers
    assert sent["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent["x-team"] == "platform"


def test_grant_editor_edits_capabilities_and_adds_a_grant(
    gateway: IrisgateServer, page: Page
) -> None:
    page.goto(gateway.url + "/admin/settings/grants")
    everyone = page.locator("fieldset.grant").nth(1)
    models_cap = everyone.locator("fieldset.capability").nth(1)
    models_cap.locator('[data-field="quotas"]').fill("daily:<user>")
    models_cap.locator('[data-field="rate_limits"]').fill("rpm:<user>")
    models_cap.locator('[data-field="read_metrics"]').check()
    models_cap.locator('[data-field="enable_chat_ui"]').select_option("false")
    page.click("#add-grants")
    carol = page.locator("fieldset.grant").last
    carol.locator("[name=src]").fill("carol@example.com")
    carol.locator('[data-field="role"]').select_option("admin")
    page.click('[data-save="grants"]')
    saved(page)
    grants = current(gateway)["value"]["grants"]
    assert grants[1]["app"]["tailscale.com/cap/aperture"][1] == {
        "models": "openai/*",
        "quotas": [{"bucket": "daily:<user>"}],
        "rate_limits": ["rpm:<user>"],
        "enable_chat_ui": False,
        "read_metrics": True,
    }
    assert api(gateway, "carol@example.com").get("/api/whoami").json()["role"] == "admin"
    assert_comments_kept(gateway)


@pytest.mark.parametrize(
    ("tab", "field", "value", "path", "expected"),
    [
        ("quotas", "rate", "$2.00/hour", ("quotas", "daily:<user>", "rate"), "$2.00/hour"),
        ("hooks", "timeout", "2s", ("hooks", "audit", "timeout"), "2s"),
        ("database", "retention.duration", "48h", ("database", "retention", "duration"), "48h"),
        ("exporters", "prefix", "irisgate", ("exporters", "s3", "prefix"), "irisgate"),
        ("rate_limits", "requests", "1200", ("rate_limits", "rpm:<user>", "requests"), 1200),
        (
            "chat",
            "models",
            '[{"model": "openai/*", "label": "OpenAI"}]',
            ("chat", "models"),
            [{"model": "openai/*", "label": "OpenAI"}],
        ),
    ],
)
def test_section_editors_save_a_version_keeping_comments(
    gateway: IrisgateServer,
    page: Page,
    tab: str,
    field: str,
    value: str,
    path: tuple[str, ...],
    expected: Any,
) -> None:
    before = current(gateway)["version"]
    page.goto(gateway.url + f"/admin/settings/{tab}")
    page.locator(f'#panel-{tab} [data-field="{field}"]').first.fill(value)
    page.click(f'[data-save="{tab}"]')
    assert saved(page) > before
    node: Any = current(gateway)["value"]
    for key in path:
        node = node[key]
    assert node == expected
    assert_comments_kept(gateway)
    screenshot(page, f"admin-settings-{tab}")


def test_hook_secret_is_write_only_and_replaceable(gateway: IrisgateServer, page: Page) -> None:
    page.goto(gateway.url + "/admin/settings/hooks")
    secret = page.locator('fieldset.hooks[data-id="audit"] [data-field="apikey"]')
    expect(secret).to_have_value("")
    assert HOOK_KEY not in page.content()
    secret.fill("env:AUDIT_HOOK_KEY")
    page.click('[data-save="hooks"]')
    saved(page)
    assert current(gateway)["value"]["hooks"]["audit"]["apikey"] == "env:AUDIT_HOOK_KEY"
    assert_comments_kept(gateway)


def test_a_stale_save_and_a_lock_out_are_refused(gateway: IrisgateServer, page: Page) -> None:
    page.goto(gateway.url + "/admin/settings/quotas")
    capacity = page.locator('#panel-quotas [data-field="capacity"]').first
    expect(capacity).not_to_have_value("")
    # another admin saves meanwhile
    data = current(gateway)
    resp = api(gateway, ADMIN).put(
        "/api/config",
        json={
            "config": data["config"].replace("// per person", "// per person, per day"),
            "hash": data["hash"],
        },
    )
    assert resp.status_code == 200
    capacity.fill("$20.00")
    page.click('[data-save="quotas"]')
    expect(page.locator("#save-status")).to_contain_text("Someone saved a newer version")
    assert current(gateway)["value"]["quotas"]["daily:<user>"]["capacity"] != "$20.00"
    # reload, then try to take away our own admin role
    page.goto(gateway.url + "/admin/settings/grants")
    admin_cap = page.locator("fieldset.grant").first.locator("fieldset.capability").first
    admin_cap.locator('[data-field="role"]').select_option("user")
    page.click('[data-save="grants"]')
    expect(page.locator("#save-status")).to_contain_text("would remove your own admin role")
    assert api(gateway, ADMIN).get("/api/whoami").json()["role"] == "admin"


def test_an_invalid_value_is_shown_at_its_field(gateway: IrisgateServer, page: Page) -> None:
    page.goto(gateway.url + "/admin/settings/providers")
    page.click("#add-providers")
    card = page.locator("fieldset.providers").last
    card.locator("[name=id]").fill("local")
    card.locator('[data-field="baseurl"]').fill("not a url")
    card.locator('[data-field="models"]').fill("llama")
    page.click('[data-save="providers"]')
    expect(page.locator("#save-status")).to_contain_text("error")
    expect(card.locator('[data-key="baseurl"] .field-error')).not_to_be_empty()
    card.locator('[data-field="model_cost_map"]').fill("[not json")
    page.click('[data-save="providers"]')
    expect(card.locator('[data-key="model_cost_map"] .field-error')).to_contain_text(
        "not valid JSON"
    )


def test_raw_editor_and_history_at_their_aperture_addresses(
    gateway: IrisgateServer, page: Page
) -> None:
    page.goto(gateway.url + "/admin/settings/config")
    expect(page.locator("#panel-raw")).to_be_visible()
    expect(page.locator("#config-version")).not_to_have_text("")
    page.goto(gateway.url + "/ui/admin/settings/history")
    expect(page.locator("#history-table tbody tr").first).to_be_visible()
    response = page.goto(gateway.url + "/admin/settings/nonsense")
    assert response is not None and response.status == 404


def test_saving_a_value_is_checked_like_the_text(gateway: IrisgateServer) -> None:
    admin = api(gateway, ADMIN)
    data = current(gateway)
    both = admin.put(
        "/api/config", json={"config": data["config"], "value": {}, "hash": data["hash"]}
    )
    assert both.status_code == 400 and "not both" in both.json()["error"]
    wrong = admin.put("/api/config", json={"value": [1], "hash": data["hash"]})
    assert wrong.status_code == 400 and "'value'" in wrong.json()["error"]
    # a value naming an unknown provider format is refused with its path, nothing saved
    value = data["value"]
    value["providers"]["openai"]["authorization"] = "sometimes"
    bad = admin.put("/api/config", json={"value": value, "hash": data["hash"]})
    assert bad.status_code == 400
    assert [e["path"] for e in bad.json()["errors"]] == ["providers.openai.authorization"]
    assert current(gateway)["version"] == data["version"]
    # a secret left "[redacted]" keeps the stored one; the answer never holds it
    value["providers"]["openai"]["authorization"] = "bearer"
    assert value["providers"]["openai"]["apikey"] == "[redacted]"
    saved_value = admin.put("/api/config", json={"value": value, "hash": data["hash"]})
    assert saved_value.status_code == 200, saved_value.text
    assert PROVIDER_KEY not in saved_value.text
    assert current(gateway)["value"]["providers"]["openai"]["apikey"] == "[redacted]"


def test_rate_limit_editor_adds_a_limit_and_shows_a_bad_one_at_its_card(
    gateway: IrisgateServer, page: Page
) -> None:
    kept = comments(current(gateway)["config"])
    page.goto(gateway.url + "/admin/settings/rate_limits")
    existing = page.locator('fieldset.rate_limits[data-id="rpm:<user>"]')
    expect(existing.locator('[data-field="per"]')).to_have_value("minute")
    page.click("#add-rate_limits")
    card = page.locator("fieldset.rate_limits").last
    card.locator("[name=id]").fill("conc:<user>")
    card.locator('[data-field="concurrent"]').fill("4")
    page.click('[data-save="rate_limits"]')
    saved(page)
    limits = current(gateway)["value"]["rate_limits"]
    assert limits["conc:<user>"] == {"concurrent": 4}
    assert limits["rpm:<user>"]["per"] == "minute"
    assert comments(current(gateway)["config"]) == kept
    screenshot(page, "admin-settings-rate-limits")

    page.click("#add-rate_limits")
    bad = page.locator("fieldset.rate_limits").last
    bad.locator("[name=id]").fill("both")
    bad.locator('[data-field="requests"]').fill("5")
    bad.locator('[data-field="tokens"]').fill("5")
    bad.locator('[data-field="per"]').select_option("minute")
    page.click('[data-save="rate_limits"]')
    expect(page.locator("#save-status")).to_contain_text("error")
    expect(bad.locator('[data-key=""] .field-error')).to_contain_text(
        'must have exactly one of "requests", "tokens" or "concurrent"'
    )
    assert "both" not in current(gateway)["value"]["rate_limits"]


def test_flag_editor_turns_the_chat_off_and_on_keeping_comments(
    gateway: IrisgateServer, page: Page
) -> None:
    kept = comments(current(gateway)["config"])
    page.goto(gateway.url + "/admin/settings/flags")
    value = page.locator('fieldset.flags[data-id="chat_ui"] [data-field="value"]')
    expect(value).to_have_value("true")
    value.fill("false")
    page.click('[data-save="flags"]')
    saved(page)
    assert current(gateway)["value"]["flags"] == {"chat_ui": {"value": False}}
    assert comments(current(gateway)["config"]) == kept
    off = api(gateway, ADMIN).get("/api/chat/models")
    assert off.status_code == 403 and "flags.chat_ui is false" in off.json()["error"]
    page.reload()
    page.locator('fieldset.flags[data-id="chat_ui"] [data-field="value"]').fill("true")
    page.click('[data-save="flags"]')
    saved(page)
    assert current(gateway)["value"]["flags"] == {"chat_ui": {"value": True}}
    # on again (an earlier test may have switched chat off in a grant: that reason remains)
    on = api(gateway, ADMIN).get("/api/chat/models")
    assert on.status_code == 200 or "flags.chat_ui" not in on.json()["error"]
