"""Chat projects and Stop during a tool call, in Chromium against a real irisgate, the
streaming FakeLLM and a real MCP server (the `mcp` SDK's) as a connector.

Projects: made, renamed and deleted on the page; their instructions reach the upstream
request before a conversation's own; their tool access narrows the Tools menu and the calls
irisgate runs; they are their owner's only. Stop while a tool runs cancels the upstream MCP
call (the server sees the cancellation), ends the turn and records the call as stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN, USER, api, context_as, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM, McpToolServer
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def docs() -> Iterator[McpToolServer]:
    with McpToolServer("docs", slow_tool=True) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, docs: McpToolServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["connectors"] = {"servers": {"docs": {"protocol": "mcp", "url": docs.url}}}
    config["grants"] += [
        {"src": [ADMIN], "app": {APERTURE: [{"connectors": ["docs/*"]}]}},
        {"src": [USER], "app": {APERTURE: [{"connectors": ["docs/echo", "docs/slow"]}]}},
    ]
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-chat-projects"),
        identity="serve",
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true"},
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


def open_chat(page: Page, gw: IrisgateServer, model: str = "gpt-4o-mini") -> None:
    page.goto(f"{gw.url}/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("body")).to_have_attribute("data-tools", "ready")
    page.fill("#model-search", model)
    page.select_option("#model-select", index=0)


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def conversation_id(page: Page) -> str:
    cid: str = page.evaluate("location.hash").lstrip("#")
    return cid


def received(fake: FakeLLM, count: int) -> list[dict[str, Any]]:
    """The chat requests the fake received, once it has `count` of them."""

    def bodies() -> list[dict[str, Any]]:
        return [r.json for r in fake.requests if r.path == CHAT]

    assert fake.wait_for(lambda: len(bodies()) >= count), bodies()
    return bodies()


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30  # only a stuck test waits this long
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def project_row(page: Page, name: str) -> Any:
    return page.locator("#project-list > li").filter(
        has=page.locator(".project-name", has_text=name)
    )


def test_a_project_groups_conversations_and_sends_its_instructions_first(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    page = bob
    open_chat(page, gateway)
    page.click("#new-project")
    expect(page.locator("#project-panel")).to_be_visible()
    page.fill("#project-name", "Launch <b>plan</b>")
    page.fill("#project-instructions", "Answer as the launch team.")
    page.check('#project-tool-list input[value="docs_echo"]')
    expect(page.locator("#project-tools-some")).to_be_checked()
    page.click("#project-save")
    expect(page.locator("#project-panel")).to_be_hidden()
    row = project_row(page, "Launch <b>plan</b>")
    expect(row).to_have_count(1)
    assert row.locator("b").count() == 0  # the name is text, never markup
    expect(page.locator("#project-select")).to_have_value(row.get_attribute("data-project") or "")

    # the Tools menu offers what the project allows, of what bob is granted
    page.click("#tools-toggle")
    expect(page.locator("#tool-list input")).to_have_count(1)
    expect(page.locator("#tool-list")).to_contain_text("docs_echo")
    expect(page.locator("#tool-list")).not_to_contain_text("docs_slow")

    page.click("#instructions-toggle")
    expect(page.locator("#project-note")).to_contain_text("Answer as the launch team.")
    page.fill("#instructions", "Be brief.")
    send(page, "When do we launch?")
    expect(page.locator(".msg.assistant .meta")).to_be_visible()
    [body] = received(fake_llm, 1)
    assert body["messages"][0] == {
        "role": "system",
        "content": "Answer as the launch team.\n\nBe brief.",
    }
    assert body["messages"][-1]["content"] == "When do we launch?"

    # the conversation is listed in its project, not among the loose chats
    expect(row.locator(".conv-list li")).to_have_count(1)
    expect(row.locator(".conv-open")).to_have_text("When do we launch?")
    expect(page.locator("#conv-list li")).to_have_count(0)
    screenshot(page, "chat-projects")

    # stored: the project and its conversation, bob's only
    bob_api = api(gateway, USER)
    [project] = bob_api.get("/api/chat/projects").json()["projects"]
    assert project["name"] == "Launch <b>plan</b>"
    assert (project["tools"], project["conversations"]) == (["docs_echo"], 1)
    cid = conversation_id(page)
    assert bob_api.get(f"/api/chat/conversations/{cid}").json()["project_id"] == project["id"]

    # a tool switched on by hand in the conversation is refused when the project does not
    # allow it (and was never offered)
    bob_api.patch(f"/api/chat/conversations/{cid}", json={"tools": ["docs_echo", "docs_slow"]})
    call = f"/api/chat/conversations/{cid}/tools/call"
    refused = bob_api.post(call, json={"name": "docs_slow", "arguments": {}})
    assert refused.status_code == 403
    assert "its project does not allow it" in refused.json()["error"]
    allowed = bob_api.post(call, json={"name": "docs_echo", "arguments": {"text": "hi"}})
    assert allowed.json()["output"] == "docs: hi"


def test_projects_are_private_bounded_and_deleting_one_keeps_its_conversations(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    bob_api, alice_api = api(gateway, USER), api(gateway, ADMIN)
    made = bob_api.post("/api/chat/projects", json={"name": "Research", "instructions": "Cite."})
    assert made.status_code == 201
    project = made.json()
    assert project["tools"] is None  # every tool bob is granted
    # another user sees nothing of it and cannot file a conversation into it
    assert all(
        p["id"] != project["id"] for p in alice_api.get("/api/chat/projects").json()["projects"]
    )
    assert alice_api.get(f"/api/chat/projects/{project['id']}").status_code == 404
    assert alice_api.delete(f"/api/chat/projects/{project['id']}").status_code == 404
    assert (
        alice_api.patch(f"/api/chat/projects/{project['id']}", json={"name": "x"}).status_code
        == 404
    )
    alice_conv = alice_api.post("/api/chat/conversations", json={"title": "mine"}).json()
    filed = alice_api.patch(
        f"/api/chat/conversations/{alice_conv['id']}", json={"project_id": project["id"]}
    )
    assert filed.status_code == 404 and "not found" in filed.json()["error"]
    # bounded, with errors naming the field
    long_name = bob_api.post("/api/chat/projects", json={"name": "n" * 101})
    assert long_name.status_code == 400
    assert long_name.json()["error"] == "'name' is longer than 100 characters"
    blank = bob_api.post("/api/chat/projects", json={"name": "   "})
    assert blank.json()["error"] == "'name' must be a non-empty string"
    long_text = bob_api.patch(
        f"/api/chat/projects/{project['id']}", json={"instructions": "i" * 20_001}
    )
    assert long_text.status_code == 400
    assert long_text.json()["error"] == "'instructions' is longer than 20000 characters"
    bad_tools = bob_api.post("/api/chat/projects", json={"name": "t", "tools": "docs_echo"})
    assert bad_tools.json()["error"] == "'tools' must be a list of tool names"

    # on the page: move a loose conversation into the project, rename it, delete it
    loose = bob_api.post("/api/chat/conversations", json={"title": "Loose notes"}).json()
    page = bob
    page.goto(f"{gateway.url}/chat/#{loose['id']}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#chat-title")).to_have_text("Loose notes")
    expect(page.locator("#conv-list .conv-open", has_text="Loose notes")).to_have_count(1)
    page.select_option("#project-select", project["id"])
    row = project_row(page, "Research")
    expect(row.locator(".conv-open", has_text="Loose notes")).to_have_count(1)
    expect(page.locator("#conv-list .conv-open", has_text="Loose notes")).to_have_count(0)
    moved = bob_api.get(f"/api/chat/conversations/{loose['id']}").json()
    assert moved["project_id"] == project["id"]

    row.locator(".project-edit").click()
    expect(page.locator("#project-name")).to_have_value("Research")
    expect(page.locator("#project-tools-all")).to_be_checked()
    page.fill("#project-name", "Research 2")
    page.click("#project-save")
    renamed = project_row(page, "Research 2")
    expect(renamed).to_have_count(1)
    assert bob_api.get(f"/api/chat/projects/{project['id']}").json()["name"] == "Research 2"

    renamed.locator(".project-edit").click()
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#project-delete")
    expect(project_row(page, "Research 2")).to_have_count(0)
    assert dialogs == [
        'Delete project "Research 2"? Its 1 conversation will be kept, outside any project.'
    ]
    expect(page.locator("#conv-list .conv-open", has_text="Loose notes")).to_have_count(1)
    expect(page.locator("#project-select")).to_have_value("")
    assert bob_api.get(f"/api/chat/projects/{project['id']}").status_code == 404
    kept = bob_api.get(f"/api/chat/conversations/{loose['id']}").json()
    assert kept["project_id"] == ""


@pytest.mark.parametrize("look", ["phone", "dark"])
def test_projects_at_phone_width_and_in_dark_mode(
    gateway: IrisgateServer, browser: Browser, look: str
) -> None:
    api(gateway, USER).post("/api/chat/projects", json={"name": f"Shown {look}"})
    options: dict[str, Any] = (
        {"viewport": {"width": 390, "height": 844}} if look == "phone" else {"color_scheme": "dark"}
    )
    context = context_as(browser, USER, **options)
    page = context.new_page()
    page.goto(f"{gateway.url}/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    if look == "phone":
        expect(page.locator(".chat-side")).to_be_hidden()
        page.click("#side-toggle")
    expect(project_row(page, f"Shown {look}")).to_be_visible()
    expect(page.locator("#project-select")).to_be_visible()
    screenshot(page, f"chat-projects-{look}")
    project_row(page, f"Shown {look}").locator(".project-edit").click()
    expect(page.locator("#project-panel")).to_be_visible()
    expect(page.locator("#project-name")).to_have_value(f"Shown {look}")
    expect(page.locator("#project-save")).to_be_in_viewport()
    screenshot(page, f"chat-project-editor-{look}")
    page.click("#project-cancel")
    expect(page.locator("#project-panel")).to_be_hidden()
    if look == "phone":
        page.click("#side-toggle")
    if look == "phone":
        project_row(page, f"Shown {look}").locator(".project-new-chat").click()
        expect(page.locator(".chat-side")).to_be_hidden()
        expect(page.locator("#project-select option:checked")).to_have_text(
            f"Project: Shown {look}"
        )
    context.close()


def test_stop_during_a_tool_call_cancels_the_upstream_call(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM, docs: McpToolServer
) -> None:
    page = bob
    fake_llm.reply_text = "never asked for"
    open_chat(page, gateway)
    page.click("#tools-toggle")
    page.check('#tool-list input[value="docs_slow"]')
    cancelled_before = docs.slow_cancelled
    docs.slow_started.clear()
    send(page, "Please call tool slow")
    call = page.locator('.msg.assistant .tool-call[data-tool="docs_slow"]')
    expect(call).to_have_attribute("data-state", "running")
    assert docs.slow_started.wait(30), "the slow tool never started"
    page.click("#stop")

    # the upstream MCP server saw its call cancelled
    wait_until(lambda: docs.slow_cancelled == cancelled_before + 1, "the tool call cancelled")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".outcome")).to_have_text("cancelled")
    call = answer.locator('.tool-call[data-tool="docs_slow"]')
    expect(call).to_have_attribute("data-state", "stopped")
    expect(call.locator("summary")).to_have_text("Tool docs_slow · stopped")
    expect(call.locator(".tool-output")).to_have_text(
        "stopped by the user: the call was cancelled", use_inner_text=False
    )
    expect(page.locator("#chat-status")).to_have_text("Stopped.")
    expect(page.locator("#stop")).to_be_hidden()
    call.locator("summary").click()
    screenshot(page, "chat-tool-stopped")

    # the conversation keeps the call as stopped; the model was asked once, not again
    cid = conversation_id(page)
    stored = api(gateway, USER).get(f"/api/chat/conversations/{cid}").json()
    last = stored["messages"][-1]
    assert last["outcome"] == "cancelled"
    [round_] = last["tool_calls"]
    assert round_["calls"][0]["output"] == "stopped by the user: the call was cancelled"
    assert round_["calls"][0]["is_error"] is True
    assert len(received(fake_llm, 1)) == 1
    # and irisgate recorded the call as cancelled by its client (499), once
    admin = api(gateway, ADMIN)
    path = f"/api/chat/conversations/{cid}/tools/call"

    def records() -> list[dict[str, Any]]:
        rows = admin.get("/api/requests", params={"limit": "500"}).json()["requests"]
        return [r for r in rows if r.get("path") == path]

    wait_until(lambda: len(records()) == 1, "the tool call recorded")
    [record] = records()
    assert (record["status"], record["provider"], record["model"]) == (499, "docs", "slow")
