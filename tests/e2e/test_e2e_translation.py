"""Translation end to end: every client API x every provider API irisgate translates between,
through the official SDKs, against fakes that speak each vendor's wire format.

The table is `CLIENTS` x `PROVIDERS` of irisgate.translate (pairs of one format are not
translation): a client format needs a driver here (`DRIVERS`: how its SDK asks for text,
tools, images and reasoning and reads the answer) and a provider format a fake model
(`PROVIDER_MODELS`); the pairs of the other formats (Responses and Gemini callers, Responses,
Gemini and Converse providers) are driven by test_e2e_translation_formats.py, and a test
there checks that every pair of the registry is driven by one of the two. Each case runs
plain and streamed.

irisgate runs in the test's process (`InProcessIrisgate`) where what the client sees only at
the end is the point; the incremental stream test uses a real process (`IrisgateServer`).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anthropic
import httpx2
import openai
import pytest
from conftest import ALICE_IP, ANTHROPIC_KEY, OPENAI_KEY, Gateway, client_from, wait_for_record

from irisgate.testing import FakeHook, FakeLLM, FakeLocalAPI
from irisgate.testing.fake_llm import DEFAULT_THINKING
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer
from irisgate.translate import CLIENTS, PROVIDERS

EXPECTED_TEXT = " ".join(f"tok{i}" for i in range(20))
#: a 1x1 PNG
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}

#: the model each provider format serves through translation (a provider of that format
#: only, with `"translate": true`), and its provider's config
PROVIDER_MODELS: dict[str, str] = {
    "openai_chat": "gpt-4.1-mini",
    "anthropic_messages": "claude-haiku-4-5",
}


def _providers(upstream: str) -> dict[str, Any]:
    return {
        "oai-t": {
            "baseurl": upstream,
            "apikey": OPENAI_KEY,
            "models": [PROVIDER_MODELS["openai_chat"]],
            "compatibility": {"openai_chat": True},
            "translate": True,
        },
        "ant-t": {
            "baseurl": upstream,
            "apikey": ANTHROPIC_KEY,
            "authorization": "x-api-key",
            "models": [PROVIDER_MODELS["anthropic_messages"]],
            "compatibility": {"anthropic_messages": True},
            "translate": True,
        },
        "ant-plain": {  # translate off: as before, reachable through its own API only
            "baseurl": upstream,
            "apikey": ANTHROPIC_KEY,
            "authorization": "x-api-key",
            "models": ["claude-untranslated"],
            "compatibility": {"anthropic_messages": True},
        },
        "openai": {
            "baseurl": upstream,
            "apikey": OPENAI_KEY,
            "models": ["gpt-4o-mini"],
            "compatibility": {"openai_chat": True},
            "translate": True,  # speaks the caller's API: never translated
        },
    }


def config(upstream: str) -> str:
    grant = {
        "src": ["alice@example.com"],
        "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
    }
    return json.dumps({"providers": _providers(upstream), "grants": [grant]})


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessIrisgate]:
    assert localapi.socket_path
    with InProcessIrisgate(
        config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("translation"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    ) as gateway:
        yield gateway


# -- what each client API's SDK does -----------------------------------------------------------


@dataclass
class Answer:
    text: str
    calls: list[tuple[str, str, dict[str, Any]]]  # (id, name, arguments)
    input_tokens: int  # as the caller's API reports it
    output_tokens: int
    stop: str  # the caller's API's own stop/finish reason
    request_id: str


class Driver(Protocol):
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
        result_of: Answer | None = None,
    ) -> Answer: ...

    #: the stop reason of an answer that ended normally, and of a tool call
    end: str
    tool_use: str


class OpenAIChatDriver:
    end, tool_use = "stop", "tool_calls"

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
        result_of: Answer | None = None,
    ) -> Answer:
        client = openai.OpenAI(
            base_url=gw.url + "/v1",
            api_key="client-key",
            http_client=client_from(ALICE_IP, gw),
            max_retries=0,
        )
        content: Any = text
        if image:
            url = f"data:image/png;base64,{PIXEL}"
            content = [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": url}},
            ]
        messages: list[Any] = [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": content},
        ]
        if result_of is not None:
            calls = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for call_id, name, args in result_of.calls
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages.extend(
                {"role": "tool", "tool_call_id": call_id, "content": "sunny and 21 degrees"}
                for call_id, _, _ in result_of.calls
            )
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = [{"type": "function", "function": WEATHER}]
        if effort:
            extra["reasoning_effort"] = effort
        if not stream:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=messages, max_tokens=3000, **extra
            )
            completion = raw.parse()
            message = completion.choices[0].message
            assert completion.usage is not None
            return Answer(
                message.content or "",
                [
                    (c.id, c.function.name, json.loads(c.function.arguments))
                    for c in message.tool_calls or []
                    if c.type == "function"
                ],
                completion.usage.prompt_tokens,
                completion.usage.completion_tokens,
                completion.choices[0].finish_reason,
                raw.headers["x-irisgate-request-id"],
            )
        with client.chat.completions.with_streaming_response.create(
            model=model,
            messages=messages,
            max_tokens=3000,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        ) as response:
            request_id = response.headers["x-irisgate-request-id"]
            chunks = list(response.parse())
        text_out, finish, usage = "", "", None
        calls: dict[int, list[str]] = {}
        for chunk in chunks:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text_out += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, ["", "", ""])
                    fn = call.function
                    entry[0] = call.id or entry[0]
                    entry[1] = (fn.name if fn else None) or entry[1]
                    entry[2] += (fn.arguments if fn else None) or ""
        assert usage is not None, "the usage rides on the last chunk"
        return Answer(
            text_out,
            [(i, n, json.loads(a)) for i, n, a in calls.values()],
            usage.prompt_tokens,
            usage.completion_tokens,
            finish,
            request_id,
        )


class AnthropicDriver:
    end, tool_use = "end_turn", "tool_use"

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
        result_of: Answer | None = None,
    ) -> Answer:
        client = anthropic.Anthropic(
            base_url=gw.url,
            api_key="client-key",
            http_client=client_from(ALICE_IP, gw),
            max_retries=0,
        )
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if image:
            source = {"type": "base64", "media_type": "image/png", "data": PIXEL}
            content.append({"type": "image", "source": source})
        messages: list[Any] = [{"role": "user", "content": content}]
        if result_of is not None:
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": i, "name": n, "input": a}
                        for i, n, a in result_of.calls
                    ],
                }
            )
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": i, "content": "sunny and 21 degrees"}
                        for i, _, _ in result_of.calls
                    ],
                }
            )
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = [
                {
                    "name": WEATHER["name"],
                    "description": WEATHER["description"],
                    "input_schema": WEATHER["parameters"],
                }
            ]
        if effort:
            extra["thinking"] = {"type": "enabled", "budget_tokens": 2048}
        kwargs = {
            "model": model,
            "max_tokens": 3000,
            "system": "You are terse.",
            "messages": messages,
            **extra,
        }
        if not stream:
            raw = client.messages.with_raw_response.create(**kwargs)
            message = raw.parse()
            request_id = raw.headers["x-irisgate-request-id"]
        else:
            with client.messages.stream(**kwargs) as events:
                message = events.get_final_message()
                request_id = events.response.headers["x-irisgate-request-id"]
        return Answer(
            "".join(b.text for b in message.content if b.type == "text"),
            [(b.id, b.name, dict(b.input)) for b in message.content if b.type == "tool_use"],  # type: ignore[arg-type]
            message.usage.input_tokens,
            message.usage.output_tokens,
            str(message.stop_reason),
            request_id,
        )


DRIVERS: dict[str, Driver] = {
    "openai_chat": OpenAIChatDriver(),
    "anthropic_messages": AnthropicDriver(),
}

PAIRS = [
    pytest.param(client, provider, id=f"{client}->{provider}")
    for client in sorted(CLIENTS)
    for provider in sorted(PROVIDERS)
    if client != provider and client in DRIVERS and provider in PROVIDER_MODELS
]
STREAM = [pytest.param(False, id="plain"), pytest.param(True, id="stream")]


def _case(client: str, provider: str) -> tuple[Driver, str]:
    return DRIVERS[client], PROVIDER_MODELS[provider]


def _upstream(fake: FakeLLM) -> dict[str, Any]:
    body = fake.last_request.json
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_text(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    driver, model = _case(client, provider)
    answer = driver.ask(gw, model, stream, text="say something nice")
    assert answer.text == EXPECTED_TEXT
    assert answer.stop == driver.end
    # the fake counts the prompt's words: system (3) + user (3)
    assert (answer.input_tokens, answer.output_tokens) == (6, 20)
    upstream = fake_llm.last_request
    assert upstream.path == (
        "/v1/messages" if provider == "anthropic_messages" else "/v1/chat/completions"
    )
    assert "client-key" not in str(dict(upstream.headers))
    record = wait_for_record(gw, answer.request_id)
    assert record["api_format"] == client and record["upstream_format"] == provider
    assert record["model"] == model and record["status"] == 200 and record["stream"] is stream
    assert (record["input_tokens"], record["output_tokens"]) == (6, 20)
    # capture keeps both sides: the caller's exchange in its API, the provider's in its own
    caller_request, provider_request = (
        json.loads(record["request_body"]),
        json.loads(record["upstream_request_body"]),
    )
    assert ("system" in caller_request) is (client == "anthropic_messages")
    assert ("system" in provider_request) is (provider == "anthropic_messages")
    caller_answer = json.loads(record["response_body"])
    provider_answer = json.loads(record["upstream_response_body"])
    assert EXPECTED_TEXT in json.dumps(caller_answer) and EXPECTED_TEXT in json.dumps(
        provider_answer
    )
    assert ("choices" in caller_answer) is (client == "openai_chat")
    assert ("choices" in provider_answer) is (provider == "openai_chat")
    # priced on the provider actually used, by its own API's price basis
    basis = "anthropic" if provider == "anthropic_messages" else "openai"
    assert record["cost_nanodollars"] > 0 and record["cost_basis"] == f"{basis}/{model}"


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_tool_turn(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    driver, model = _case(client, provider)
    call = driver.ask(gw, model, stream, text="please call tool get_weather", tools=True)
    assert call.stop == driver.tool_use
    assert [(name, args) for _, name, args in call.calls] == [("get_weather", {"city": "fake"})]
    answer = driver.ask(
        gw, model, stream, text="please call tool get_weather", tools=True, result_of=call
    )
    assert answer.text == EXPECTED_TEXT and answer.stop == driver.end
    upstream = json.dumps(_upstream(fake_llm))
    assert "sunny and 21 degrees" in upstream and call.calls[0][0] in upstream


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_image(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    driver, model = _case(client, provider)
    answer = driver.ask(gw, model, stream, text="what is in it", image=True)
    assert answer.text == EXPECTED_TEXT
    user = _upstream(fake_llm)["messages"][-1]
    if provider == "anthropic_messages":
        source = {"type": "base64", "media_type": "image/png", "data": PIXEL}
        assert {"type": "image", "source": source} in user["content"]
    else:
        url = {"url": f"data:image/png;base64,{PIXEL}"}
        assert {"type": "image_url", "image_url": url} in user["content"]


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_reasoning(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str, stream: bool
) -> None:
    driver, model = _case(client, provider)
    fake_llm.reasoning_tokens = 7
    answer = driver.ask(gw, model, stream, text="think first", effort="low")
    assert answer.text == EXPECTED_TEXT
    body = _upstream(fake_llm)
    if provider == "anthropic_messages":
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        # the fake's thinking is one token a word, in Anthropic's output tokens
        assert answer.output_tokens == 20 + len(DEFAULT_THINKING.split())
    else:
        assert body["reasoning_effort"] == "low"
        assert answer.output_tokens == 20 + 7  # OpenAI's completion tokens include reasoning


@pytest.mark.parametrize(("client", "provider"), PAIRS)
def test_provider_errors_in_the_callers_envelope(
    gw: InProcessIrisgate, fake_llm: FakeLLM, client: str, provider: str
) -> None:
    driver, model = _case(client, provider)
    fake_llm.fail_next(400, _vendor_error(provider, "bad thing"))
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError)) as bad:
        driver.ask(gw, model, False, text="hello")
    assert "bad thing" in str(bad.value)
    fake_llm.fail_next(500)
    with pytest.raises((openai.InternalServerError, anthropic.InternalServerError)) as failed:
        driver.ask(gw, model, False, text="hello")
    assert failed.value.status_code == 500
    envelope = failed.value.response.json()
    if client == "anthropic_messages":
        assert envelope["type"] == "error" and envelope["error"]["type"] == "api_error"
    else:
        assert envelope["error"]["type"] == "upstream_error"
    fake_llm.fail_next(429, headers={"Retry-After": "7"})
    with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)) as limited:
        driver.ask(gw, model, True, text="hello")
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.response.headers["content-type"] == "application/json"


def _vendor_error(provider: str, message: str) -> dict[str, Any]:
    """A provider's own 400 envelope."""
    error = {"type": "invalid_request_error", "message": message}
    return (
        {"type": "error", "error": error} if provider == "anthropic_messages" else {"error": error}
    )


def test_untranslatable_is_a_400_naming_the_field(gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    client = openai.OpenAI(
        base_url=gw.url + "/v1", api_key="k", http_client=client_from(ALICE_IP, gw), max_retries=0
    )
    before = len(fake_llm.requests)
    with pytest.raises(openai.BadRequestError) as many:
        client.chat.completions.create(
            model=PROVIDER_MODELS["anthropic_messages"],
            messages=[{"role": "user", "content": "hi"}],
            n=2,
        )
    assert "'n'" in many.value.message
    with pytest.raises(openai.BadRequestError) as json_mode:
        client.chat.completions.create(
            model=PROVIDER_MODELS["anthropic_messages"],
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )
    assert "response_format" in json_mode.value.message
    assert len(fake_llm.requests) == before, "nothing went upstream"


def test_counting_tokens_is_not_translated(gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    """`/v1/messages/count_tokens` generates nothing: no provider of another API is asked."""
    before = len(fake_llm.requests)
    client = anthropic.Anthropic(
        base_url=gw.url, api_key="k", http_client=client_from(ALICE_IP, gw), max_retries=0
    )
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(
            model=PROVIDER_MODELS["openai_chat"], messages=[{"role": "user", "content": "hi"}]
        )
    assert len(fake_llm.requests) == before


def test_translate_off_is_404_as_before(gw: InProcessIrisgate) -> None:
    client = openai.OpenAI(
        base_url=gw.url + "/v1", api_key="k", http_client=client_from(ALICE_IP, gw), max_retries=0
    )
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="claude-untranslated", messages=[{"role": "user", "content": "hi"}]
        )
    assert "does not enable 'openai_chat'" in missing.value.message


def test_untranslated_request_goes_byte_for_byte(gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    """A provider that speaks the caller's API gets the caller's body unchanged, even with
    `translate` on."""
    raw = b'{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi"}], "n": 1}'
    answer = client_from(ALICE_IP, gw).post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200
    assert fake_llm.last_request.body == raw
    assert answer.json()["object"] == "chat.completion"
    assert wait_for_record(gw, answer.headers["x-irisgate-request-id"])["upstream_format"] == ""


@pytest.fixture(scope="module")
def process(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """irisgate in a process of its own: for what a client sees while a stream still comes."""
    assert localapi.socket_path
    with IrisgateServer(
        config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("translation-process"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    ) as server:
        yield server


def _anthropic_over_tcp(server: IrisgateServer) -> anthropic.Anthropic:
    transport = httpx2.HTTPTransport(local_address=ALICE_IP)
    http = httpx2.Client(transport=transport, timeout=30)
    return anthropic.Anthropic(base_url=server.url, api_key="k", http_client=http, max_retries=0)


def test_stream_reaches_the_client_event_by_event(
    process: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """The first translated event is at the client while the provider still holds the rest."""
    gate = threading.Event()
    fake_llm.stream_gate = gate
    fake_llm.gate_after_events = 2  # the role chunk, then the first text
    with _anthropic_over_tcp(process).messages.stream(
        model=PROVIDER_MODELS["openai_chat"],
        max_tokens=100,
        messages=[{"role": "user", "content": "hello"}],
    ) as events:
        kinds = []
        for event in events:
            kinds.append(event.type)
            if event.type == "text":
                break  # the first text arrived; the provider is still gated
        assert fake_llm.gated_streams == 1 and not gate.is_set()
        gate.set()
        text = events.get_final_text()
    assert kinds[0] == "message_start"
    assert text == EXPECTED_TEXT


def test_a_client_that_leaves_cancels_the_providers_stream(
    process: IrisgateServer, fake_llm: FakeLLM
) -> None:
    gate = threading.Event()
    fake_llm.stream_gate = gate
    fake_llm.gate_after_events = 2
    with _anthropic_over_tcp(process).messages.stream(
        model=PROVIDER_MODELS["openai_chat"],
        max_tokens=100,
        messages=[{"role": "user", "content": "hello"}],
    ) as events:
        for event in events:
            if event.type == "text":
                break  # leave with the provider still holding the rest
        request_id = events.response.headers["x-irisgate-request-id"]
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    gate.set()
    record = wait_for_record(process, request_id)
    assert record["cancelled"] is True and record["upstream_format"] == "openai_chat"


def test_hooks_see_the_callers_api_and_failover_crosses_translated_providers(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """A pre-request hook changes the caller's body (in the caller's API), the first
    translating provider fails and the next one answers; the post-response hook gets the
    caller's side of the exchange."""
    assert localapi.socket_path
    with FakeHook() as hooks:

        def shout(payload: Any) -> dict[str, Any]:
            body = payload["request_body"]
            body["messages"][-1]["content"] = "SHOUTED by the hook"
            return {"action": "modify", "request_body": body}

        hooks.answer("shout", shout)
        providers = {
            name: {
                "baseurl": fake_llm.base_url,
                "apikey": ANTHROPIC_KEY,
                "authorization": "x-api-key",
                "compatibility": {"anthropic_messages": True},
                "models": ["shared-model"],
                "translate": True,
                "preference": preference,
            }
            for name, preference in (("ant-first", 2), ("ant-second", 1))
        }
        wiring = [
            {"name": "shout", "events": ["pre_request"], "send": ["request_body"]},
            {
                "name": "audit",
                "events": ["entire_request"],
                "send": ["request_body", "response_body", "raw_responses", "user_message"],
            },
        ]
        caps = [{"role": "admin"}, {"models": "**"}, {"send_hooks": wiring}]
        text = json.dumps(
            {
                "providers": providers,
                "hooks": {
                    "shout": {"url": hooks.url("shout")},
                    "audit": {"url": hooks.url("audit")},
                },
                "grants": [
                    {"src": ["alice@example.com"], "app": {"tailscale.com/cap/aperture": caps}}
                ],
            }
        )
        fake_llm.fail_next(500)
        with InProcessIrisgate(
            text, data_dir=tmp_path, identity="tailscale", tailscaled_socket=localapi.socket_path
        ) as gw:
            client = openai.OpenAI(
                base_url=gw.url + "/v1",
                api_key="k",
                http_client=client_from(ALICE_IP, gw),
                max_retries=0,
            )
            with client.chat.completions.with_streaming_response.create(
                model="shared-model",
                messages=[{"role": "user", "content": "original words"}],
                stream=True,
            ) as response:
                request_id = response.headers["x-irisgate-request-id"]
                chunks = list(response.parse())
            answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert answer == EXPECTED_TEXT
            [failed, served] = fake_llm.requests[-2:]
            assert failed.path == served.path == "/v1/messages"
            assert served.json["messages"] == [
                {"role": "user", "content": [{"type": "text", "text": "SHOUTED by the hook"}]}
            ]
            record = wait_for_record(gw, request_id)
            assert record["provider"] == "ant-second"
            assert record["upstream_format"] == "anthropic_messages"
            assert [a["status"] for a in record["attempts"]] == [500, 200]
            assert hooks.wait_for(lambda: len(hooks.calls_to("audit")) == 1)
            [audit] = hooks.calls_to("audit")
            assert audit.payload["user_message"] == "SHOUTED by the hook"
            message = audit.payload["response_body"]["choices"][0]["message"]
            assert message["content"] == EXPECTED_TEXT
            chunks_seen = audit.payload["raw_responses"]
            assert all(c["object"] == "chat.completion.chunk" for c in chunks_seen)
