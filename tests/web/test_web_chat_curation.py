"""The chat's model picker curated by the config (`chat.models`), in Chromium against a real
irisgate and the streaming FakeLLM: only the models the admin listed, of those the user is
granted, in the admin's order and with the admin's labels; a model left out cannot be used."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN, USER, api, context_as, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
EVERYDAY = "Everyday <i>chat</i>"


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["grants"] = [
        {"src": [ADMIN], "app": {APERTURE: [{"role": "admin"}, {"models": "**"}]}},
        {
            "src": ["*"],
            "app": {
                APERTURE: [
                    {"role": "user"},
                    {"models": ["openai/**", "anthropic/claude-sonnet-4-5"]},
                ]
            },
        },
    ]
    config["chat"] = {
        "models": [
            {"model": "anthropic/claude-*", "label": "Claude"},
            {"model": "openai/gpt-4o-mini", "label": EVERYDAY},
            {"model": "nowhere/*", "label": "Not served"},
        ]
    }
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-chat-curation"),
        identity="serve",
    )
    with server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


@pytest.fixture
def bob(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, USER)
    yield context.new_page()
    context.close()


def options(page: Page) -> list[tuple[str, str]]:
    found: list[list[str]] = page.eval_on_selector_all(
        "#model-select option", "os => os.map(o => [o.value, o.textContent])"
    )
    return [(value, label) for value, label in found]


def test_the_picker_shows_only_curated_granted_models_with_their_labels(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    page = bob
    page.goto(f"{gateway.url}/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # claude-haiku-4-5 is curated but not granted to bob; gpt-5-mini granted but not curated
    expect(page.locator("#model-select option")).to_have_count(2)
    assert options(page) == [
        ("anthropic/claude-sonnet-4-5", "Claude"),
        ("openai/gpt-4o-mini", EVERYDAY),
    ]
    assert page.locator("#model-select option i").count() == 0  # a label is text
    title = page.locator('#model-select option[value="openai/gpt-4o-mini"]').get_attribute("title")
    assert title is not None and title.startswith("openai/gpt-4o-mini — OpenAI Chat Completions")
    page.fill("#model-search", "everyday")
    assert options(page) == [("openai/gpt-4o-mini", EVERYDAY)]
    screenshot(page, "chat-curation")

    page.fill("#prompt", "hello from the curated picker")
    page.click("#send")
    expect(page.locator(".msg.assistant .meta")).to_be_visible()
    assert fake_llm.wait_for(
        lambda: any(r.path == "/v1/chat/completions" for r in fake_llm.requests)
    )
    [asked] = [r.json for r in fake_llm.requests if r.path == "/v1/chat/completions"]
    assert asked["model"] == "gpt-4o-mini"


def test_curation_narrows_the_api_and_a_model_left_out_is_refused(
    gateway: IrisgateServer,
) -> None:
    bob_models = api(gateway, USER).get("/api/chat/models").json()["models"]
    assert [(m["id"], m["label"]) for m in bob_models] == [
        ("anthropic/claude-sonnet-4-5", "Claude"),
        ("openai/gpt-4o-mini", EVERYDAY),
    ]
    alice_models = api(gateway, ADMIN).get("/api/chat/models").json()["models"]
    assert [(m["id"], m["label"]) for m in alice_models] == [
        ("anthropic/claude-sonnet-4-5", "Claude"),
        ("anthropic/claude-haiku-4-5", "Claude"),
        ("openai/gpt-4o-mini", EVERYDAY),
    ]
    bob_api = api(gateway, USER)
    cid = bob_api.post("/api/chat/conversations", json={"title": "x"}).json()["id"]
    bob_api.post(f"/api/chat/conversations/{cid}/messages", json={"role": "user", "content": "hi"})
    refused = bob_api.post(
        f"/api/chat/conversations/{cid}/round", json={"model": "openai/gpt-5-mini"}
    )
    assert refused.status_code == 404
    assert refused.json()["error"] == "model 'openai/gpt-5-mini' is not one of your chat models"
    # the gateway itself is not curated: bob's own clients still reach gpt-5-mini
    direct = bob_api.post(
        "/v1/chat/completions",
        json={"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert direct.status_code == 200


@pytest.mark.parametrize("look", ["phone", "dark"])
def test_the_curated_picker_at_phone_width_and_in_dark_mode(
    gateway: IrisgateServer, browser: Browser, look: str
) -> None:
    settings: dict[str, Any] = (
        {"viewport": {"width": 390, "height": 844}} if look == "phone" else {"color_scheme": "dark"}
    )
    context = context_as(browser, USER, **settings)
    page = context.new_page()
    page.goto(f"{gateway.url}/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#model-select")).to_be_visible()
    assert [label for _, label in options(page)] == ["Claude", EVERYDAY]
    screenshot(page, f"chat-curation-{look}")
    context.close()
