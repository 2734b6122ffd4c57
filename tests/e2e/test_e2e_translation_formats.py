"""Translation end to end for the formats of issue 21's second part: OpenAI Responses and
Gemini generateContent as the caller's API and as the provider's, Bedrock Converse as the
provider's, through the official openai, anthropic and google-genai SDKs against the fakes'
vendor wire formats (the table of test_e2e_translation.py covers Chat Completions <-> Messages and
gives the drivers of those two client APIs, reused here).

Reasoning is the point of the last tests: a provider's signed reasoning must come back with
the next turn (Anthropic refuses a tool turn with thinking on without it), and a Responses
client carries it in its own opaque field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
import test_e2e_translation as base  # the drivers of the Chat and Messages APIs
from conftest import ALICE_IP, ANTHROPIC_KEY, OPENAI_KEY, Gateway, client_from, wait_for_record
from google import genai
from google.genai import types

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate

GEMINI_KEY = "gemini-upstream-secret"
BEDROCK_KEY = "bedrock-upstream-secret"
VERTEX_KEY = "AQ.vertex-express-upstream-secret"
#: the model each provider format serves (a provider of that format only, translating)
MODELS: dict[str, str] = {
    "openai_chat": "gpt-4.1-mini",
    "anthropic_messages": "claude-haiku-4-5",
    "openai_responses": "gpt-5-mini",
    "gemini_generate_content": "gemini-2.5-flash",
    "bedrock_converse": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "google_generate_content": "gemini-2.5-pro",  # on Vertex AI (Express: a plain key)
}
#: signs its function calls whether or not thoughts are asked for (the fake, as Gemini 3)
GEMINI_3 = "gemini-3-pro-preview"
#: a Gemini caller names the model in its path, where a Bedrock id's ':' cannot be (the path
#: reads `{model}:{method}`): its Converse model is one without
GEMINI_CALLER_MODELS = {**MODELS, "bedrock_converse": "anthropic.claude-haiku-4-5"}
#: the models of the error test, each on a provider of its own
ERROR_MODELS = {
    "openai_responses": "gpt-5-nano",
    "gemini_generate_content": "gemini-2.5-flash-lite",
    "bedrock_converse": "anthropic.claude-errors",
}
#: the path each provider format is called at
PATHS: dict[str, str] = {
    "openai_chat": "/v1/chat/completions",
    "anthropic_messages": "/v1/messages",
    "openai_responses": "/v1/responses",
    "gemini_generate_content": "/v1beta/models/gemini-2.5-flash:generateContent",
    "bedrock_converse": "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse",
    # Vertex's project and region filled in: Express takes the project-less form
    "google_generate_content": "/v1/publishers/google/models/gemini-2.5-pro:generateContent",
}
PRICE_BASIS = {
    "openai_chat": "openai",
    "anthropic_messages": "anthropic",
    "openai_responses": "openai",
    "gemini_generate_content": "google",
    "bedrock_converse": "bedrock-us",
    "google_generate_content": "vertex",
}


def _provider(upstream: str, fmt: str, **auth: str) -> dict[str, Any]:
    return {
        "baseurl": upstream,
        "models": [MODELS[fmt]],
        "compatibility": {fmt: True},
        "translate": True,
        **auth,
    }


def config(upstream: str) -> str:
    providers = {
        "chat": _provider(upstream, "openai_chat", apikey=OPENAI_KEY),
        "messages": _provider(
            upstream, "anthropic_messages", apikey=ANTHROPIC_KEY, authorization="x-api-key"
        ),
        "responses": _provider(upstream, "openai_responses", apikey=OPENAI_KEY),
        "gemini": {
            **_provider(
                upstream,
                "gemini_generate_content",
                apikey=GEMINI_KEY,
                authorization="x-goog-api-key",
            ),
            "models": [MODELS["gemini_generate_content"], GEMINI_3],
        },
        "bedrock": {
            **_provider(upstream, "bedrock_converse", apikey=BEDROCK_KEY),
            "models": [MODELS["bedrock_converse"], GEMINI_CALLER_MODELS["bedrock_converse"]],
            "cost_basis": "bedrock-us",
        },
        "vertex": _provider(
            upstream,
            "google_generate_content",
            apikey=VERTEX_KEY,
            authorization="x-goog-api-key",
        ),
    }
    # the error test's own providers: a 429 puts its provider in a cooldown the other tests
    # must not meet
    for fmt, model in ERROR_MODELS.items():
        auth = {"authorization": "x-goog-api-key"} if "gemini" in fmt else {}
        providers[f"{fmt}-errors"] = {
            **_provider(upstream, fmt, apikey="k", **auth),
            "models": [model],
        }
    grant = {
        "src": ["alice@example.com"],
        "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
    }
    return json.dumps({"providers": providers, "grants": [grant]})


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessIrisgate]:
    assert localapi.socket_path
    with InProcessIrisgate(
        config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("translation-formats"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    ) as gateway:
        yield gateway


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key="client-key",
        http_client=client_from(ALICE_IP, gw),
        max_retries=0,
    )


class ResponsesDriver:
    """What Codex and other Responses API clients send, through the openai SDK."""

    end, tool_use = "completed", "completed"

    def ask(
        self,
        gw: Gateway,
        model: str,
        stream: bool,
        *,
        text: str,
        image: bool = False,
        tools: bool = False,
        effort: str | None = None,
        result_of: Any = None,
    ) -> Any:
        content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
        if image:
            url = f"data:image/png;base64,{base.PIXEL}"
            content.append({"type": "input_image", "image_url": url})
        items: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if result_of is not None:
            for call_id, name, args in result_of.calls:
                arguments = json.dumps(args)
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call_id,
                        "name": name,
                        "arguments": arguments,
                    }
                )
            items += [
                {"type": "function_call_output", "call_id": c, "output": "sunny and 21 degrees"}
                for c, _, _ in result_of.calls
            ]
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = [{"type": "function", **base.WEATHER}]
        if effort:
            extra["reasoning"] = {"effort": effort}
        kwargs = {"model": model, "input": items, "instructions": "You are terse.", **extra}
        client = _client(gw)
        if stream:
            with client.responses.with_streaming_response.create(
                stream=True, max_output_tokens=3000, **kwargs
            ) as answer:
                request_id = answer.headers["x-irisgate-request-id"]
                events = list(answer.parse())
            assert [e.sequence_number for e in events] == list(range(len(events)))
            response = events[-1].response
        else:
            raw = client.responses.with_raw_response.create(max_output_tokens=3000, **kwargs)
            response, request_id = raw.parse(), raw.headers["x-irisgate-request-id"]
        assert response.usage is not None
        calls = [
            (item.call_id, item.name, json.loads(item.arguments))
            for item in response.output
            if item.type == "function_call"
        ]
        return base.Answer(
            response.output_text,
            calls,
            response.usage.input_tokens,
            response.usage.output_tokens,
            response.status,
            request_id,
        )


class GeminiDriver:
    """What Gemini CLI and other google-genai clients send (the model in the path)."""

    end, tool_use = "STOP", "STOP"

    def ask(
        self,
        gw: Gateway,
        model: str,
        stream: bool,
        *,
        text: str,
        image: bool = False,
        tools: bool = False,
        effort: str | None = None,
        result_of: Any = None,
    ) -> Any:
        http = client_from(ALICE_IP, gw)
        client = genai.Client(
            api_key="client-key",
            http_options=types.HttpOptions(base_url=gw.url, httpx_client=http),
        )
        parts = [types.Part(text=text)]
        if image:
            parts.append(
                types.Part.from_bytes(data=base64.b64decode(base.PIXEL), mime_type="image/png")
            )
        contents = [types.Content(role="user", parts=parts)]
        if result_of is not None:
            calls = [
                types.Part(function_call=types.FunctionCall(id=i, name=n, args=a))
                for i, n, a in result_of.calls
            ]
            answers = [
                types.Part(
                    function_response=types.FunctionResponse(
                        id=i, name=n, response={"output": "sunny and 21 degrees"}
                    )
                )
                for i, n, _ in result_of.calls
            ]
            contents += [
                types.Content(role="model", parts=calls),
                types.Content(role="user", parts=answers),
            ]
        config = types.GenerateContentConfig(
            system_instruction="You are terse.", max_output_tokens=3000
        )
        if tools:
            declaration = types.FunctionDeclaration(
                name=base.WEATHER["name"],
                description=base.WEATHER["description"],
                parameters_json_schema=base.WEATHER["parameters"],
            )
            config.tools = [types.Tool(function_declarations=[declaration])]
        if effort:
            config.thinking_config = types.ThinkingConfig(
                thinking_budget=2048, include_thoughts=True
            )
        ask = client.models.generate_content_stream if stream else client.models.generate_content
        answer = ask(model=model, contents=contents, config=config)
        chunks = list(answer) if stream else [answer]
        said, calls_made, finish = "", [], ""
        for chunk in chunks:
            candidate = (chunk.candidates or [types.Candidate()])[0]
            finish = candidate.finish_reason.value if candidate.finish_reason else finish
            for part in (candidate.content.parts if candidate.content else None) or []:
                said += part.text if part.text and not part.thought else ""
                if part.function_call is not None:
                    call = part.function_call
                    calls_made.append((call.id, call.name, call.args))
        usage = chunks[-1].usage_metadata
        assert usage is not None, "the usage rides on the last chunk"
        response = chunks[-1].sdk_http_response
        assert response is not None and response.headers is not None
        return base.Answer(
            said,
            calls_made,
            usage.prompt_token_count,
            (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0),
            finish,
            response.headers["x-irisgate-request-id"],
        )


DRIVERS: dict[str, Any] = {
    "openai_chat": base.OpenAIChatDriver(),
    "anthropic_messages": base.AnthropicDriver(),
    "openai_responses": ResponsesDriver(),
    "gemini_generate_content": GeminiDriver(),
}
NEW = (
    "openai_responses",
    "gemini_generate_content",
    "bedrock_converse",
    "google_generate_content",
)
#: every pair with a format of this part on one side
PAIRS = [
    pytest.param(client, provider, id=f"{client}->{provider}")
    for client in DRIVERS
    for provider in MODELS
    if client != provider and (client in NEW or provider in NEW)
]
STREAM = [pytest.param(False, id="plain"), pytest.param(True, id="stream")]


def test_every_pair_of_the_registry_is_driven_by_one_of_the_two_tables() -> None:
    """A format added to irisgate.translate without a driver or a fake model fails here
    instead of going untested."""
    from irisgate.translate import CLIENTS, PROVIDERS

    driven = {tuple(p.values) for p in PAIRS} | {tuple(p.values) for p in base.PAIRS}
    wanted = {
        (client, provider)
        for client in CLIENTS
        for provider in PROVIDERS
        if client != provider and client != "google_generate_content"
    }
    assert wanted - driven == set()


def _model(client: str, provider: str) -> str:
    return (GEMINI_CALLER_MODELS if client == "gemini_generate_content" else MODELS)[provider]


def _path(provider: str, stream: bool) -> str:
    path = PATHS[provider]
    if not stream:
        return path
    if provider in ("gemini_generate_content", "google_generate_content"):
        return path.replace(":generateContent", ":streamGenerateContent")
    return path + "-stream" if provider == "bedrock_converse" else path


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_text(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    driver, model = DRIVERS[client], _model(client, provider)
    answer = driver.ask(gw, model, stream, text="say something nice")
    assert answer.text == base.EXPECTED_TEXT
    assert answer.stop == driver.end
    upstream = fake_llm.last_request
    assert upstream.path == _path(provider, stream).replace(MODELS[provider], model)
    assert "client-key" not in str(dict(upstream.headers))
    record = wait_for_record(gw, answer.request_id)
    assert record["api_format"] == client and record["upstream_format"] == provider
    assert record["model"] == model and record["status"] == 200 and record["stream"] is stream
    assert record["output_tokens"] == answer.output_tokens == 20
    assert record["input_tokens"] == answer.input_tokens > 0
    if model == MODELS[provider]:  # the Gemini caller's Converse model id has no list price
        assert record["cost_nanodollars"] > 0
        assert record["cost_basis"] == f"{PRICE_BASIS[provider]}/{model}"


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_tool_turn(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    driver, model = DRIVERS[client], _model(client, provider)
    call = driver.ask(gw, model, stream, text="please call tool get_weather", tools=True)
    assert call.stop == driver.tool_use
    assert [(name, args) for _, name, args in call.calls] == [("get_weather", {"city": "fake"})]
    answer = driver.ask(
        gw, model, stream, text="please call tool get_weather", tools=True, result_of=call
    )
    assert answer.text == base.EXPECTED_TEXT and answer.stop == driver.end
    upstream = json.dumps(fake_llm.last_request.json)
    assert "sunny and 21 degrees" in upstream and call.calls[0][0] in upstream


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_image(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    model = _model(client, provider)
    answer = DRIVERS[client].ask(gw, model, stream, text="what is in it", image=True)
    assert answer.text == base.EXPECTED_TEXT
    assert base.PIXEL in json.dumps(fake_llm.last_request.json)


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(
    "provider", ["anthropic_messages", "gemini_generate_content", "bedrock_converse"]
)
def test_codex_style_thinking_tool_turn(
    gw: InProcessIrisgate, fake_llm: FakeLLM, provider: str, stream: bool
) -> None:
    """A Responses client with reasoning on, calling a tool, then sending the answer back
    as its history: the provider gets its own signed reasoning back."""
    client = _client(gw)
    user = {"role": "user", "content": "please call tool get_weather"}
    kwargs: dict[str, Any] = {
        "model": MODELS[provider],
        "tools": [{"type": "function", **base.WEATHER}],
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "max_output_tokens": 8000,
    }
    if stream:
        with client.responses.stream(input=[user], **kwargs) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(input=[user], **kwargs)
    kinds = [item.type for item in first.output]
    assert kinds[-1] == "function_call" and set(kinds[:-1]) == {"reasoning"}
    signed = [i for i in first.output if i.type == "reasoning" and i.encrypted_content]
    assert signed
    history = [user, *(item.model_dump(exclude_none=True) for item in first.output)]
    history += [
        {"type": "function_call_output", "call_id": item.call_id, "output": "sunny and 21 degrees"}
        for item in first.output
        if item.type == "function_call"
    ]
    second = client.responses.create(input=history, **kwargs)
    assert second.output_text == base.EXPECTED_TEXT
    body = fake_llm.last_request.json
    assert isinstance(body, dict)
    if provider == "anthropic_messages":
        said = body["messages"][1]["content"]
        assert [block["type"] for block in said] == ["thinking", "tool_use"]
        assert said[0]["thinking"] == signed[0].summary[0].text and said[0]["signature"]
    elif provider == "bedrock_converse":
        said = body["messages"][1]["content"]
        assert said[0]["reasoningContent"]["reasoningText"]["signature"]
    else:  # Gemini's signature is back on the call it came with (never the marked value)
        call = next(p for p in body["contents"][1]["parts"] if "functionCall" in p)
        assert call["thoughtSignature"] and "irisgate" not in json.dumps(body)


@pytest.mark.parametrize(
    "provider", ["openai_responses", "gemini_generate_content", "bedrock_converse"]
)
def test_provider_errors_in_the_callers_envelope(
    gw: InProcessIrisgate, fake_llm: FakeLLM, provider: str
) -> None:
    driver, model = DRIVERS["openai_chat"], ERROR_MODELS[provider]
    fake_llm.fail_next(400)
    with pytest.raises(openai.BadRequestError) as bad:
        driver.ask(gw, model, False, text="hello")
    assert bad.value.status_code == 400
    fake_llm.fail_next(429, headers={"Retry-After": "7"})
    with pytest.raises(openai.RateLimitError) as limited:
        driver.ask(gw, model, True, text="hello")
    assert limited.value.response.headers["retry-after"] == "7"


def test_responses_state_is_refused_before_any_upstream(
    gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    client = _client(gw)
    before = len(fake_llm.requests)
    with pytest.raises(openai.BadRequestError) as previous:
        client.responses.create(
            model=MODELS["anthropic_messages"], input="hi", previous_response_id="resp_123"
        )
    assert "'previous_response_id'" in previous.value.message
    with pytest.raises(openai.BadRequestError) as search:
        client.responses.create(
            model=MODELS["gemini_generate_content"],
            input="hi",
            tools=[{"type": "web_search"}],
        )
    assert "built-in 'web_search' tool" in search.value.message
    with pytest.raises(openai.BadRequestError) as json_mode:
        client.chat.completions.create(
            model=MODELS["bedrock_converse"],
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )
    assert "JSON mode" in json_mode.value.message
    assert len(fake_llm.requests) == before, "nothing went upstream"


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("provider", ["anthropic_messages", "bedrock_converse"])
def test_gemini_client_thinking_tool_turn(
    gw: InProcessIrisgate, fake_llm: FakeLLM, provider: str, stream: bool
) -> None:
    """A google-genai chat with thinking on, calling a tool, sends the model's parts back as
    its history: the provider gets its own signed reasoning back."""
    client = genai.Client(
        api_key="client-key",
        http_options=types.HttpOptions(base_url=gw.url, httpx_client=client_from(ALICE_IP, gw)),
    )
    declaration = types.FunctionDeclaration(
        name="get_weather", parameters_json_schema=base.WEATHER["parameters"]
    )
    config = types.GenerateContentConfig(
        max_output_tokens=8000,
        thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True),
        tools=[types.Tool(function_declarations=[declaration])],
    )
    model = GEMINI_CALLER_MODELS[provider]
    user = types.Content(role="user", parts=[types.Part(text="please call tool get_weather")])
    if stream:
        chunks = list(
            client.models.generate_content_stream(model=model, contents=[user], config=config)
        )
    else:
        chunks = [client.models.generate_content(model=model, contents=[user], config=config)]
    parts = [p for c in chunks for p in c.candidates[0].content.parts]  # type: ignore[index,union-attr]
    assert any(p.thought and p.thought_signature for p in parts)
    calls = [p.function_call for p in parts if p.function_call]
    assert [c.name for c in calls] == ["get_weather"]
    results = [
        types.Part(
            function_response=types.FunctionResponse(
                id=c.id, name=c.name, response={"output": "sunny and 21 degrees"}
            )
        )
        for c in calls
    ]
    history = [
        user,
        types.Content(role="model", parts=parts),
        types.Content(role="user", parts=results),
    ]
    second = client.models.generate_content(model=model, contents=history, config=config)
    assert second.text == base.EXPECTED_TEXT
    body = fake_llm.last_request.json
    assert isinstance(body, dict)
    said = body["messages"][1]["content"]
    if provider == "anthropic_messages":
        assert [block["type"] for block in said] == ["thinking", "tool_use"]
        assert said[0]["signature"] and said[0]["thinking"]
    else:
        assert said[0]["reasoningContent"]["reasoningText"]["signature"]
    assert "irisgate:" not in json.dumps(body)  # the marked value never goes upstream


@pytest.mark.parametrize("thinking", [False, True], ids=["no-thinking", "thinking"])
@pytest.mark.parametrize("stream", STREAM)
def test_an_anthropic_client_tool_turn_on_gemini_3(
    gw: InProcessIrisgate, fake_llm: FakeLLM, stream: bool, thinking: bool
) -> None:
    """What Claude Code does on a Gemini 3 model: the call's thought signature reaches the
    Messages client as a thinking block's signature, comes back with the history and goes to
    Gemini on its call (Gemini 3 refuses the turn without it), never marked."""
    client = anthropic.Anthropic(
        base_url=gw.url, api_key="client-key", http_client=client_from(ALICE_IP, gw), max_retries=0
    )
    tool: Any = {"name": "get_weather", "input_schema": base.WEATHER["parameters"]}
    extra: Any = {"thinking": {"type": "enabled", "budget_tokens": 2048}} if thinking else {}
    user: Any = {"role": "user", "content": "please call tool get_weather"}
    ask = {"model": GEMINI_3, "max_tokens": 8000, "tools": [tool], **extra}
    if stream:
        with client.messages.stream(messages=[user], **ask) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(messages=[user], **ask)
    assert first.stop_reason == "tool_use"
    said = [block.model_dump(exclude_none=True) for block in first.content]
    signed = [b for b in said if b["type"] == "thinking" and b["signature"]]
    assert [b["type"] for b in said][-1] == "tool_use" and len(signed) == 1
    assert signed[0]["signature"].startswith("irisgate:gemini_generate_content:s:")
    result = {"type": "tool_result", "tool_use_id": said[-1]["id"], "content": "sunny"}
    history = [user, {"role": "assistant", "content": said}, {"role": "user", "content": [result]}]
    second = client.messages.create(messages=history, **ask)
    assert second.content[-1].type == "text"
    assert second.content[-1].text == base.EXPECTED_TEXT
    body = fake_llm.last_request.json
    assert isinstance(body, dict)
    call = next(p for p in body["contents"][1]["parts"] if "functionCall" in p)
    assert call["thoughtSignature"] and "irisgate" not in json.dumps(body)
