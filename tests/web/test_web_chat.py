"""The chat app at /chat/ in Chromium against a real irisgate and the streaming FakeLLM:
the link and the app only with chat enabled, progressive Markdown answers, stop cancelling
upstream, retry, history after reload, quota refusals, and the conversation API's rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import ADMIN, USER, api, context_as, dashboard_config, openai_as, screenshot
from conftest import wait_recorded as _wait_recorded
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM
from irisgate.testing.fake_server import wait_until
from irisgate.testing.server import IrisgateServer

# one of the suite's longest modules (~55 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

NO_CHAT = "carol@example.com"
BROKE = "dave@example.com"
REPLY = "Here is **bold** text and code:\n\n```python\nprint('hi')\n```\n\nThe end."


def chat_config(upstream: str) -> str:
    config = json.loads(dashboard_config(upstream).split("\n", 1)[1])
    config["quotas"] = {"chat:<user>": {"capacity": "$0.00005", "rate": "$0.01/day"}}
    config["grants"] += [
        {"src": [NO_CHAT], "app": {"tailscale.com/cap/aperture": [{"enable_chat_ui": False}]}},
        {
            "src": [BROKE],
            "app": {"tailscale.com/cap/aperture": [{"quotas": [{"bucket": "chat:<user>"}]}]},
        },
    ]
    return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        chat_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate-chat"),
        identity="serve",
    )
    with server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    fake_llm.reset()
    yield fake_llm
    if fake_llm.stream_gate is not None:
        fake_llm.stream_gate.set()
    fake_llm.reset()


def wait_recorded(gw: IrisgateServer, request_id: str) -> dict[str, Any]:
    return _wait_recorded(gw, request_id)


def open_chat(page: Page, gw: IrisgateServer, model: str = "gpt-4o-mini") -> None:
    page.goto(gw.url + "/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    page.fill("#model-search", model)
    page.select_option("#model-select", index=0)


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def conversations(gw: IrisgateServer, login: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (
        api(gw, login).get("/api/chat/conversations").json()["conversations"]
    )
    return found


def test_chat_link_opens_the_app_in_a_new_tab_and_answers_stream_as_markdown(
    gateway: IrisgateServer, browser: Browser, fake_llm: FakeLLM
) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gateway.url + "/ui/dashboard")
    link = page.locator('nav a[href="/chat/"]')
    expect(link).to_have_attribute("target", "_blank")
    with context.expect_page() as opened:
        link.click()
    chat = opened.value
    expect(chat.locator("body")).to_have_attribute("data-ready", "true")
    assert chat.url == gateway.url + "/chat/"

    gate = threading.Event()
    fake_llm.reply_text = REPLY
    fake_llm.n_chunks = 12
    fake_llm.stream_gate = gate
    fake_llm.gate_after_events = 3  # the role event and two pieces of text, then a pause
    chat.fill("#model-search", "4o-mini")
    assert chat.locator("#model-select option").all_text_contents() == ["gpt-4o-mini · openai"]
    send(chat, "Show me some code")
    answer = chat.locator(".msg.assistant").last
    expect(answer).to_have_class("msg assistant streaming")
    expect(answer.locator(".body")).to_contain_text("Here")
    assert "The end." not in answer.locator(".body").inner_text()  # the rest waits on the gate
    expect(chat.locator("#stop")).to_be_visible()
    expect(chat.locator("#send")).to_be_hidden()
    screenshot(chat, "chat-streaming")
    gate.set()
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("pre code")).to_contain_text("print('hi')")
    expect(answer).to_contain_text("The end.")
    expect(chat.locator("#send")).to_be_visible()
    expect(chat.locator("#stop")).to_be_hidden()
    screenshot(chat, "chat-answer")

    [conversation] = conversations(gateway, USER)
    assert conversation["title"] == "Show me some code"
    detail = api(gateway, USER).get(f"/api/chat/conversations/{conversation['id']}").json()
    user_turn, assistant_turn = detail["messages"]
    assert user_turn["content"] == "Show me some code"
    assert assistant_turn["content"] == REPLY
    assert assistant_turn["outcome"] == "completed"
    record = wait_recorded(gateway, assistant_turn["request_id"])
    assert record["login_name"] == USER  # an ordinary gateway request of the user
    assert record["model"] == "gpt-4o-mini"
    upstream = fake_llm.last_request.json
    assert upstream["stream"] is True
    assert upstream["messages"][-1] == {"role": "user", "content": "Show me some code"}

    chat.reload()  # history persists
    expect(chat.locator("body")).to_have_attribute("data-ready", "true")
    expect(chat.locator("#chat-title")).to_have_text("Show me some code")
    expect(chat.locator(".msg.user")).to_have_text("Show me some code")
    expect(chat.locator(".msg.assistant pre code")).to_contain_text("print('hi')")
    context.close()


def test_markdown_from_the_model_is_sanitised(
    gateway: IrisgateServer, user_page: Page, fake_llm: FakeLLM
) -> None:
    fake_llm.reply_text = (
        'Look <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>'
    )
    fake_llm.n_chunks = 3
    open_chat(user_page, gateway)
    send(user_page, "say something dangerous")
    answer = user_page.locator(".msg.assistant").last
    expect(answer.locator(".meta")).to_be_visible()
    expect(user_page.locator(".msg.assistant.streaming")).to_have_count(0)
    assert user_page.evaluate("window.pwned") is None
    assert answer.locator("script").count() == 0
    assert answer.locator("img[onerror]").count() == 0


def test_stop_cancels_the_upstream_stream_and_keeps_the_partial_answer(
    gateway: IrisgateServer, user_page: Page, fake_llm: FakeLLM
) -> None:
    page = user_page
    gate = threading.Event()
    fake_llm.stream_gate = gate
    fake_llm.gate_after_events = 2
    open_chat(page, gateway)
    send(page, "a long story please")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".body")).to_contain_text("tok0")
    page.click("#stop")
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    expect(answer.locator(".outcome")).to_have_text("cancelled")
    expect(page.locator("#send")).to_be_visible()
    conversation = page.evaluate("location.hash").lstrip("#")

    def messages() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = (
            api(gateway, USER).get(f"/api/chat/conversations/{conversation}").json()["messages"]
        )
        return got

    # the page shows the outcome as the stream ends; the server saves it right after
    assert wait_until(lambda: messages()[-1]["outcome"] == "cancelled")
    assert messages()[-1]["content"] == "tok0"

    # retry replaces the cancelled answer with a complete one
    fake_llm.stream_gate = None
    page.click(".msg.assistant .retry")
    expect(page.locator(".msg.assistant")).to_have_count(1)
    expect(page.locator(".msg.assistant .body")).to_contain_text("tok19")
    expect(page.locator(".msg.assistant .outcome")).to_have_count(0)
    assert wait_until(lambda: [m["outcome"] for m in messages()] == ["", "completed"])


def test_an_exhausted_quota_shows_the_balance_and_when_it_refills(
    gateway: IrisgateServer, browser: Browser
) -> None:
    client = openai_as(gateway, BROKE)
    for _ in range(50):
        try:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "spend " * 200}]
            )
        except openai.RateLimitError:
            break
    else:
        raise AssertionError("the chat bucket never ran out")
    context = context_as(browser, BROKE)
    page = context.new_page()
    open_chat(page, gateway)
    send(page, "one more question")
    error = page.locator(".msg.assistant .turn-error")
    expect(error).to_contain_text("Error 429")
    expect(error).to_contain_text("chat:dave@example.com")
    expect(error).to_contain_text("balance")
    expect(error).to_contain_text("Your quota refills enough to continue in")
    expect(page.locator(".msg.assistant .outcome")).to_have_text("error")
    screenshot(page, "chat-quota")
    context.close()


def test_chat_is_off_for_a_user_without_the_grant(
    gateway: IrisgateServer, browser: Browser
) -> None:
    context = context_as(browser, NO_CHAT)
    page = context.new_page()
    page.goto(gateway.url + "/ui/dashboard")
    expect(page.locator("#signed-in")).to_have_text(NO_CHAT)
    assert page.locator('nav a[href="/chat/"]').count() == 0
    assert page.locator('#page-list option[value="Chat"]').count() == 0
    response = page.goto(gateway.url + "/chat/")
    assert response is not None and response.status == 403
    expect(page.locator("#denied")).to_contain_text("enable_chat_ui")
    carol = api(gateway, NO_CHAT)
    for path in ("/api/chat/models", "/api/chat/conversations"):
        refused = carol.get(path)
        assert refused.status_code == 403
        assert "chat is disabled" in refused.json()["error"]
    context.close()


def test_conversations_belong_to_their_user_and_can_be_renamed_searched_and_deleted(
    gateway: IrisgateServer, browser: Browser
) -> None:
    alice = api(gateway, ADMIN)
    bob = api(gateway, USER)
    made = alice.post(
        "/api/chat/conversations",
        json={
            "title": "Quarterly numbers",
            "model": "openai/gpt-4o-mini",
            "instructions": "Be brief.",
        },
    )
    assert made.status_code == 201
    cid = made.json()["id"]
    assert (
        alice.post(
            f"/api/chat/conversations/{cid}/messages",
            json={"role": "user", "content": "revenue Zebra"},
        ).status_code
        == 201
    )
    other = alice.post("/api/chat/conversations", json={"title": "Holiday plans"}).json()
    # another user cannot see, change or delete it
    assert bob.get(f"/api/chat/conversations/{cid}").status_code == 404
    assert bob.patch(f"/api/chat/conversations/{cid}", json={"title": "x"}).status_code == 404
    assert bob.delete(f"/api/chat/conversations/{cid}").status_code == 404
    assert all(c["id"] != cid for c in conversations(gateway, USER))
    # bad input names the field
    bad = alice.post(f"/api/chat/conversations/{cid}/messages", json={"role": "system"})
    assert bad.status_code == 400 and "'role'" in bad.json()["error"]
    bad = alice.patch(f"/api/chat/conversations/{cid}", json={"colour": "red"})
    assert bad.status_code == 400 and "colour" in bad.json()["error"]
    json_type = {"content-type": "application/json"}
    bad = alice.post("/api/chat/conversations", content=b"{not json", headers=json_type)
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    # what a cross-site form could send is refused
    form = alice.post("/api/chat/conversations", content=b'{"title": "x"}')
    assert form.status_code == 415 and "application/json" in form.json()["error"]
    form = alice.post(
        "/api/chat/conversations",
        content=b'{"title": "x"}',
        headers={"content-type": "text/plain"},
    )
    assert form.status_code == 415

    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(gateway.url + "/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    items = page.locator("#conv-list li")
    expect(items).to_have_count(2)
    page.fill("#conv-search", "zebra")  # found by message content
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Quarterly numbers")
    items.first.locator(".conv-open").click()
    expect(page.locator("#chat-title")).to_have_text("Quarterly numbers")
    page.click("#instructions-toggle")
    expect(page.locator("#instructions")).to_have_value("Be brief.")
    page.fill("#instructions", "Answer in French.")
    page.click("#instructions-save")
    expect(page.locator("#instructions-status")).to_have_text("Saved.")
    items.first.locator(".conv-rename").click()
    page.fill(".conv-title-input", "Q3 numbers")
    page.press(".conv-title-input", "Enter")
    expect(page.locator("#chat-title")).to_have_text("Q3 numbers")
    page.fill("#conv-search", "")
    expect(items).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'#conv-list li[data-id="{other["id"]}"] .conv-delete').click()
    expect(items).to_have_count(1)
    context.close()

    detail = alice.get(f"/api/chat/conversations/{cid}").json()
    assert detail["title"] == "Q3 numbers"
    assert detail["instructions"] == "Answer in French."
    assert alice.get(f"/api/chat/conversations/{other['id']}").status_code == 404
    assert [c["title"] for c in conversations(gateway, ADMIN)] == ["Q3 numbers"]


def test_instructions_are_sent_as_the_system_prompt_to_anthropic_models(
    gateway: IrisgateServer, browser: Browser, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    alice = api(gateway, ADMIN)
    cid = alice.post(
        "/api/chat/conversations",
        json={"title": "Claude", "model": "anthropic/claude-haiku-4-5", "instructions": "Rhyme."},
    ).json()["id"]
    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(f"{gateway.url}/chat/#{cid}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#model-select")).to_have_value("anthropic/claude-haiku-4-5")
    send(page, "hello claude")
    expect(page.locator(".msg.assistant .body")).to_contain_text("tok19")
    upstream = fake_llm.last_request
    assert upstream.path == "/v1/messages"
    assert upstream.json["system"] == "Rhyme."
    assert upstream.json["messages"] == [{"role": "user", "content": "hello claude"}]
    context.close()


def test_chat_activity_counts_turns_and_outcomes_per_day(
    gateway: IrisgateServer, browser: Browser
) -> None:
    erin = "erin@example.com"
    client = api(gateway, erin)
    for title, outcomes in (("one", ["completed", "cancelled"]), ("two", ["truncated"])):
        cid = client.post("/api/chat/conversations", json={"title": title}).json()["id"]
        for outcome in outcomes:
            client.post(
                f"/api/chat/conversations/{cid}/messages", json={"role": "user", "content": "q"}
            )
            client.post(
                f"/api/chat/conversations/{cid}/messages",
                json={"role": "assistant", "content": "a", "outcome": outcome},
            )
    assert api(gateway, USER).get("/api/chat/activity").status_code == 403
    report = api(gateway, ADMIN).get("/api/chat/activity", params={"user": erin}).json()
    totals = report["totals"]
    assert totals["conversations"] == 2
    assert totals["user_messages"] == totals["assistant_turns"] == 3
    assert totals["users"] == 1
    assert totals["outcomes"] == {
        "completed": 1,
        "error": 0,
        "cancelled": 1,
        "refused": 0,
        "truncated": 1,
    }
    assert report["days"][-1]["assistant_turns"] == 3  # today, the range's last day

    context = context_as(browser, ADMIN)
    page = context.new_page()
    page.goto(gateway.url + "/ui/dashboard")
    page.click('nav a[href="/admin/chat-activity"]')
    expect(page.locator("h1")).to_have_text("Chat Activity")
    page.fill('#filters input[name="user"]', erin)
    page.click('#filters button[type="submit"]')
    expect(page.locator("#stat-user-messages")).to_have_text("3")
    expect(page.locator("#stat-conversations")).to_have_text("2")
    expect(page.locator('#outcomes-table tr[data-outcome="cancelled"] td.num')).to_have_text("1")
    page.click('[data-view="outcomes"]')
    expect(page.locator("#chart-title")).to_have_text("Outcomes per day")
    expect(page.locator("#chart-chat canvas")).to_be_visible()
    screenshot(page, "admin-chat-activity")
    context.close()


def test_conversations_survive_a_restart_and_the_chat_ui_flag_turns_chat_off(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    config = json.loads(chat_config(fake_llm.base_url))
    with IrisgateServer(json.dumps(config), data_dir=tmp_path, identity="serve") as first:
        made = api(first, USER).post(
            "/api/chat/conversations",
            json={
                "title": "Before restart",
                "instructions": "Keep",
                "tools": ["docs_echo"],
                "reasoning_effort": "low",
            },
        )
        cid = made.json()["id"]
        added = api(first, USER).post(
            f"/api/chat/conversations/{cid}/messages", json={"role": "user", "content": "hello"}
        )
        assert added.status_code == 201
    with IrisgateServer(json.dumps(config), data_dir=tmp_path, identity="serve") as second:
        detail = api(second, USER).get(f"/api/chat/conversations/{cid}").json()
        assert detail["title"] == "Before restart"
        assert detail["instructions"] == "Keep"
        assert detail["tools"] == ["docs_echo"] and detail["reasoning_effort"] == "low"
        assert [m["content"] for m in detail["messages"]] == ["hello"]
    config["flags"] = {"chat_ui": {"value": False}}
    with IrisgateServer(json.dumps(config), data_dir=tmp_path, identity="serve") as off:
        for login in (USER, ADMIN):
            client = api(off, login)
            refused = client.get("/api/chat/conversations")
            assert refused.status_code == 403
            assert "flags.chat_ui" in refused.json()["error"]
            page = client.get("/chat/")
            assert page.status_code == 403
            assert "flags.chat_ui is false" in page.text
            assert 'href="/chat/"' not in client.get("/ui/dashboard").text


def test_text_files_are_attached_to_the_message_and_binary_files_refused(
    gateway: IrisgateServer, user_page: Page, fake_llm: FakeLLM
) -> None:
    page = user_page
    open_chat(page, gateway)
    page.set_input_files(
        "#attach",
        files=[
            {"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\nship it"},
            {"name": "data.zip", "mimeType": "application/zip", "buffer": b"PK\x03\x04\x00\xff"},
        ],
    )
    expect(page.locator("#chat-status")).to_contain_text("data.zip is not a text file")
    expect(page.locator("#attachments li")).to_have_count(1)
    expect(page.locator("#attachments li")).to_contain_text("notes.md")
    send(page, "summarise the file")
    expect(page.locator(".msg.assistant .body")).to_contain_text("tok19")
    sent = fake_llm.last_request.json["messages"][-1]["content"]
    assert sent.startswith("summarise the file\n\nAttached file notes.md:\n```\n# Notes\nship it")
    expect(page.locator("#attachments li")).to_have_count(0)
    expect(page.locator(".msg.user").last).to_contain_text("Attached file notes.md")
