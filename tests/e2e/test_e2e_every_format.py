"""Every API format first-class, through a real irisgate and the official SDKs: google-genai
(Gemini API and Vertex), anthropic's AnthropicVertex, boto3 (Bedrock InvokeModel and
Converse). Sessions follow conversations, guardrail hooks see the user's message and the
answer's tool calls, the catalog shows formats and prices, and every request (refused ones
too) is recorded whole with its sizes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import botocore.exceptions
import httpx2
import pytest
from cloud_setup import (
    BEDROCK_HAIKU,
    VERTEX_CLAUDE,
    bedrock_client,
    cloud_config,
    gemini_client,
    vertex_client,
)
from conftest import wait_for_record
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from test_e2e_google import _anthropic_vertex

from irisgate.testing import FakeGoogleOAuth, FakeHook, FakeLLM
from irisgate.testing.server import IrisgateServer

SYSTEM = "Answer briefly."
BLOCKED = 451
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _guard(payload: Any) -> dict[str, Any]:
    """Blocks any request whose last user message says BLOCKME."""
    if "BLOCKME" in (payload or {}).get("user_message", ""):
        return {"action": "block", "status_code": BLOCKED, "message": "blocked by the guard"}
    return {"action": "allow"}


@pytest.fixture(scope="module")
def hooks() -> Iterator[FakeHook]:
    with FakeHook() as fake:
        fake.answer("guard", _guard)
        yield fake


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, hooks: FakeHook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    with FakeGoogleOAuth() as oauth:
        config = json.loads(
            cloud_config(
                fake_llm.base_url,
                oauth.service_account("vertex-proj"),
                oauth.service_account("refresh-proj", name="refresher"),
            )
        )
        config["hooks"] = {
            "guard": {"url": hooks.url("guard")},
            "audit": {"url": hooks.url("audit")},
        }
        wiring = [
            {"name": "guard", "events": ["pre_request"], "send": ["user_message"]},
            {
                "name": "audit",
                "events": ["entire_request"],
                "send": ["user_message", "tools", "estimated_cost"],
            },
        ]
        # a bucket too small for any request to Vertex Express's model: refused with 429
        config["quotas"] = {"tiny:<user>": {"capacity": "$0.000000001", "rate": "$0/day"}}
        config["grants"][0]["app"]["tailscale.com/cap/aperture"].extend(
            [
                {"send_hooks": wiring},
                {"models": "vertex-express/**", "quotas": [{"bucket": "tiny:<user>"}]},
            ]
        )
        server = IrisgateServer(
            json.dumps(config), data_dir=Path(tmp_path_factory.mktemp("gw")), identity="dev"
        )
        with server:
            yield server


# -- one conversation turn per format, through its SDK: (request id, status) -------------------
#
# `turns` are the user's messages so far; the model's answers between them are fixed text.

Turn = Callable[..., tuple[str, int]]


def _google_turn(client: Any, model: str, turns: list[str], **config: Any) -> tuple[str, int]:
    contents = []
    for i, text in enumerate(turns):
        if i:
            contents.append(genai_types.Content(role="model", parts=[genai_types.Part(text="ok")]))
        contents.append(genai_types.Content(role="user", parts=[genai_types.Part(text=text)]))
    settings = genai_types.GenerateContentConfig(system_instruction=SYSTEM, **config)
    try:
        response = client.models.generate_content(model=model, contents=contents, config=settings)
    except genai_errors.APIError as exc:
        headers = exc.response.headers if exc.response is not None else {}
        return headers.get("x-irisgate-request-id", ""), exc.code
    assert response.sdk_http_response is not None and response.sdk_http_response.headers
    return response.sdk_http_response.headers["x-irisgate-request-id"], 200


def gemini(gw: IrisgateServer, turns: list[str], **config: Any) -> tuple[str, int]:
    return _google_turn(gemini_client(gw), "gemini-2.5-flash", turns, **config)


def vertex(gw: IrisgateServer, turns: list[str], **config: Any) -> tuple[str, int]:
    return _google_turn(vertex_client(gw), "gemini-2.5-pro", turns, **config)


def _anthropic_messages(turns: list[str], content: Callable[[str], Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i, text in enumerate(turns):
        if i:
            messages.append({"role": "assistant", "content": content("ok")})
        messages.append({"role": "user", "content": content(text)})
    return messages


def vertex_claude(gw: IrisgateServer, turns: list[str], **extra: Any) -> tuple[str, int]:
    client = _anthropic_vertex(gw)
    try:
        raw = client.messages.with_raw_response.create(
            model=VERTEX_CLAUDE,
            max_tokens=100,
            system=SYSTEM,
            messages=_anthropic_messages(turns, str),  # type: ignore[arg-type]
            **extra,
        )
    except anthropic.APIStatusError as exc:
        return exc.response.headers["x-irisgate-request-id"], exc.status_code
    return raw.headers["x-irisgate-request-id"], 200


def _bedrock_call(call: Callable[[], dict[str, Any]]) -> tuple[str, int]:
    try:
        response = call()
    except botocore.exceptions.ClientError as exc:
        meta = exc.response["ResponseMetadata"]
        return meta["HTTPHeaders"]["x-irisgate-request-id"], meta["HTTPStatusCode"]
    return response["ResponseMetadata"]["HTTPHeaders"]["x-irisgate-request-id"], 200


def bedrock_invoke(gw: IrisgateServer, turns: list[str], **extra: Any) -> tuple[str, int]:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "system": SYSTEM,
        "messages": _anthropic_messages(turns, str),
        **extra,
    }
    client = bedrock_client(gw)
    return _bedrock_call(lambda: client.invoke_model(modelId=BEDROCK_HAIKU, body=json.dumps(body)))


def bedrock_converse(gw: IrisgateServer, turns: list[str], **extra: Any) -> tuple[str, int]:
    messages = _anthropic_messages(turns, lambda text: [{"text": text}])
    client = bedrock_client(gw)
    return _bedrock_call(
        lambda: client.converse(
            modelId=BEDROCK_HAIKU, system=[{"text": SYSTEM}], messages=messages, **extra
        )
    )


TURNS: dict[str, Turn] = {
    "gemini": gemini,
    "vertex": vertex,
    "vertex_claude": vertex_claude,
    "bedrock_invoke": bedrock_invoke,
    "bedrock_converse": bedrock_converse,
}


# -- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api", sorted(TURNS))
def test_each_conversation_is_its_own_session(gw: IrisgateServer, api: str) -> None:
    turn = TURNS[api]
    first, _ = turn(gw, [f"plan a trip to Lisbon ({api})"])
    second, _ = turn(gw, [f"plan a trip to Lisbon ({api})", "and a day in Sintra"])
    other, _ = turn(gw, [f"review my essay on rivers ({api})"])
    sessions = [wait_for_record(gw, rid)["session_id"] for rid in (first, second, other)]
    assert sessions[0] and sessions[0] == sessions[1], "a later turn joins its conversation"
    assert sessions[2] != sessions[0], "another conversation is another session"


# -- hooks --------------------------------------------------------------------------------------


def _calls(hooks: FakeHook, name: str, request_id: str) -> list[dict[str, Any]]:
    return [
        c.payload for c in hooks.calls_to(name) if c.payload["metadata"]["request_id"] == request_id
    ]


@pytest.mark.parametrize("api", sorted(TURNS))
def test_a_guardrail_blocks_the_word_on_every_format(
    gw: IrisgateServer, hooks: FakeHook, fake_llm: FakeLLM, api: str
) -> None:
    turn = TURNS[api]
    before = len(fake_llm.requests)
    blocked, status = turn(gw, ["hello", "please BLOCKME now"])
    assert status == BLOCKED
    assert len(fake_llm.requests) == before, "a blocked request never reaches the upstream"
    [seen] = _calls(hooks, "guard", blocked)
    assert seen["user_message"] == "please BLOCKME now"
    allowed, status = turn(gw, ["please BLOCKME now", "never mind, say hi"])
    assert status == 200, wait_for_record(gw, allowed)["error"]
    [seen] = _calls(hooks, "guard", allowed)
    assert seen["user_message"] == "never mind, say hi"


def _google_tools() -> dict[str, Any]:
    declaration = genai_types.FunctionDeclaration(
        name=WEATHER["name"],
        description=WEATHER["description"],
        parameters_json_schema=WEATHER["parameters"],
    )
    return {
        "tools": [genai_types.Tool(function_declarations=[declaration])],
        "automatic_function_calling": genai_types.AutomaticFunctionCallingConfig(disable=True),
    }


TOOLS: dict[str, Callable[[], dict[str, Any]]] = {
    "gemini": _google_tools,
    "vertex": _google_tools,
    "vertex_claude": lambda: {
        "tools": [
            {
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "input_schema": WEATHER["parameters"],
            }
        ]
    },
    "bedrock_invoke": lambda: {
        "tools": [
            {
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "input_schema": WEATHER["parameters"],
            }
        ]
    },
    "bedrock_converse": lambda: {
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": WEATHER["name"],
                        "description": WEATHER["description"],
                        "inputSchema": {"json": WEATHER["parameters"]},
                    }
                }
            ]
        }
    },
}


@pytest.mark.parametrize("api", sorted(TURNS))
def test_hooks_get_the_tool_calls_and_every_token_kind(
    gw: IrisgateServer, hooks: FakeHook, fake_llm: FakeLLM, api: str
) -> None:
    fake_llm.cached_tokens = 7
    fake_llm.reasoning_tokens = 5
    request_id, status = TURNS[api](gw, ["please call tool get_weather"], **TOOLS[api]())
    assert status == 200
    assert hooks.wait_for(lambda: bool(_calls(hooks, "audit", request_id)))
    [payload] = _calls(hooks, "audit", request_id)
    assert payload["user_message"] == "please call tool get_weather"
    [call] = payload["tool_calls"]
    assert call["name"] == "get_weather" and isinstance(call["params"], dict)
    usage = payload["metadata"]["estimated_cost"]["usage"]
    record = wait_for_record(gw, request_id)
    assert usage["cached_tokens"] == record["cache_read_tokens"] > 0
    if record["reasoning_tokens"]:  # the Google fakes report thoughts; Anthropic's count none
        assert usage["reasoning_tokens"] == record["reasoning_tokens"]
    assert usage["input_tokens"] == record["input_tokens"]
    assert usage["output_tokens"] == record["output_tokens"]
    assert record["tool_calls"] == 1


# -- catalog ------------------------------------------------------------------------------------


def _http(gw: IrisgateServer) -> httpx2.Client:
    return httpx2.Client(base_url=gw.url, timeout=30)


CLOUD_MODELS = {
    "gemini": ("gemini-2.5-flash", ["gemini_generate_content"]),
    "vertex": ("gemini-2.5-pro", ["google_generate_content", "google_raw_predict"]),
    "bedrock": (BEDROCK_HAIKU, ["bedrock_converse", "bedrock_model_invoke"]),
}


def test_the_catalog_shows_formats_and_prices_of_cloud_models(gw: IrisgateServer) -> None:
    with _http(gw) as http:
        groups = {g["provider"]: g for g in http.get("/api/models").json()["providers"]}
        listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
        providers = {p["id"]: p for p in http.get("/api/providers").json()}
    for provider, (model, flags) in CLOUD_MODELS.items():
        entry = next(m for m in groups[provider]["models"] if m["id"] == model)
        assert entry["formats"] == flags
        assert float(entry["prices_per_million"]["input"]) > 0
        assert [a["flag"] for a in groups[provider]["apis"]] == flags
        assert entry["test"]["format"] == flags[0]
        assert sorted(f["flag"] for f in providers[provider]["formats"]) == sorted(flags)
        assert all(f["endpoints"] for f in providers[provider]["formats"])
        assert float(providers[provider]["prices_per_million"][model]["input"]) > 0
    # /v1/models lists a model once, from the first provider serving it
    assert float(listed["gemini-2.5-flash"]["pricing"]["input"]) > 0
    assert listed["gemini-2.5-flash"]["formats"] == ["gemini_generate_content"]
    assert float(listed[BEDROCK_HAIKU]["pricing"]["output"]) > 0


def test_the_catalogs_test_request_is_answered_for_every_format(gw: IrisgateServer) -> None:
    """What the Models page's Test button sends, sent as it would: each answers 200."""
    with _http(gw) as http:
        groups = http.get("/api/models").json()["providers"]
        tested = set()
        for group in groups:
            for model in group["models"]:
                test = model["test"]
                if not model["granted"] or test is None or test["format"] in tested:
                    continue
                response = http.post(test["path"], json=test["body"])
                assert response.status_code == 200, (test, response.text)
                tested.add(test["format"])
    assert tested == {
        "gemini_generate_content",
        "google_generate_content",
        "google_raw_predict",
        "bedrock_converse",
    }


# -- records ------------------------------------------------------------------------------------


def test_refused_requests_are_recorded_whole(gw: IrisgateServer, hooks: FakeHook) -> None:
    client = bedrock_client(gw)
    messages = [{"role": "user", "content": [{"text": "is anyone there"}]}]
    refused = {
        # an unknown model (404) and an ungranted one (403), asked for as streams
        404: lambda: client.converse_stream(modelId="amazon.nope-v1:0", messages=messages),
        403: lambda: client.converse_stream(
            modelId="anthropic.claude-secret-v1:0", messages=messages
        ),
    }
    for status, call in refused.items():
        request_id, got = _bedrock_call(call)
        assert got == status
        record = wait_for_record(gw, request_id)
        assert record["status"] == status
        assert record["stream"] is True
        assert record["session_id"].startswith("fp_")
        assert json.loads(record["request_body"])["messages"] == messages
        assert record["request_headers"]["authorization"] == "[redacted]"
        assert record["request_headers"]["content-type"] == "application/json"
        assert record["request_bytes"] > 0 and record["response_bytes"] > 0
    # a quota's refusal (429), through Vertex
    express = vertex_client(gw)
    for _ in range(20):  # the first request spends the bucket, a later one is refused
        request_id, status = _google_turn(express, "gemini-2.5-flash-lite", ["costly"])
        if status != 200:
            break
    assert status == 429
    record = wait_for_record(gw, request_id)
    assert record["status"] == 429 and record["stream"] is False and record["session_id"]
    assert "costly" in record["request_body"] and record["request_headers"]
    # a hook's block (451), asked for as a Gemini stream
    google = gemini_client(gw)  # kept: the SDK closes its HTTP client when collected
    stream = google.models.generate_content_stream(
        model="gemini-2.5-flash", contents="BLOCKME please"
    )
    with pytest.raises(genai_errors.APIError) as blocked:
        list(stream)
    assert blocked.value.code == BLOCKED and blocked.value.response is not None
    record = wait_for_record(gw, blocked.value.response.headers["x-irisgate-request-id"])
    assert record["status"] == BLOCKED and record["stream"] is True
    assert record["session_id"] and "BLOCKME please" in record["request_body"]
    assert record["request_headers"]["x-goog-api-key"] == "[redacted]"


@pytest.mark.parametrize("api", sorted(TURNS))
def test_answered_requests_record_their_sizes(gw: IrisgateServer, api: str) -> None:
    request_id, status = TURNS[api](gw, ["how big is this"])
    assert status == 200
    record = wait_for_record(gw, request_id)
    # the model is in the path: the body goes upstream as the client sent it
    assert record["request_bytes"] == len(record["request_body"].encode()) > 0
    assert record["response_bytes"] == len(record["response_body"].encode()) > 0
