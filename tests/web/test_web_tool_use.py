"""The Tool Use page and `GET /api/usage/tools` through a real irisgate: tool calls the fake
model asks for in answers to the official OpenAI SDK, MCP tool calls through /v1/mcp with
the official MCP client, and requests through an HTTP connector; then the API's numbers
(admins see all, users their own) and the page in Chromium."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from conftest import (
    ADMIN,
    USER,
    api,
    context_as,
    dashboard_config,
    identity_headers,
    openai_as,
    screenshot,
    wait_recorded,
)
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from playwright.sync_api import Browser, expect

from irisgate.testing import FakeHttpApi, FakeLLM, McpToolServer
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


def _run(calls: Coroutine[Any, Any, None]) -> None:
    """Run `calls` to the end on an event loop of its own thread: the sync Playwright of
    the other tests in this folder may hold this thread's."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, calls).result()


@pytest.fixture(scope="module")
def docs() -> Iterator[McpToolServer]:
    with McpToolServer("docs") as server:
        yield server


@pytest.fixture(scope="module")
def site() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as fake:
        yield fake


async def _mcp_calls(gw: IrisgateServer, login: str, session: str, n: int) -> None:
    headers = {**identity_headers(login), "x-session-id": session}
    async with httpx2.AsyncClient(timeout=60, headers=headers) as http:
        transport = streamable_http_client(gw.url + "/v1/mcp", http_client=http)
        async with Client(transport, cache=None) as client:
            for i in range(n):
                await client.call_tool("docs_echo", {"text": f"call {i}"})


def _model_tool_call(gw: IrisgateServer, login: str, session: str) -> str:
    reply = openai_as(gw, login).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "please call tool lookup"}],
        tools=[TOOL],  # type: ignore[list-item]
        extra_headers={"x-session-id": session},
    )
    assert reply.parse().choices[0].message.tool_calls
    return reply.headers["x-irisgate-request-id"]


def _count(gw: IrisgateServer, want: int) -> dict[str, Any]:
    """The admin's report once `want` tool calls are recorded (records are written in
    batches)."""
    client = api(gw, ADMIN)
    for _ in range(600):
        data: dict[str, Any] = client.get("/api/usage/tools").json()
        if data["totals"]["calls"] >= want:
            return data
        wait_recorded(gw, _model_tool_call_probe(gw))
    raise AssertionError(f"only {data['totals']} tool calls recorded, want {want}")


def _model_tool_call_probe(gw: IrisgateServer) -> str:
    # a plain request (no tool call) whose record follows every earlier one in the batch
    reply = openai_as(gw, "probe@example.com").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "probe"}]
    )
    return reply.headers["x-irisgate-request-id"]


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM,
    docs: McpToolServer,
    site: FakeHttpApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["connectors"] = {
        "servers": {
            "docs": {"protocol": "mcp", "url": docs.url},
            "site": {"protocol": "http", "url": site.base_url + "/"},
        }
    }
    config["grants"].append(
        {"src": ["*"], "app": {APERTURE: [{"connectors": ["docs/*", "site/*"]}]}}
    )
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-tool-use"),
        identity="serve",
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true"},
    )
    with server:
        # bob: 3 MCP calls and 1 model-side call in session bob-1, 2 HTTP connector requests
        _run(_mcp_calls(server, USER, "bob-1", 3))
        _model_tool_call(server, USER, "bob-1")
        with httpx2.Client(base_url=server.url, headers=identity_headers(USER)) as http:
            for path in ("items", "users"):
                assert http.get(f"/v1/connectors/site/{path}").status_code == 200
        # alice: 1 MCP call and 2 model-side calls in session alice-1
        _run(_mcp_calls(server, ADMIN, "alice-1", 1))
        _model_tool_call(server, ADMIN, "alice-1")
        _model_tool_call(server, ADMIN, "alice-1")
        _count(server, 9)
        yield server


def _by_key(data: dict[str, Any]) -> dict[tuple[str, str, str, str], int]:
    return {(t["kind"], t["connector"], t["tool"], t["model"]): t["calls"] for t in data["tools"]}


def test_admin_sees_every_tool_call_by_kind_tool_and_session(gateway: IrisgateServer) -> None:
    data = api(gateway, ADMIN).get("/api/usage/tools").json()
    assert data["totals"] == {"mcp": 4, "http": 2, "model": 3, "calls": 9}
    assert _by_key(data) == {
        ("mcp", "docs", "echo", ""): 4,
        ("http", "site", "", ""): 2,
        ("model", "", "", "gpt-4o-mini"): 3,
    }
    assert sum(d["mcp"] + d["http"] + d["model"] for d in data["days"]) == 9
    sessions = {s["session_id"]: s for s in data["sessions"]}
    assert sessions["bob-1"]["login_name"] == USER
    assert (sessions["bob-1"]["mcp"], sessions["bob-1"]["model"]) == (3, 1)
    assert (sessions["alice-1"]["mcp"], sessions["alice-1"]["model"]) == (1, 2)


def test_filters_by_user_model_and_tool(gateway: IrisgateServer) -> None:
    admin = api(gateway, ADMIN)
    bob = admin.get("/api/usage/tools", params={"user": USER}).json()
    assert bob["totals"] == {"mcp": 3, "http": 2, "model": 1, "calls": 6}
    model = admin.get("/api/usage/tools", params={"model": "gpt-4o-mini"}).json()
    assert model["totals"] == {"mcp": 0, "http": 0, "model": 3, "calls": 3}
    echo = admin.get("/api/usage/tools", params={"tool": "echo"}).json()
    assert echo["totals"] == {"mcp": 4, "http": 0, "model": 0, "calls": 4}
    site = admin.get("/api/usage/tools", params={"tool": "site", "user": USER}).json()
    assert site["totals"] == {"mcp": 0, "http": 2, "model": 0, "calls": 2}
    one = admin.get("/api/usage/tools", params={"session": "alice-1"}).json()
    assert one["totals"] == {"mcp": 1, "http": 0, "model": 2, "calls": 3}
    assert [s["session_id"] for s in one["sessions"]] == ["alice-1"]
    too_long = admin.get("/api/usage/tools", params={"tool": "x" * 201})
    assert too_long.status_code == 400
    assert "at most 200" in too_long.json()["error"]


def test_users_see_only_their_own_tool_calls(gateway: IrisgateServer) -> None:
    bob = api(gateway, USER)
    own = bob.get("/api/usage/tools").json()
    assert own["user"] == USER
    assert own["totals"] == {"mcp": 3, "http": 2, "model": 1, "calls": 6}
    assert {s["session_id"] for s in own["sessions"]} == {"bob-1"}
    other = bob.get("/api/usage/tools", params={"user": ADMIN})
    assert other.status_code == 403
    assert "only admins" in other.json()["error"]


def test_tool_use_page(gateway: IrisgateServer, browser: Browser) -> None:
    context = context_as(browser, ADMIN)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(gateway.url + "/ui/tool-use")
        expect(page.locator('nav a[href="/ui/tool-use"]')).to_have_attribute("aria-current", "page")
        expect(page.locator("#tool-total")).to_have_text("9")
        expect(page.locator("#tool-mcp")).to_have_text("4")
        expect(page.locator("#tool-http")).to_have_text("2")
        expect(page.locator("#tool-model")).to_have_text("3")
        page.wait_for_selector("#chart-tools canvas")
        rows = page.locator("#tools-table tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator('#tools-table tr[data-kind="mcp"] td.calls')).to_have_text("4")
        expect(page.locator('#tool-sessions-table tr[data-session="bob-1"] td.calls')).to_have_text(
            "4"
        )
        screenshot(page, "tool-use-admin")
        page.fill("input[name=user]", USER)
        page.fill("input[name=tool]", "echo")
        page.click("#filters button[type=submit]")
        expect(page.locator("#tool-total")).to_have_text("3")
        expect(page).to_have_url(f"{gateway.url}/ui/tool-use?user=bob%40example.com&tool=echo")
        assert errors == []
    finally:
        context.close()
    context = context_as(browser, USER)
    page = context.new_page()
    try:
        page.goto(gateway.url + "/ui/tool-use")
        expect(page.locator("#tool-total")).to_have_text("6")
        assert page.locator("input[name=user]").count() == 0
        screenshot(page, "tool-use-user")
    finally:
        context.close()
