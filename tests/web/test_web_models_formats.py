"""The Models page with a provider of every API format: formats, prices, and a Test button
that round-trips through irisgate for each (Gemini, Vertex Gemini and Claude, Bedrock
Converse and InvokeModel, OpenAI Responses-only, Anthropic)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN, USER, api, context_as, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

BEDROCK_CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
BEDROCK_NOVA = "amazon.nova-lite-v1:0"
VERTEX_CLAUDE = "claude-sonnet-4-5@20250929"
#: model -> the API format its Test button speaks
EXPECTED = {
    "gemini-2.5-flash": "gemini_generate_content",
    "gemini-2.5-pro": "google_generate_content",
    VERTEX_CLAUDE: "google_raw_predict",
    BEDROCK_CLAUDE: "bedrock_converse",
    BEDROCK_NOVA: "bedrock_converse",
    "claude-haiku-4-5": "anthropic_messages",
    "gpt-5-mini": "openai_responses",
}


def _config(upstream: str) -> str:
    def provider(models: list[str], *flags: str, **extra: Any) -> dict[str, Any]:
        return {
            "baseurl": upstream,
            "apikey": "upstream-secret",
            "models": models,
            "compatibility": dict.fromkeys(flags, True),
            **extra,
        }

    google = {"authorization": "x-goog-api-key"}
    providers = {
        "gemini": provider(["gemini-2.5-flash"], "gemini_generate_content", **google),
        "vertex": provider(
            ["gemini-2.5-pro", VERTEX_CLAUDE],
            "google_generate_content",
            "google_raw_predict",
            **google,
        ),
        "bedrock": provider(
            [BEDROCK_CLAUDE, BEDROCK_NOVA],
            "bedrock_model_invoke",
            "bedrock_converse",
            cost_basis="bedrock-us",
        ),
        "anthropic": provider(
            ["claude-haiku-4-5"], "anthropic_messages", authorization="x-api-key"
        ),
        "responses-only": provider(["gpt-5-mini"], "openai_responses"),
    }
    grants = [
        {"src": [ADMIN], "app": {"tailscale.com/cap/aperture": [{"role": "admin"}]}},
        {"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "user"}, {"models": "**"}]}},
    ]
    return json.dumps({"providers": providers, "grants": grants}, indent=2)


@pytest.fixture(scope="module")
def every_format(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        _config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate-formats"),
        identity="serve",
    )
    with server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, USER)
    yield context.new_page()
    context.close()


def test_every_format_shows_prices_and_its_test_button_round_trips(
    every_format: IrisgateServer, page: Page
) -> None:
    page.goto(every_format.url + "/ui/models")
    for model, fmt in EXPECTED.items():
        row = page.locator(f'tr[data-model="{model}"]')
        expect(row).to_contain_text(fmt)
        if model != BEDROCK_NOVA:  # priced by the pricing data (Nova Lite is not in it)
            expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^\$\d"))
        row.locator("button.test").click()
        result = row.locator("xpath=following-sibling::tr[1]/td")
        expect(result).to_contain_text("OK")
        expect(result.locator(".test-answer")).to_contain_text("tok0")
        expect(result.locator(".test-cost")).not_to_contain_text("waiting")
    screenshot(page, "user-models-every-format")
    # every Test went through irisgate as the viewer, in the format the page said
    records = api(every_format, USER).get("/api/requests", params={"limit": 50}).json()
    formats = {(r["model"], r["api_format"]) for r in records["requests"]}
    assert set(EXPECTED.items()) <= formats
    assert all(r["login_name"] == USER and r["status"] == 200 for r in records["requests"])
