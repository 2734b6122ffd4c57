"""The chat app's tools, reasoning effort and image attachments, in Chromium against a real
irisgate, the streaming FakeLLM and a real MCP server (the `mcp` SDK's) as a connector:
the model asks for a tool, the chat runs it through /v1/mcp's grant checks, the result goes
back to the model, and the call shows its input and output inline."""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ADMIN, USER, api, context_as, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM, McpToolServer
from irisgate.testing.fake_llm import DEFAULT_THINKING
from irisgate.testing.server import IrisgateServer

# one of the suite's longest modules (~44 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

APERTURE = "tailscale.com/cap/aperture"
NO_CHAT = "carol@example.com"
#: what one user's chat images may take together here (--max-chat-attachments)
MAX_CHAT_ATTACHMENTS = 1_000_000
#: the gateway's body limit here: two 400 kB images (in base64) do not fit one request
MAX_REQUEST_BODY = 1_000_000
# what the model "types" into the tool: markup that must stay text on the page
TOOL_TEXT = '<img src=x onerror="window.pwned=1"> hello'


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def docs() -> Iterator[McpToolServer]:
    with McpToolServer("docs") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, docs: McpToolServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["providers"]["openai"]["models"].append("o3-mini")  # reasons, sees no images
    config["connectors"] = {"servers": {"docs": {"protocol": "mcp", "url": docs.url}}}
    config["grants"] += [
        {"src": [ADMIN], "app": {APERTURE: [{"connectors": ["docs/*"]}]}},
        {"src": [USER], "app": {APERTURE: [{"connectors": ["docs/echo"]}]}},
        {"src": [NO_CHAT], "app": {APERTURE: [{"enable_chat_ui": False}]}},
    ]
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-chat-tools"),
        identity="serve",
        env={
            "IRISGATE_ALLOW_LOCAL_CONNECTORS": "true",
            "IRISGATE_MAX_CHAT_ATTACHMENTS": str(MAX_CHAT_ATTACHMENTS),
            "IRISGATE_MAX_REQUEST_BODY": str(MAX_REQUEST_BODY),
        },
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


@pytest.fixture
def alice(browser: Browser) -> Iterator[Page]:
    context = context_as(browser, ADMIN)
    yield context.new_page()
    context.close()


def open_chat(page: Page, gw: IrisgateServer, model: str, fragment: str = "") -> None:
    page.goto(f"{gw.url}/chat/{fragment}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("body")).to_have_attribute("data-tools", "ready")
    if model:
        page.fill("#model-search", model)
        page.select_option("#model-select", index=0)


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def conversation_id(page: Page) -> str:
    cid: str = page.evaluate("location.hash").lstrip("#")
    return cid


def llm_requests(fake: FakeLLM, path: str) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path == path]


def received(fake: FakeLLM, path: str, count: int) -> list[dict[str, Any]]:
    """The request bodies the fake received at `path`, once it has `count` of them: the page
    shows a turn's assistant message (model name and all) before its request has left."""
    assert fake.wait_for(lambda: len(llm_requests(fake, path)) >= count), llm_requests(fake, path)
    return llm_requests(fake, path)


def tool_record(gw: IrisgateServer, login: str, **fields: Any) -> dict[str, Any]:
    """The newest tool-call record of `login` with these field values, once written."""
    admin = api(gw, ADMIN)
    deadline = time.monotonic() + 30  # only a stuck test waits this long
    while True:
        rows = admin.get("/api/requests", params={"limit": "500"}).json()["requests"]
        for row in rows:
            wanted = {"api_format": "mcp", "login_name": login, **fields}
            if all(row.get(k) == v for k, v in wanted.items()):
                found: dict[str, Any] = row
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no tool-call record of {login} with {fields}")
        time.sleep(0.05)


def test_a_tool_call_round_trip_through_a_real_mcp_server_shows_inline(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    page = bob
    fake_llm.tool_arguments = {"text": TOOL_TEXT}
    fake_llm.reply_text = "The tool said hello."
    fake_llm.n_chunks = 4
    open_chat(page, gateway, "gpt-4o-mini")
    page.click("#tools-toggle")
    # only the granted tool is offered (docs/credential and docs/fail are not bob's)
    expect(page.locator("#tool-list input")).to_have_count(1)
    expect(page.locator("#tool-list")).to_contain_text("docs_echo")
    expect(page.locator("#tool-list")).not_to_contain_text("docs_credential")
    page.check('#tool-list input[value="docs_echo"]')
    expect(page.locator("#tools-toggle")).to_have_text("Tools (1)")
    send(page, "Please call tool echo")

    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".body")).to_contain_text("The tool said hello.")
    expect(answer).not_to_have_class("msg assistant streaming")
    call = answer.locator('.tool-call[data-tool="docs_echo"]')
    expect(call).to_have_attribute("data-state", "done")
    expect(call.locator("summary")).to_have_text("Tool docs_echo · done")
    assert call.get_attribute("open") is None  # collapsed until asked
    call.locator("summary").click()
    expect(call.locator(".tool-input")).to_contain_text(json.dumps(TOOL_TEXT))
    expect(call.locator(".tool-output")).to_have_text(f"docs: {TOOL_TEXT}")
    assert call.locator("img").count() == 0  # shown as text, never as markup
    assert page.evaluate("window.pwned") is None
    screenshot(page, "chat-tool-call")

    # the model was offered exactly the granted tool and got the real server's result back
    first, second = llm_requests(fake_llm, "/v1/chat/completions")[-2:]
    assert [t["function"]["name"] for t in first["tools"]] == ["docs_echo"]
    assert first["tools"][0]["function"]["parameters"]["required"] == ["text"]
    asked, result = second["messages"][-2:]
    assert asked["role"] == "assistant"
    [tool_call] = asked["tool_calls"]
    assert tool_call["function"]["name"] == "docs_echo"
    assert json.loads(tool_call["function"]["arguments"]) == {"text": TOOL_TEXT}
    assert result == {
        "role": "tool",
        "tool_call_id": tool_call["id"],
        "content": f"docs: {TOOL_TEXT}",
    }
    # recorded like a /v1/mcp call, as bob's
    path = f"/api/chat/conversations/{conversation_id(page)}/tools/call"
    record = tool_record(gateway, USER, path=path)
    assert (record["provider"], record["model"], record["status"]) == ("docs", "echo", 200)

    # the switch and the call survive a reload
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-tools", "ready")
    expect(page.locator("#tools-toggle")).to_have_text("Tools (1)")
    expect(page.locator('#tool-list input[value="docs_echo"]')).to_be_checked()
    call = page.locator('.msg.assistant .tool-call[data-tool="docs_echo"]')
    expect(call.locator(".tool-output")).to_have_text(f"docs: {TOOL_TEXT}", use_inner_text=False)
    stored = api(gateway, USER).get(f"/api/chat/conversations/{conversation_id(page)}").json()
    assert stored["tools"] == ["docs_echo"]
    [round_] = stored["messages"][-1]["tool_calls"]
    assert round_["calls"][0]["output"] == f"docs: {TOOL_TEXT}"

    # the next turn sends the earlier round back in the same wire format
    send(page, "thanks")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".msg.assistant").last.locator(".meta")).to_be_visible()
    history = received(fake_llm, "/v1/chat/completions", 3)[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "user"]


def test_a_model_that_keeps_calling_tools_is_stopped_after_eight_rounds(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    page = bob
    fake_llm.tool_every_turn = True
    fake_llm.tool_arguments = {"text": "again"}
    open_chat(page, gateway, "gpt-4o-mini")
    page.click("#tools-toggle")
    page.check('#tool-list input[value="docs_echo"]')
    send(page, "loop forever")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".outcome")).to_have_text("truncated")
    expect(answer.locator(".body")).to_contain_text("Stopped after 8 rounds of tool calls")
    expect(page.locator("#chat-status")).to_have_text("Stopped after 8 rounds of tool calls.")
    calls = answer.locator(".tool-call")
    expect(calls).to_have_count(8)
    expect(answer.locator('.tool-call[data-state="done"]')).to_have_count(7)
    expect(calls.last.locator(".tool-output")).to_have_text(
        "not run: the chat stops after 8 rounds of tool calls", use_inner_text=False
    )
    assert len(llm_requests(fake_llm, "/v1/chat/completions")) == 8
    stored = api(gateway, USER).get(f"/api/chat/conversations/{conversation_id(page)}").json()
    assert stored["messages"][-1]["outcome"] == "truncated"
    assert len(stored["messages"][-1]["tool_calls"]) == 8


def test_tools_not_granted_are_not_offered_and_forged_calls_are_refused(
    gateway: IrisgateServer,
) -> None:
    bob_api = api(gateway, USER)
    assert [t["name"] for t in bob_api.get("/api/chat/tools").json()["tools"]] == ["docs_echo"]
    alice_tools = api(gateway, ADMIN).get("/api/chat/tools").json()["tools"]
    assert {t["name"] for t in alice_tools} == {"docs_echo", "docs_credential", "docs_fail"}
    refused = api(gateway, NO_CHAT).get("/api/chat/tools")
    assert refused.status_code == 403 and "chat is disabled" in refused.json()["error"]

    cid = bob_api.post("/api/chat/conversations", json={"tools": ["docs_echo"]}).json()["id"]
    call = f"/api/chat/conversations/{cid}/tools/call"
    ok = bob_api.post(call, json={"name": "docs_echo", "arguments": {"text": "direct"}})
    assert ok.status_code == 200
    assert ok.json() == {"name": "docs_echo", "output": "docs: direct", "is_error": False}
    # a granted tool not switched on in the conversation
    off = bob_api.post(call, json={"name": "docs_fail", "arguments": {}})
    assert off.status_code == 403 and "not switched on" in off.json()["error"]
    # switched on by hand, but not granted: /v1/mcp's grant check refuses it, and records it
    patched = bob_api.patch(f"/api/chat/conversations/{cid}", json={"tools": ["docs_credential"]})
    assert patched.json()["tools"] == ["docs_credential"]
    forged = bob_api.post(call, json={"name": "docs_credential", "arguments": {}})
    assert forged.status_code == 403
    assert "docs_credential is not a connector tool you are granted" in forged.json()["error"]
    denied = tool_record(gateway, USER, model="credential")
    assert denied["status"] == 403 and "not a connector tool you are granted" in denied["error"]
    # someone else's conversation does not exist for bob
    theirs = api(gateway, ADMIN).post("/api/chat/conversations", json={"tools": ["docs_echo"]})
    other = f"/api/chat/conversations/{theirs.json()['id']}/tools/call"
    assert bob_api.post(other, json={"name": "docs_echo"}).status_code == 404
    # bad input names the field
    bad = bob_api.post(call, json={"name": "docs_echo", "arguments": [1]})
    assert bad.status_code == 400 and "'arguments'" in bad.json()["error"]
    bad = bob_api.patch(f"/api/chat/conversations/{cid}", json={"tools": "docs_echo"})
    assert bad.status_code == 400 and "'tools'" in bad.json()["error"]
    bad = bob_api.patch(f"/api/chat/conversations/{cid}", json={"reasoning_effort": "max"})
    assert bad.status_code == 400 and "'reasoning_effort'" in bad.json()["error"]


def test_anthropic_tool_use_with_thinking_sends_the_budget_and_shows_reasoning(
    gateway: IrisgateServer, alice: Page, fake_llm: FakeLLM
) -> None:
    page = alice
    fake_llm.tool_arguments = {"text": "from claude"}
    open_chat(page, gateway, "claude-sonnet-4-5")
    expect(page.locator("#effort")).to_be_visible()
    expect(page.locator("#effort option").first).to_have_text("Thinking: off")
    page.select_option("#effort", "medium")
    page.click("#tools-toggle")
    page.check('#tool-list input[value="docs_echo"]')
    send(page, "call tool please")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".body")).to_contain_text("tok19")
    expect(answer.locator(".tool-call .tool-output")).to_have_text(
        "docs: from claude", use_inner_text=False
    )
    reasoning = answer.locator("details.reasoning")
    expect(reasoning).to_be_visible()
    assert reasoning.get_attribute("open") is None  # collapsed
    reasoning.locator("summary").click()
    expect(reasoning.locator(".reasoning-text")).to_contain_text(DEFAULT_THINKING)

    first, second = llm_requests(fake_llm, "/v1/messages")[-2:]
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert first["max_tokens"] > 8192
    assert [t["name"] for t in first["tools"]] == ["docs_echo"]
    asked, result = second["messages"][-2:]
    # the thinking block goes back with its signature, before the tool_use it led to
    assert [b["type"] for b in asked["content"]] == ["thinking", "tool_use"]
    assert asked["content"][0]["thinking"] == DEFAULT_THINKING
    assert asked["content"][0]["signature"]
    tool_use = asked["content"][1]
    assert tool_use["input"] == {"text": "from claude"}
    assert result == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "docs: from claude"}
        ],
    }
    # effort and reasoning are kept with the conversation
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#effort")).to_have_value("medium")
    expect(page.locator(".msg.assistant .reasoning-text")).to_contain_text(
        DEFAULT_THINKING, use_inner_text=False
    )


def test_reasoning_effort_reaches_openai_only_for_models_that_reason(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    page = bob
    open_chat(page, gateway, "gpt-4o-mini")
    expect(page.locator("#effort")).to_be_hidden()
    send(page, "no reasoning here")
    expect(page.locator(".msg.assistant .body")).to_contain_text("tok19")
    assert "reasoning_effort" not in fake_llm.last_request.json

    page.fill("#model-search", "gpt-5-mini")
    page.select_option("#model-select", index=0)
    expect(page.locator("#effort")).to_be_visible()
    expect(page.locator("#effort option").first).to_have_text("Reasoning: default")
    page.select_option("#effort", "high")
    send(page, "think hard")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".msg.assistant").last.locator(".body")).to_contain_text("tok19")
    upstream = fake_llm.last_request.json
    assert upstream["model"] == "gpt-5-mini"
    assert upstream["reasoning_effort"] == "high"
    assert "tools" not in upstream  # no tool switched on: none offered
    stored = api(gateway, USER).get(f"/api/chat/conversations/{conversation_id(page)}").json()
    assert stored["reasoning_effort"] == "high"


def test_an_image_attachment_reaches_the_upstream_as_an_image_part_and_survives_reload(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    page = bob
    image = png()
    encoded = base64.b64encode(image).decode()
    open_chat(page, gateway, "o3-mini")  # no image input: refused with a reason
    page.set_input_files(
        "#attach", files=[{"name": "red.png", "mimeType": "image/png", "buffer": image}]
    )
    expect(page.locator("#chat-status")).to_contain_text("o3-mini does not accept images")
    expect(page.locator("#attachments li")).to_have_count(0)

    page.fill("#model-search", "gpt-4o-mini")
    page.select_option("#model-select", index=0)
    too_big = b"\x89PNG\r\n\x1a\n" + b"\x00" * 3_800_000
    page.set_input_files(
        "#attach",
        files=[
            {"name": "huge.png", "mimeType": "image/png", "buffer": too_big},
            {"name": "red.png", "mimeType": "image/png", "buffer": image},
        ],
    )
    expect(page.locator("#chat-status")).to_contain_text("huge.png is larger than 3.75 MB")
    expect(page.locator("#attachments li")).to_have_count(1)
    expect(page.locator("#attachments li img")).to_have_count(1)
    send(page, "what colour is this")
    expect(page.locator(".msg.assistant .body")).to_contain_text("tok19")
    [asked] = received(fake_llm, "/v1/chat/completions", 1)
    sent = asked["messages"][-1]
    assert sent == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what colour is this"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
        ],
    }

    # kept once, served from its own endpoint: the conversation holds its URL, not its bytes
    cid = conversation_id(page)
    stored = api(gateway, USER).get(f"/api/chat/conversations/{cid}").json()
    [attached] = stored["messages"][0]["attachments"]
    assert attached["url"] == f"/api/chat/attachments/{attached['id']}"
    assert (attached["name"], attached["media_type"], attached["size"]) == (
        "red.png",
        "image/png",
        len(image),
    )
    assert encoded not in json.dumps(stored)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    shown = page.locator(".msg.user .msg-images img")
    expect(shown).to_have_count(1)
    expect(shown).to_have_attribute("src", attached["url"])
    expect(shown).to_have_attribute("alt", "red.png")
    page.wait_for_function("document.querySelector('.msg.user .msg-images img').naturalWidth === 2")
    screenshot(page, "chat-image")
    served = api(gateway, USER).get(attached["url"])
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"] == f'inline; filename="{attached["id"]}.png"'
    assert served.headers["cache-control"].startswith("private")
    # another user gets the 404 of an id that does not exist
    other = api(gateway, ADMIN).get(attached["url"])
    assert other.status_code == 404 and "not found" in other.json()["error"]

    # a file that says it is a PNG but is not one is refused by irisgate, with the reason
    page.set_input_files(
        "#attach",
        files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"<svg>not an image"}],
    )
    expect(page.locator("#attachments li")).to_have_count(1)
    send(page, "and this one?")
    expect(page.locator("#chat-status")).to_have_text(
        "fake.png was not attached: fake.png is not a PNG, JPEG, GIF or WebP image"
    )
    expect(page.locator(".msg.user")).to_have_count(1)
    page.click('#attachments button[aria-label="Remove fake.png"]')
    expect(page.locator("#attachments li")).to_have_count(0)

    # the same conversation on an Anthropic model: the image goes as a base64 image block
    page.fill("#model-search", "claude-haiku-4-5")
    page.select_option("#model-select", index=0)
    send(page, "and now?")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".msg.assistant").last.locator(".meta")).to_be_visible()
    [asked] = received(fake_llm, "/v1/messages", 1)
    first_turn = asked["messages"][0]
    assert first_turn["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": encoded},
    }


def test_attachments_that_are_not_images_of_their_type_are_refused_by_the_api(
    gateway: IrisgateServer,
) -> None:
    bob_api = api(gateway, USER)
    cid = bob_api.post("/api/chat/conversations", json={"title": "images"}).json()["id"]
    messages = f"/api/chat/conversations/{cid}/messages"
    attach = f"/api/chat/conversations/{cid}/attachments"

    def upload(body: bytes, kind: str = "image/png", user: str = USER, to: str = attach) -> Any:
        return api(gateway, user).post(
            to, params={"name": "a.png"}, content=body, headers={"content-type": kind}
        )

    # the type kept is the one the bytes show, whatever was declared
    gif = upload(b"GIF89a\x01\x00\x01\x00")
    assert gif.status_code == 201 and gif.json()["media_type"] == "image/gif"
    assert bob_api.get(gif.json()["url"]).headers["content-type"] == "image/gif"
    text = upload(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert text.status_code == 415
    assert text.json()["error"] == "a.png is not a PNG, JPEG, GIF or WebP image"
    svg = upload(b"<svg/>", "image/svg+xml")
    assert svg.status_code == 415 and "image/svg+xml" in svg.json()["error"]
    huge = upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 3_750_000)
    assert huge.status_code == 413
    assert huge.json()["error"] == "a.png is larger than 3750000 bytes"
    # only into one's own conversation, and a message names only its conversation's images
    assert upload(png(), user=ADMIN).status_code == 404
    alice_cid = api(gateway, ADMIN).post("/api/chat/conversations", json={}).json()["id"]
    alice_image = upload(
        png(), user=ADMIN, to=f"/api/chat/conversations/{alice_cid}/attachments"
    ).json()
    stolen = bob_api.post(
        messages, json={"role": "user", "content": "x", "attachments": [{"id": alice_image["id"]}]}
    )
    assert (
        stolen.status_code == 404 and "not an image of this conversation" in stolen.json()["error"]
    )
    inline = bob_api.post(
        messages,
        json={"role": "user", "content": "x", "attachments": [{"media_type": "image/png"}]},
    )
    assert inline.status_code == 400 and "'attachments[0].id'" in inline.json()["error"]
    # deleting the conversation deletes its images
    assert bob_api.delete(f"/api/chat/conversations/{cid}").status_code == 204
    assert bob_api.get(gif.json()["url"]).status_code == 404
    cid = bob_api.post("/api/chat/conversations", json={"title": "more"}).json()["id"]
    messages = f"/api/chat/conversations/{cid}/messages"
    bad = bob_api.post(
        messages, json={"role": "assistant", "content": "x", "tool_calls": [{"calls": "no"}]}
    )
    assert bad.status_code == 400 and "tool_calls[0].calls" in bad.json()["error"]


def test_an_image_kept_inline_by_an_earlier_irisgate_is_still_shown_and_sent(
    gateway: IrisgateServer, bob: Page, fake_llm: FakeLLM
) -> None:
    """Messages stored before attachments had their own endpoint hold the image's base64 in
    their JSON; they are read as they are."""
    encoded = base64.b64encode(png()).decode()
    bob_api = api(gateway, USER)
    cid = bob_api.post("/api/chat/conversations", json={"title": "old image"}).json()["id"]
    made = bob_api.post(
        f"/api/chat/conversations/{cid}/messages", json={"role": "user", "content": "old look"}
    ).json()
    inline = [{"name": "old.png", "media_type": "image/png", "data": encoded}]
    with sqlite3.connect(gateway.data_dir / "irisgate.db") as db:  # as 0.1's chat kept it
        db.execute(
            "UPDATE chat_messages SET attachments = ? WHERE id = ?",
            (json.dumps(inline), made["id"]),
        )
    page = bob
    open_chat(page, gateway, "gpt-4o-mini", f"#{cid}")
    shown = page.locator(".msg.user .msg-images img")
    expect(shown).to_have_attribute("src", f"data:image/png;base64,{encoded}")
    page.wait_for_function("document.querySelector('.msg.user .msg-images img').naturalWidth === 2")
    send(page, "still there?")
    expect(page.locator(".msg.assistant .meta")).to_be_visible()
    [asked] = received(fake_llm, "/v1/chat/completions", 1)
    assert asked["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{encoded}"},
    }


def test_a_users_images_together_are_bounded(gateway: IrisgateServer) -> None:
    dave = api(gateway, "dave@example.com")
    cid = dave.post("/api/chat/conversations", json={"title": "album"}).json()["id"]
    picture = b"\x89PNG\r\n\x1a\n" + b"\x00" * 399_992  # 400,000 bytes

    def upload() -> Any:
        return dave.post(
            f"/api/chat/conversations/{cid}/attachments",
            params={"name": "p.png"},
            content=picture,
            headers={"content-type": "image/png"},
        )

    uploaded = [upload() for _ in range(2)]
    assert [u.status_code for u in uploaded] == [201, 201]
    # both in one conversation would make a request the gateway refuses: said before building it
    dave.post(
        f"/api/chat/conversations/{cid}/messages",
        json={
            "role": "user",
            "content": "two",
            "attachments": [{"id": u.json()["id"]} for u in uploaded],
        },
    )
    too_big = dave.post(
        f"/api/chat/conversations/{cid}/round", json={"model": "openai/gpt-4o-mini"}
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"] == (
        "this conversation's images take 800000 bytes, more than a request to the model may"
        f" carry ({MAX_REQUEST_BODY} bytes, --max-request-body): start a new conversation"
    )
    full = upload()
    assert full.status_code == 413
    assert full.json()["error"] == (
        f"your chat images take 800000 bytes and at most {MAX_CHAT_ATTACHMENTS} are kept"
        " (--max-chat-attachments): delete conversations with images to make room"
    )
    # another user's room is their own, and deleting the conversation frees dave's
    other = api(gateway, USER).post("/api/chat/conversations", json={}).json()["id"]
    mine = api(gateway, USER).post(
        f"/api/chat/conversations/{other}/attachments",
        content=picture,
        headers={"content-type": "image/png"},
    )
    assert mine.status_code == 201
    assert dave.delete(f"/api/chat/conversations/{cid}").status_code == 204
    cid = dave.post("/api/chat/conversations", json={"title": "again"}).json()["id"]
    assert upload().status_code == 201
