"""Session Logs show what each request asked for: a session holding a chat request and an
embedding lists both with their kind, the kind filter narrows the session's requests, and a
request's capture names its kind (and its unit when priced per image)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import ADMIN, api, dashboard_config, openai_as, screenshot, wait_recorded
from playwright.sync_api import Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

SESSION = "kinds-session-1"


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    openai = config["providers"]["openai"]
    openai["models"] += ["text-embedding-3-small", "dall-e-2"]
    openai["compatibility"].update(openai_embeddings=True, openai_images=True)
    server = IrisgateServer(
        json.dumps(config), data_dir=tmp_path_factory.mktemp("irisgate-kinds"), identity="serve"
    )
    with server:
        client = openai_as(server, ADMIN)
        session = {"x-session-id": SESSION}
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "a chat turn"}],
            extra_headers=session,
        )
        client.embeddings.create(
            model="text-embedding-3-small", input="embed me", extra_headers=session
        )
        raw = client.images.with_raw_response.generate(
            prompt="a blue kite", n=2, extra_headers=session
        )
        wait_recorded(server, raw.headers["x-irisgate-request-id"])
        yield server


def test_requests_api_filters_by_kind(gateway: IrisgateServer) -> None:
    admin = api(gateway, ADMIN)
    rows = admin.get("/api/requests", params={"session": SESSION}).json()["requests"]
    assert sorted(r["kind"] for r in rows) == ["chat", "embedding", "image"]
    embeddings = admin.get("/api/requests", params={"kind": "embedding"}).json()["requests"]
    assert [r["model"] for r in embeddings] == ["text-embedding-3-small"]
    refused = admin.get("/api/requests", params={"kind": "poetry"})
    assert refused.status_code == 400
    assert "'kind' must be one of chat, embedding" in refused.json()["error"]


def test_session_logs_show_and_filter_kinds(gateway: IrisgateServer, admin_page: Page) -> None:
    page = admin_page
    page.goto(gateway.url + "/ui/admin/sessions")
    session = page.locator("#sessions-table tbody tr").first
    session.locator("button").click()
    requests = page.locator("#requests-table tbody tr")
    expect(requests).to_have_count(3)
    kinds = sorted(requests.locator("td:nth-child(2)").all_inner_texts())
    assert kinds == ["chat", "embedding", "image"]
    page.select_option("#session-filters select[name=kind]", "image")
    page.click("#session-filters button[type=submit]")
    page.locator("#sessions-table tbody tr").first.locator("button").click()
    expect(requests).to_have_count(1)
    expect(requests.first).to_contain_text("dall-e-2")
    requests.first.locator("button").click()
    facts = page.locator("#capture-facts")
    expect(facts).to_contain_text("image")
    expect(facts).to_contain_text("Priced per")
    screenshot(page, "admin-session-kinds")


def test_usage_overview_filters_by_kind(gateway: IrisgateServer, admin_page: Page) -> None:
    admin = api(gateway, ADMIN)
    embeddings = admin.get("/api/usage/summary", params={"kind": "embedding"}).json()
    assert embeddings["totals"]["requests"] == 1
    assert [m["model"] for m in embeddings["models"]] == ["text-embedding-3-small"]
    assert admin.get("/api/usage/summary", params={"kind": "poetry"}).status_code == 400
    page = admin_page
    page.goto(gateway.url + "/ui/usage")
    expect(page.locator("#stat-tokens")).not_to_have_text("\N{EN DASH}")
    every = page.inner_text("#stat-tokens")
    page.select_option("#filters select[name=kind]", "embedding")
    page.click("#filters button[type=submit]")
    expect(page.locator("#stat-tokens")).to_have_text("2")  # "embed me": two words
    assert page.url.endswith("?kind=embedding")
    assert every != "2"
