"""Dashboard fixtures: a real irisgate in `serve` mode, traffic through it from the official
SDKs, and Chromium (Debian's /usr/bin/chromium) driven by Playwright as a given user.

In `serve` mode irisgate trusts Tailscale Serve's identity headers from loopback peers, so a
browser context whose `extra_http_headers` carry `Tailscale-User-Login` is that user, exactly
as behind `tailscale serve`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

ADMIN = "alice@example.com"
USER = "bob@example.com"
#: extra users, so the top-users table has more than one page
CROWD = [f"user{i:02d}@example.com" for i in range(12)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

# `expect(...)` waits for its condition; Playwright's default of 5 s (unlike the 20 s of the
# contexts' actions below) failed a page that was merely slow on a loaded 2-core machine. A
# condition that holds returns at once: only a stuck test waits this long.
expect.set_options(timeout=20_000)


def dashboard_config(upstream: str) -> str:
    config: dict[str, Any] = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": "sk-upstream-openai-secret",
                "models": ["gpt-4o-mini", "gpt-5-mini"],
                "compatibility": {"openai_chat": True, "openai_responses": True},
            },
            "anthropic": {
                "baseurl": upstream,
                "apikey": "sk-ant-upstream-secret",
                "authorization": "x-api-key",
                "models": ["claude-sonnet-4-5", "claude-haiku-4-5"],
                "compatibility": {"anthropic_messages": True},
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
    return "// dashboard tests\n" + json.dumps(config, indent=2)


def identity_headers(login: str) -> dict[str, str]:
    return {
        "Tailscale-User-Login": login,
        "Tailscale-User-Name": login.split("@", maxsplit=1)[0].title(),
    }


def api(gw: IrisgateServer, login: str) -> httpx2.Client:
    return httpx2.Client(base_url=gw.url, headers=identity_headers(login), timeout=30)


def openai_as(gw: IrisgateServer, login: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key="unused",
        default_headers=identity_headers(login),
        max_retries=0,
    )


def anthropic_as(gw: IrisgateServer, login: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.url, api_key="unused", default_headers=identity_headers(login), max_retries=0
    )


def chat(gw: IrisgateServer, login: str, model: str = "gpt-4o-mini", text: str = "hi") -> str:
    reply = openai_as(gw, login).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return reply.headers["x-irisgate-request-id"]


def wait_recorded(gw: IrisgateServer, request_id: str) -> dict[str, Any]:
    client = api(gw, ADMIN)
    deadline = time.monotonic() + 30  # only a stuck test waits this long
    while time.monotonic() < deadline:
        resp = client.get(f"/api/requests/{request_id}")
        if resp.status_code == 200:
            data: dict[str, Any] = resp.json()
            return data
        time.sleep(0.05)
    raise AssertionError(f"{request_id} was not recorded")


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """irisgate in serve mode with traffic from several users, models and SDKs."""
    server = IrisgateServer(
        dashboard_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate-web"),
        identity="serve",
    )
    with server:
        last = ""
        for i, login in enumerate(CROWD):
            for _ in range(i % 3 + 1):
                last = chat(gw=server, login=login, text=f"question from {login}")
        chat(server, ADMIN, "gpt-5-mini", "admin question")
        anthropic_as(server, USER).messages.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "bob asks"}],
        )
        last = chat(server, USER, "gpt-4o-mini", "bob again")
        wait_recorded(server, last)
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module. Not for the session: while the sync Playwright runs,
    its event loop counts as running in this thread, so the async tests run after these in
    the same process (tests/wire, say) could not start theirs."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def context_as(browser: Browser, login: str, **kwargs: Any) -> BrowserContext:
    context = browser.new_context(
        extra_http_headers=identity_headers(login),
        viewport=kwargs.pop("viewport", {"width": 1280, "height": 860}),
        **kwargs,
    )
    context.set_default_timeout(20_000)
    return context


@pytest.fixture
def admin_page(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, ADMIN, accept_downloads=True)
    yield context.new_page()
    context.close()


@pytest.fixture
def user_page(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, USER)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def canvas_drawn(page: Page, selector: str) -> bool:
    """Whether the chart in `selector` has a canvas with non-blank pixels."""
    page.wait_for_selector(f"{selector} canvas")
    drawn: bool = page.eval_on_selector(
        f"{selector} canvas",
        """canvas => {
            const ctx = canvas.getContext("2d");
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
            return false;
        }""",
    )
    return drawn
