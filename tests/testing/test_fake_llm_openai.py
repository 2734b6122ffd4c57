"""FakeLLM speaks OpenAI: the official SDK parses it, and the bytes are OpenAI's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from irisgate.testing import FakeLLM, count_prompt_tokens

TEXT = " ".join(f"tok{i}" for i in range(20))
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


def client(fake: FakeLLM, *, retries: int = 0, bare: bool = False) -> openai.OpenAI:
    base = fake.base_url if bare else fake.base_url + "/v1"
    return openai.OpenAI(base_url=base, api_key="sk-client", max_retries=retries)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_chat_completion_parses_in_the_sdk_with_usage(fake: FakeLLM) -> None:
    reply = client(fake).chat.completions.create(model="gpt-5.5", messages=user("one two three"))

    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-5.5"
    assert reply.choices[0].message.content == TEXT
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 20)
    assert reply.usage.total_tokens == 23


def test_chat_completion_body_has_every_field_openai_sends(fake: FakeLLM, post: Any) -> None:
    status, headers, raw = post(
        fake.base_url + "/v1/chat/completions", {"model": "m", "messages": user("hi")}
    )

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    assert raw.startswith(b'{\n  "id": "chatcmpl-')  # pretty-printed like api.openai.com
    body = json.loads(raw)
    assert list(body) == [
        "id", "object", "created", "model", "choices", "usage", "service_tier",
        "system_fingerprint",
    ]  # fmt: skip
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": TEXT,
        "refusal": None,
        "annotations": [],
    }
    assert body["choices"][0]["logprobs"] is None
    assert body["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 20,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def test_cached_and_reasoning_tokens_come_from_the_knobs(fake: FakeLLM) -> None:
    fake.cached_tokens = 100
    fake.reasoning_tokens = 7
    fake.reply_text = "short answer"
    fake.n_chunks = 4

    reply = client(fake).chat.completions.create(model="m", messages=user("a b c d e"))

    assert reply.choices[0].message.content == "short answer"
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens == 105  # counted words + cached
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.completion_tokens == 4 + 7
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 7


def test_stream_without_include_usage_has_no_usage_key(fake: FakeLLM, post: Any) -> None:
    fake.n_chunks = 3
    _, headers, raw = post(
        fake.base_url + "/v1/chat/completions",
        {"model": "m", "messages": user("hi"), "stream": True},
    )

    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert b"usage" not in raw
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert raw.count(b"data: {") == 1 + 3 + 1  # role, contents, finish


def test_stream_with_include_usage_is_byte_exact(fake: FakeLLM, post: Any) -> None:
    fake.reply_text = "Hi there"
    fake.n_chunks = 2
    fake.cached_tokens = 2
    _, _, raw = post(
        fake.base_url + "/v1/chat/completions",
        {
            "model": "gpt-5.5",
            "messages": user("say hi"),
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )

    first = json.loads(raw.split(b"\n\n")[0].removeprefix(b"data: "))
    head = (
        f'data: {{"id":"{first["id"]}","object":"chat.completion.chunk",'
        f'"created":{first["created"]},"model":"gpt-5.5","service_tier":"default",'
        '"system_fingerprint":"fp_f4ke0000c0","choices":'
    )

    def chunk(delta: str, finish: str = "null") -> str:
        return (
            f'{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],'
            '"usage":null}\n\n'
        )

    usage = (
        '{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6,'
        '"prompt_tokens_details":{"cached_tokens":2,"audio_tokens":0},'
        '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
        '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
    )
    expected = (
        chunk('{"role":"assistant","content":"","refusal":null}')
        + chunk('{"content":"Hi t"}')
        + chunk('{"content":"here"}')
        + chunk("{}", '"stop"')
        + f'{head}[],"usage":{usage}}}\n\n'
        + "data: [DONE]\n\n"
    )
    assert raw.decode() == expected


def test_stream_parses_in_the_sdk(fake: FakeLLM) -> None:
    stream = client(fake).chat.completions.create(
        model="m", messages=user("hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 20
    assert all(c.usage is None for c in chunks[:-1])


def test_bare_path_serves_self_hosted_style_clients(fake: FakeLLM) -> None:
    reply = client(fake, bare=True).chat.completions.create(model="local", messages=user("x"))

    assert reply.choices[0].message.content == TEXT
    assert fake.last_request.path == "/chat/completions"


def test_tool_call_when_asked(fake: FakeLLM) -> None:
    reply = client(fake).chat.completions.create(
        model="m", messages=user("please call tool now"), tools=[WEATHER_TOOL]
    )

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert calls[0].type == "function"
    assert calls[0].id.startswith("call_")
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "fake", "days": 1}
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 20  # one token per argument piece


def test_streamed_tool_call_splits_arguments_over_chunks(
    fake: FakeLLM, post: Any, sse: Any
) -> None:
    fake.n_chunks = 5
    fake.tool_arguments = {"city": "Paris"}
    _, _, raw = post(
        fake.base_url + "/v1/chat/completions",
        {"model": "m", "messages": user("call tool"), "tools": [WEATHER_TOOL], "stream": True},
    )

    chunks = [json.loads(data) for _, data in sse(raw) if data != "[DONE]"]
    opening = chunks[0]["choices"][0]["delta"]
    assert opening["role"] == "assistant"
    assert opening["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    pieces = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]
    ]
    assert len(pieces) == 5
    assert json.loads("".join(pieces)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls",
    }  # fmt: skip

    with client(fake).chat.completions.stream(
        model="m", messages=user("call tool"), tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.arguments == '{"city":"Paris"}'


def test_tool_result_gets_a_text_answer(fake: FakeLLM) -> None:
    messages: list[Any] = [
        *user("call tool"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny and warm"},
    ]
    reply = client(fake).chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])

    assert reply.choices[0].message.content == TEXT
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_prompt_tokens({"messages": messages}) == 5

    fake.tool_every_turn = True  # a model that never stops calling
    again = client(fake).chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    assert again.choices[0].finish_reason == "tool_calls"
    without_tools = client(fake).chat.completions.create(model="m", messages=messages)
    assert without_tools.choices[0].message.content == TEXT


def test_responses_api_non_stream(fake: FakeLLM, post: Any) -> None:
    fake.cached_tokens = 3
    fake.reasoning_tokens = 2
    reply = client(fake).responses.create(
        model="gpt-5.5", input="hello world", instructions="be brief"
    )

    assert reply.id.startswith("resp_")
    assert reply.status == "completed"
    assert reply.output_text == TEXT
    assert reply.usage is not None
    assert reply.usage.input_tokens == 4 + 3
    assert reply.usage.input_tokens_details.cached_tokens == 3
    assert reply.usage.output_tokens == 22
    assert reply.usage.output_tokens_details.reasoning_tokens == 2
    assert reply.usage.total_tokens == 29
    assert reply.instructions == "be brief"

    _, _, raw = post(fake.base_url + "/v1/responses", {"model": "m", "input": "x"})
    body = json.loads(raw)
    assert body["object"] == "response"
    assert body["output"][0]["content"][0] == {
        "type": "output_text", "annotations": [], "logprobs": [], "text": TEXT,
    }  # fmt: skip
    for field in ("created_at", "parallel_tool_calls", "tool_choice", "tools", "text", "store"):
        assert field in body


def test_responses_api_stream(fake: FakeLLM, post: Any, sse: Any) -> None:
    fake.n_chunks = 3
    _, _, raw = post(fake.base_url + "/v1/responses", {"model": "m", "input": "hi", "stream": True})

    events = sse(raw)
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    payloads = [json.loads(data) for _, data in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(events)))
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    assert payloads[0]["response"]["status"] == "in_progress"
    assert payloads[0]["response"]["usage"] is None
    assert payloads[-1]["response"]["usage"]["output_tokens"] == 3

    with client(fake).responses.stream(model="m", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "tok0 tok1 tok2"


def test_models_list(fake: FakeLLM) -> None:
    models = client(fake).models.list()

    assert [m.id for m in models] == fake.models


def test_errors_use_openai_envelope(fake: FakeLLM) -> None:
    fake.fail_next(429, headers={"Retry-After": "3"})
    with pytest.raises(openai.RateLimitError) as caught:
        client(fake).chat.completions.create(model="m", messages=user("x"))

    assert caught.value.response.headers["Retry-After"] == "3"
    assert caught.value.body == {
        "message": "Rate limit reached for requests per min (RPM). Please try again in 1s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_failures_are_consumed_in_order(fake: FakeLLM) -> None:
    fake.fail_next(500, headers={"retry-after-ms": "5"}, count=2)  # the SDK retries at once

    reply = client(fake, retries=2).chat.completions.create(model="m", messages=user("x"))

    assert reply.choices[0].message.content == TEXT
    assert len(fake.requests) == 3


def test_bad_requests_name_the_field(fake: FakeLLM, post: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(fake).chat.completions.create(
            model="m", messages=[], stream_options={"include_usage": True}
        )
    assert caught.value.param == "stream_options"

    status, _, raw = post(fake.base_url + "/v1/chat/completions", {"model": "m"})
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "messages"
    assert raw.startswith(b'{\n    "error": {\n        "message": ')

    status, _, raw = post(fake.base_url + "/v1/chat/completions", b"{not json")
    assert status == 400
    assert json.loads(raw)["error"]["message"].startswith("We could not parse the JSON body")


def test_api_key_knob_rejects_other_keys(fake: FakeLLM) -> None:
    fake.api_key = "sk-upstream"
    with pytest.raises(openai.AuthenticationError) as caught:
        client(fake).chat.completions.create(model="m", messages=user("x"))
    assert caught.value.code == "invalid_api_key"

    good = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="sk-upstream", max_retries=0)
    assert good.chat.completions.create(model="m", messages=user("x")).choices


def test_unknown_path_is_an_openai_404(fake: FakeLLM, post: Any) -> None:
    status, _, raw = post(fake.base_url + "/v1/embeddingz", {"model": "m"})

    assert status == 404
    assert json.loads(raw)["error"]["message"] == "Invalid URL (POST /v1/embeddingz)"


def test_cache_writes_are_reported_as_openai_does(fake: FakeLLM, post: Any) -> None:
    """Chat: `prompt_tokens_details.cache_write_tokens` only when there are writes;
    Responses: `input_tokens_details.cache_write_tokens` always; both inside the prompt."""
    fake.cache_write_5m_tokens = 700
    _, _, raw = post(fake.base_url + "/v1/chat/completions", {"model": "m", "messages": user("hi")})
    usage = json.loads(raw)["usage"]
    assert usage["prompt_tokens"] == 701
    assert usage["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": 700,
        "audio_tokens": 0,
    }
    _, _, raw = post(fake.base_url + "/v1/responses", {"model": "m", "input": "hi"})
    usage = json.loads(raw)["usage"]
    assert usage["input_tokens"] == 701
    assert usage["input_tokens_details"] == {"cache_write_tokens": 700, "cached_tokens": 0}


def _call(method: str, url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_stored_responses_retrieve_list_cancel_and_delete(fake: FakeLLM, post: Any) -> None:
    base = fake.base_url + "/v1/responses"
    _, _, raw = post(base, {"model": "m", "input": [{"role": "user", "content": "hi"}]})
    created = json.loads(raw)
    rid = created["id"]
    assert _call("GET", f"{base}/{rid}") == (200, created)
    status, page = _call("GET", f"{base}/{rid}/input_items")
    assert status == 200 and page["object"] == "list" and page["has_more"] is False
    [item] = page["data"]
    assert item["id"].startswith("msg_") and page["first_id"] == page["last_id"] == item["id"]
    assert (item["type"], item["role"], item["status"]) == ("message", "user", "completed")
    assert item["content"] == [{"type": "input_text", "text": "hi"}]
    status, refused = _call("POST", f"{base}/{rid}/cancel")  # not a background response
    assert status == 400 and "background=true" in refused["error"]["message"]
    assert _call("DELETE", f"{base}/{rid}") == (
        200,
        {"id": rid, "object": "response.deleted", "deleted": True},
    )
    status, missing = _call("GET", f"{base}/{rid}")
    assert status == 404
    assert missing["error"]["message"] == f"Response with id '{rid}' not found."

    _, _, raw = post(base, {"model": "m", "input": "hi", "background": True})
    queued = json.loads(raw)
    assert (queued["status"], queued["output"], queued["usage"]) == ("queued", [], None)
    status, cancelled = _call("POST", f"{base}/{queued['id']}/cancel")
    assert (status, cancelled["status"]) == (200, "cancelled")
    _, _, raw = post(base, {"model": "m", "input": "hi", "store": False})
    assert _call("GET", f"{base}/{json.loads(raw)['id']}")[0] == 404  # store: false


RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": WEATHER_TOOL["function"]["parameters"],
}


def test_responses_tool_call_streams_a_function_call_item(fake: FakeLLM) -> None:
    fake.tool_arguments = {"city": "Paris"}
    web_search: Any = {"type": "web_search"}
    with client(fake).responses.stream(
        model="m", input="please call tool", tools=[web_search, RESPONSES_TOOL]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-1] == "response.completed"
    [call] = final.output
    assert call.type == "function_call"
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert final.usage is not None  # one output token per argument piece
    assert final.usage.output_tokens == kinds.count("response.function_call_arguments.delta")

    plain = client(fake).responses.create(
        model="m", input="please call tool", tools=[RESPONSES_TOOL]
    )
    assert plain.output[0].type == "function_call"


def test_responses_tool_output_gets_a_text_answer(fake: FakeLLM) -> None:
    items: Any = [
        {"role": "user", "content": "call tool"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    reply = client(fake).responses.create(model="m", input=items, tools=[RESPONSES_TOOL])
    assert reply.output[0].type == "message"
    assert reply.output_text == TEXT
