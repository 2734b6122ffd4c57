"""The chat holds conversations over every API with a chat adapter: Gemini, Vertex AI (Gemini
and Claude), Bedrock Converse and a Responses-only provider, through a running irisgate and
the FakeLLM speaking each vendor's wire format (Bedrock: its binary event stream).

Each round goes through `POST /api/chat/conversations/<id>/round` as the browser sends it:
the answer streams back as the chat's events, the tool loop runs a real MCP tool through
`/tools/call`, images and reasoning reach the upstream in the API's own shape, and every
round is an ordinary gateway request of the user, recorded and priced. The last test picks a
Gemini and a Bedrock model in /chat/ with Chromium and gets their streamed answers.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import ADMIN, USER, api, context_as, screenshot, wait_recorded
from playwright.sync_api import Browser, expect
from test_web_chat_tools import png

from irisgate.testing import FakeLLM, McpToolServer
from irisgate.testing.fake_bedrock import REASONING_SIGNATURE
from irisgate.testing.fake_google import THOUGHT_SIGNATURE
from irisgate.testing.fake_llm import DEFAULT_THINKING
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
BEDROCK_SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_CLAUDE = "claude-sonnet-4-5@20250929"
REPLY = "Hello from the other side of the wire."

#: chat model id -> (the API the chat speaks to it, the upstream path it reaches)
FORMATS: dict[str, tuple[str, str]] = {
    "gemini/gemini-2.5-flash": (
        "gemini_generate_content",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    ),
    "vertex/gemini-2.5-pro": (
        "google_generate_content",
        "/v1/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
    ),
    f"vertex/{VERTEX_CLAUDE}": (
        "google_raw_predict",
        f"/v1/publishers/anthropic/models/{VERTEX_CLAUDE}:streamRawPredict",
    ),
    f"bedrock/{BEDROCK_SONNET}": ("bedrock_converse", f"/model/{BEDROCK_SONNET}/converse-stream"),
    "responses/gpt-5-mini": ("openai_responses", "/v1/responses"),
}


def chat_config(upstream: str, docs_url: str) -> str:
    providers: dict[str, Any] = {
        "gemini": {
            "baseurl": upstream,
            "apikey": "AIza-upstream-gemini-secret",
            "authorization": "x-goog-api-key",
            "models": ["gemini-2.5-flash"],
            "compatibility": {"gemini_generate_content": True},
        },
        "vertex": {  # Vertex AI Express: a plain API key, no project
            "baseurl": upstream,
            "apikey": "AQ.upstream-vertex-express-secret",
            "authorization": "x-goog-api-key",
            "models": ["gemini-2.5-pro", VERTEX_CLAUDE],
            "compatibility": {"google_generate_content": True, "google_raw_predict": True},
        },
        "bedrock": {
            "baseurl": upstream,
            "apikey": "ABSK-upstream-bedrock-api-key",
            "models": [BEDROCK_SONNET],
            "compatibility": {"bedrock_model_invoke": True, "bedrock_converse": True},
            "cost_basis": "bedrock-us",
        },
        "invoke-only": {
            "baseurl": upstream,
            "apikey": "ABSK-upstream-bedrock-api-key",
            "models": ["anthropic.claude-3-haiku-20240307-v1:0"],
            "compatibility": {"bedrock_model_invoke": True},
        },
        "responses": {
            "baseurl": upstream,
            "apikey": "sk-upstream-openai-secret",
            "models": ["gpt-5-mini"],
            "compatibility": {"openai_responses": True},
        },
    }
    grants = [
        {"src": [ADMIN], "app": {APERTURE: [{"role": "admin"}]}},
        {"src": ["*"], "app": {APERTURE: [{"role": "user"}, {"models": "**"}]}},
        {"src": ["*"], "app": {APERTURE: [{"connectors": ["docs/*"]}]}},
    ]
    connectors = {"servers": {"docs": {"protocol": "mcp", "url": docs_url}}}
    return json.dumps({"providers": providers, "grants": grants, "connectors": connectors})


@pytest.fixture(scope="module")
def docs() -> Iterator[McpToolServer]:
    with McpToolServer("docs") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, docs: McpToolServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        chat_config(fake_llm.base_url, docs.url),
        data_dir=tmp_path_factory.mktemp("irisgate-chat-formats"),
        identity="serve",
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true"},
    )
    with server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    fake_llm.reset()
    fake_llm.reply_text = REPLY
    fake_llm.n_chunks = 4
    yield fake_llm
    fake_llm.reset()


def conversation(
    gw: IrisgateServer, text: str, images: tuple[bytes, ...] = (), **fields: Any
) -> str:
    """A conversation of bob with one user message, its `images` uploaded as attachments."""
    client = api(gw, USER)
    created = client.post("/api/chat/conversations", json={"title": text[:40], **fields})
    assert created.status_code == 201, created.text
    cid: str = created.json()["id"]
    message: dict[str, Any] = {"role": "user", "content": text, "attachments": []}
    for image in images:
        uploaded = client.post(
            f"/api/chat/conversations/{cid}/attachments",
            params={"name": "dot.png"},
            content=image,
            headers={"content-type": "image/png"},
        )
        assert uploaded.status_code == 201, uploaded.text
        message["attachments"].append({"id": uploaded.json()["id"]})
    assert client.post(f"/api/chat/conversations/{cid}/messages", json=message).status_code == 201
    return cid


def run_round(gw: IrisgateServer, cid: str, model: str, **body: Any) -> tuple[Any, list[Any]]:
    """The round's response and the chat events it streamed, in order."""
    with api(gw, USER).stream(
        "POST", f"/api/chat/conversations/{cid}/round", json={"model": model, **body}
    ) as resp:
        if resp.status_code != 200:
            resp.read()
            return resp, []
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [orjson.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")]
    return resp, events


def of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e["type"] == kind]


def test_the_picker_offers_every_api_that_can_chat_and_says_what_it_offers(
    gateway: IrisgateServer,
) -> None:
    models = {m["id"]: m for m in api(gateway, USER).get("/api/chat/models").json()["models"]}
    assert {k: m["api"] for k, m in models.items()} == {k: v[0] for k, v in FORMATS.items()}
    gemini = models["gemini/gemini-2.5-flash"]
    assert gemini["api_title"] == "Gemini"
    assert (gemini["stream"], gemini["tools"], gemini["images"], gemini["reasoning"]) == (
        True,
        True,
        True,
        True,
    )
    assert models[f"bedrock/{BEDROCK_SONNET}"]["effort_off"] == "Thinking: off"
    assert models["gemini/gemini-2.5-flash"]["effort_off"] == "Reasoning: default"


def test_a_model_whose_api_cannot_chat_is_refused_with_the_reason(gateway: IrisgateServer) -> None:
    cid = conversation(gateway, "hello")
    resp, _ = run_round(gateway, cid, "invoke-only/anthropic.claude-3-haiku-20240307-v1:0")
    assert resp.status_code == 400
    message = resp.json()["error"]
    assert "cannot be used in chat" in message and "bedrock_model_invoke" in message
    resp, _ = run_round(gateway, cid, "nowhere/model-x")
    assert resp.status_code == 404 and "not one of your chat models" in resp.json()["error"]


@pytest.mark.parametrize("model", list(FORMATS))
def test_a_round_streams_its_answer_and_is_recorded_and_priced(
    gateway: IrisgateServer, fake_llm: FakeLLM, model: str
) -> None:
    api_format, upstream_path = FORMATS[model]
    cid = conversation(gateway, "Say hello", instructions="Be brief.")
    resp, events = run_round(gateway, cid, model)
    assert resp.status_code == 200
    texts = [e["text"] for e in of(events, "text")]
    assert len(texts) == 4 and "".join(texts) == REPLY  # streamed piece by piece
    assert events[-1] == {"type": "end", "outcome": "completed"}
    [usage] = of(events, "usage")
    assert usage["input_tokens"] > 0 and usage["output_tokens"] == 4
    upstream = fake_llm.last_request
    assert upstream.path == upstream_path
    assert "Be brief." in upstream.body.decode()  # the instructions as the system prompt
    assert "Say hello" in upstream.body.decode()
    record = wait_recorded(gateway, resp.headers["x-irisgate-request-id"])
    assert record["login_name"] == USER  # an ordinary gateway request of the user
    assert record["api_format"] == api_format
    assert record["stream"] is True
    assert record["output_tokens"] == 4
    assert record["cost_nanodollars"] > 0  # priced like any other request


@pytest.mark.parametrize("model", list(FORMATS))
def test_a_tool_call_round_trip_runs_the_connector_tool_and_answers(
    gateway: IrisgateServer, fake_llm: FakeLLM, docs: McpToolServer, model: str
) -> None:
    fake_llm.tool_arguments = {"text": "ping from the model"}
    cid = conversation(gateway, "Please call tool echo", tools=["docs_echo"])
    tools = api(gateway, USER).get("/api/chat/tools").json()["tools"]
    offered = [t for t in tools if t["name"] == "docs_echo"]
    resp, events = run_round(gateway, cid, model, tools=offered)
    assert resp.status_code == 200, resp.text
    [call] = of(events, "call")
    assert call["name"] == "docs_echo"
    assert call["arguments"] == {"text": "ping from the model"}
    assert "problem" not in call
    ran = api(gateway, USER).post(
        f"/api/chat/conversations/{cid}/tools/call",
        json={"name": call["name"], "arguments": call["arguments"]},
    )
    assert ran.status_code == 200, ran.text
    output = ran.json()["output"]
    assert "ping from the model" in output
    replay = [item for e in of(events, "replay") for item in e["items"]]
    pending = [
        {
            "text": "".join(e["text"] for e in of(events, "text")),
            "calls": [{**call, "output": output, "is_error": False}],
            "replay": replay,
        }
    ]
    resp, events = run_round(gateway, cid, model, tools=offered, pending=pending)
    assert resp.status_code == 200, resp.text
    assert "".join(e["text"] for e in of(events, "text")) == REPLY
    assert events[-1] == {"type": "end", "outcome": "completed"}
    sent = fake_llm.last_request.body.decode()
    assert call["id"] in sent and "ping from the model" in sent  # the result went back


@pytest.mark.parametrize("model", list(FORMATS))
def test_an_image_reaches_the_model_as_the_apis_image_part(
    gateway: IrisgateServer, fake_llm: FakeLLM, model: str
) -> None:
    data = base64.b64encode(png()).decode()
    cid = conversation(gateway, "What is in this picture?", images=(png(),))
    resp, events = run_round(gateway, cid, model)
    assert resp.status_code == 200, resp.text
    assert events[-1]["outcome"] == "completed"
    body = fake_llm.last_request.json
    parts = json.dumps(body)
    assert data in parts
    # in the API's own image shape
    shapes = {
        "gemini_generate_content": '"inlineData": {"mimeType": "image/png"',
        "google_generate_content": '"inlineData": {"mimeType": "image/png"',
        "google_raw_predict": '"source": {"type": "base64", "media_type": "image/png"',
        "bedrock_converse": '"image": {"format": "png", "source": {"bytes": ',
        "openai_responses": '"type": "input_image", "image_url": "data:image/png;base64,',
    }
    assert shapes[FORMATS[model][0]] in parts


@pytest.mark.parametrize("model", list(FORMATS))
def test_reasoning_is_asked_for_shown_and_goes_back_with_a_tool_call(
    gateway: IrisgateServer, fake_llm: FakeLLM, model: str
) -> None:
    fake_llm.tool_arguments = {"text": "thought through"}
    cid = conversation(gateway, "Think, then call tool echo", tools=["docs_echo"])
    tools = api(gateway, USER).get("/api/chat/tools").json()["tools"]
    offered = [t for t in tools if t["name"] == "docs_echo"]
    resp, events = run_round(gateway, cid, model, tools=offered, effort="medium")
    assert resp.status_code == 200, resp.text
    thought = "".join(e["text"] for e in of(events, "reasoning"))
    assert thought.split() == DEFAULT_THINKING.split()
    asked = fake_llm.last_request.json
    expected = {
        "gemini_generate_content": ("generationConfig", "thinkingConfig"),
        "google_generate_content": ("generationConfig", "thinkingConfig"),
        "google_raw_predict": ("thinking", "budget_tokens"),
        "bedrock_converse": ("additionalModelRequestFields", "thinking"),
        "openai_responses": ("reasoning", "effort"),
    }[FORMATS[model][0]]
    assert expected[1] in asked[expected[0]]
    [call] = of(events, "call")
    replay = [item for e in of(events, "replay") for item in e["items"]]
    assert replay  # what the API wants back with the call
    pending = [
        {
            "text": "",
            "calls": [{**call, "output": "done", "is_error": False}],
            "replay": replay,
        }
    ]
    resp, events = run_round(gateway, cid, model, tools=offered, pending=pending, effort="medium")
    assert resp.status_code == 200, resp.text  # the fakes refuse a call sent back unsigned
    assert events[-1]["outcome"] == "completed"
    sent = fake_llm.last_request.body.decode()
    signature = {
        "gemini_generate_content": THOUGHT_SIGNATURE,
        "google_generate_content": THOUGHT_SIGNATURE,
        "bedrock_converse": REASONING_SIGNATURE,
    }.get(FORMATS[model][0])
    if signature is not None:
        assert signature in sent
    assert DEFAULT_THINKING.split()[0] in sent or signature is not None


@pytest.mark.parametrize("model", ["gemini/gemini-2.5-flash", f"bedrock/{BEDROCK_SONNET}"])
def test_leaving_a_round_cancels_the_upstream_stream_and_records_it_cancelled(
    gateway: IrisgateServer, fake_llm: FakeLLM, model: str
) -> None:
    gate = threading.Event()
    fake_llm.stream_gate = gate
    fake_llm.gate_after_events = 2
    cid = conversation(gateway, "A long story, please")
    client = api(gateway, USER)
    with client.stream(
        "POST", f"/api/chat/conversations/{cid}/round", json={"model": model}
    ) as resp:
        request_id = resp.headers["x-irisgate-request-id"]
        first = next(line for line in resp.iter_lines() if line.startswith("data:"))
        assert orjson.loads(first[5:])["type"] == "text"
    client.close()  # the browser's Stop: its connection goes away mid-answer
    try:
        assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    finally:
        gate.set()
    record = wait_recorded(gateway, request_id)
    assert record["cancelled"] is True and record["login_name"] == USER


def test_gemini_and_bedrock_answers_stream_in_the_chat_page(
    gateway: IrisgateServer, browser: Browser, fake_llm: FakeLLM
) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    page.goto(gateway.url + "/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    for n, (search, model) in enumerate(
        (("gemini-2.5-flash", "gemini/gemini-2.5-flash"), ("sonnet", f"bedrock/{BEDROCK_SONNET}"))
    ):
        fake_llm.reply_text = f"Answer number {n} from the wire."
        page.fill("#model-search", search)
        expect(page.locator("#model-select")).to_have_value(model)
        features = "streaming · tools · images · reasoning"
        title = "Gemini" if n == 0 else "Bedrock Converse"
        expect(page.locator("#model-features")).to_have_text(f"{title} · {features}")
        page.fill("#prompt", f"Question {n}")
        page.click("#send")
        answer = page.locator(".msg.assistant").nth(n)
        expect(answer.locator(".body")).to_have_text(f"Answer number {n} from the wire.")
        expect(page.locator("#send")).to_be_visible()
        assert fake_llm.last_request.path == FORMATS[model][1]
    screenshot(page, "chat-gemini-bedrock")
    found = api(gateway, USER).get("/api/chat/conversations").json()["conversations"]
    [listed] = [c for c in found if c["title"] == "Question 0"]
    detail = api(gateway, USER).get(f"/api/chat/conversations/{listed['id']}").json()
    answers = [m for m in detail["messages"] if m["role"] == "assistant"]
    assert [m["model"] for m in answers] == ["gemini/gemini-2.5-flash", f"bedrock/{BEDROCK_SONNET}"]
    assert all(m["outcome"] == "completed" for m in answers)
    record = wait_recorded(gateway, answers[1]["request_id"])
    assert record["api_format"] == "bedrock_converse" and record["login_name"] == USER
    context.close()
