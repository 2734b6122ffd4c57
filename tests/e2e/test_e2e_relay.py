"""The relay, end to end: what a client sees of the upstream's answer through irisgate.

Every test talks to a real irisgate process (tailscale identity, SQLite) in front of the
wire-exact FakeLLM, with the official SDKs or raw httpx2 where the bytes themselves matter.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from conftest import (
    ALICE_IP,
    ANTHROPIC_KEY,
    OPENAI_KEY,
    anthropic_client,
    gateway_config,
    http_from,
    openai_client,
    wait_for_record,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.fake_openai import error_body as openai_error_body
from irisgate.testing.server import IrisgateServer, free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there world"}]}
MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello there world"}],
}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "date"}

_IDS = re.compile(rb'"(?:id|created)":\s*("(?:chatcmpl-|msg_01)[0-9a-f]+"|\d+)')


def same_answer(direct: bytes, relayed: bytes) -> tuple[bytes, bytes]:
    """Both answers with their per-answer random ids and timestamps set to the relayed ones.

    Two answers of the fake differ only in those (a fresh completion id and the second it was
    made); everything else, formatting included, must be byte-for-byte the same."""
    values = iter([m.group(1) for m in _IDS.finditer(relayed)])
    replaced = _IDS.sub(lambda m: m.group(0).replace(m.group(1), next(values)), direct)
    return replaced, relayed


def sse_events(raw: bytes) -> list[bytes]:
    return [block for block in raw.split(b"\n\n") if block]


def stream_raw(
    client: httpx2.Client, path: str, body: dict[str, Any]
) -> tuple[str, bytes, httpx2.HTTPError | None]:
    """(irisgate request id, body bytes received, the error that ended the read if any)."""
    received = b""
    with client.stream("POST", path, json=body) as resp:
        request_id = resp.headers["x-irisgate-request-id"]
        try:
            for chunk in resp.iter_raw():
                received += chunk
        except httpx2.HTTPError as exc:
            return request_id, received, exc
    return request_id, received, None


def streamed_text(client: anthropic.Anthropic) -> str:
    with client.messages.stream(**MESSAGE) as stream:  # type: ignore[arg-type]
        return stream.get_final_text()


@pytest.fixture
def alice(gateway: IrisgateServer) -> Iterator[httpx2.Client]:
    with http_from(ALICE_IP, gateway.url) as client:
        yield client


@pytest.fixture
def direct(fake_llm: FakeLLM) -> Iterator[httpx2.Client]:
    """A client talking to the fake vendor itself, bypassing irisgate."""
    with httpx2.Client(base_url=fake_llm.base_url, timeout=10) as client:
        yield client


# -- pass-through ------------------------------------------------------------------------------


def test_non_stream_answer_passes_through_unchanged(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client, direct: httpx2.Client
) -> None:
    sent = json.dumps(CHAT, indent=3).encode()  # odd formatting: must reach upstream as is
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    expected = direct.post("/v1/chat/completions", content=sent, headers=headers)
    relayed = alice.post("/v1/chat/completions", content=sent, headers=headers)

    assert relayed.status_code == expected.status_code == 200
    assert fake_llm.last_request.body == sent
    want, got = same_answer(expected.content, relayed.content)
    assert got == want
    assert relayed.content.startswith(b"{\n  ")  # the vendor's pretty-printing, not re-encoded

    def comparable(resp: httpx2.Response) -> dict[str, str]:
        return {
            k: v
            for k, v in resp.headers.items()
            if k not in HOP_BY_HOP
            and k not in ("x-request-id", "x-irisgate-request-id", "server-timing")  # irisgate's
        }

    assert comparable(relayed) == comparable(expected)
    assert relayed.headers["openai-version"] == "2020-10-01"
    assert relayed.headers["x-request-id"].startswith("req_")
    assert relayed.headers["content-length"] == str(len(relayed.content))
    assert re.fullmatch(r"req_[0-9a-z]{20,}", relayed.headers["x-irisgate-request-id"])
    assert len(relayed.headers.get_list("date")) == 1


def test_anthropic_answer_passes_through_unchanged(
    gateway: IrisgateServer, alice: httpx2.Client, direct: httpx2.Client
) -> None:
    headers = {"anthropic-version": "2023-06-01", "accept-encoding": "identity"}
    expected = direct.post("/v1/messages", json=MESSAGE, headers=headers)
    relayed = alice.post("/v1/messages", json=MESSAGE, headers=headers)
    assert relayed.status_code == expected.status_code == 200
    want, got = same_answer(expected.content, relayed.content)
    assert got == want
    assert (
        relayed.headers["anthropic-organization-id"]
        == expected.headers["anthropic-organization-id"]
    )
    assert relayed.headers["request-id"].startswith("req_011")


# -- streaming ---------------------------------------------------------------------------------


def test_first_event_arrives_while_upstream_is_still_sending(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    gate = threading.Event()
    fake_llm.stream_gate = gate
    client = httpx2.Client(
        base_url=gateway.url, transport=httpx2.HTTPTransport(local_address=ALICE_IP), timeout=5
    )
    with (
        client,
        client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = resp.iter_raw()
        buffer = b""
        while b"\n\n" not in buffer:
            buffer += next(chunks)  # a ReadTimeout here means irisgate buffered the stream
        first = sse_events(buffer)[0]
        assert not gate.is_set()
        # the upstream is paused after its first event (its counter updates on its own thread)
        assert fake_llm.wait_for(lambda: fake_llm.gated_streams == 1)
        assert b'"role":"assistant"' in first
        gate.set()
        rest = b"".join(chunks)
    full = buffer + rest
    assert full.endswith(b"data: [DONE]\n\n")
    assert b" tok19" in full
    assert fake_llm.wait_for(lambda: fake_llm.completed_streams == 1)


def test_chat_stream_without_include_usage_is_byte_exact_yet_usage_is_recorded(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client, direct: httpx2.Client
) -> None:
    body = {**CHAT, "stream": True}
    expected = direct.post("/v1/chat/completions", json=body).content
    assert fake_llm.last_request.json.get("stream_options") is None

    with alice.stream("POST", "/v1/chat/completions", json=body) as resp:
        relayed = resp.read()
        request_id = resp.headers["x-irisgate-request-id"]

    forwarded = fake_llm.last_request.json
    assert forwarded["stream_options"] == {"include_usage": True}
    want, got = same_answer(expected, relayed)
    assert got == want
    assert b'"usage"' not in relayed

    record = wait_for_record(gateway, request_id)
    assert record["input_tokens"] == 3  # "hello there world"
    assert record["output_tokens"] == 20
    assert record["cost_nanodollars"] > 0

    # The SDK sees a normal stream with no usage anywhere.
    chunks = list(
        openai_client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT["messages"], stream=True
        )
    )
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith(
        "tok0 tok1"
    )


def test_chat_stream_with_include_usage_passes_the_usage_chunk(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client, direct: httpx2.Client
) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    expected = direct.post("/v1/chat/completions", json=body).content
    relayed = alice.post("/v1/chat/completions", json=body).content
    want, got = same_answer(expected, relayed)
    assert got == want
    usage_event = sse_events(relayed)[-2]
    assert b'"choices":[]' in usage_event and b'"completion_tokens":20' in usage_event

    chunks = list(
        openai_client(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=CHAT["messages"],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 20
    assert chunks[-1].usage.prompt_tokens == 3


def test_client_disconnect_cancels_upstream_and_records_partial_usage(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.n_chunks = 3000
    fake_llm.chunk_delay = 0.02  # a 60 s answer: only a cancel ends it sooner
    client = anthropic_client(gateway)
    with client.messages.stream(**MESSAGE) as stream:
        request_id = stream.response.headers["x-irisgate-request-id"]
        seen = 0
        for event in stream:
            if event.type == "content_block_delta":
                seen += 1
                if seen == 3:
                    break
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    assert fake_llm.completed_streams == 0

    record = wait_for_record(gateway, request_id)
    assert record["cancelled"] is True
    assert record["status"] == 200
    assert record["input_tokens"] == 3  # message_start reported the prompt before the cut
    assert record["output_tokens"] >= 1
    assert record["cost_nanodollars"] > 0
    partial = json.loads(record["response_body"])
    text = partial["content"][0]["text"]
    assert text.startswith("tok0 tok1")
    assert "tok2999" not in text


def test_openai_client_disconnect_is_recorded_as_cancelled(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client
) -> None:
    fake_llm.n_chunks = 3000
    fake_llm.chunk_delay = 0.02  # a 60 s answer: only a cancel ends it sooner
    with alice.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as resp:
        request_id = resp.headers["x-irisgate-request-id"]
        for chunk in resp.iter_raw():
            if b"tok2" in chunk:
                break
    alice.close()
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    record = wait_for_record(gateway, request_id)
    assert record["cancelled"] is True
    assert record["stream"] is True


# -- upstream failures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fragile_gateway(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """An irisgate with a 1 s upstream read timeout and providers on a closed port."""
    config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])
    dead = f"http://127.0.0.1:{free_port()}"
    config["providers"]["dead-openai"] = {
        "baseurl": dead,
        "apikey": OPENAI_KEY,
        "models": ["gpt-nowhere"],
    }
    config["providers"]["dead-anthropic"] = {
        "baseurl": dead,
        "apikey": ANTHROPIC_KEY,
        "authorization": "x-api-key",
        "models": ["claude-nowhere"],
        "compatibility": {"anthropic_messages": True},
    }
    assert localapi.socket_path
    server = IrisgateServer(
        json.dumps(config),
        data_dir=Path(tmp_path_factory.mktemp("fragile")),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_UPSTREAM_READ_TIMEOUT": "1"},
    )
    with server:
        yield server


def test_unreachable_upstream_is_502_in_openai_envelope(fragile_gateway: IrisgateServer) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(fragile_gateway).chat.completions.create(
            model="gpt-nowhere", messages=CHAT["messages"]
        )
    assert caught.value.status_code == 502
    error = caught.value.response.json()["error"]
    assert error["type"] == "upstream_error"
    assert "upstream unreachable" in error["message"]
    record = wait_for_record(
        fragile_gateway, caught.value.response.headers["x-irisgate-request-id"]
    )
    assert record["status"] == 502
    assert record["provider"] == "dead-openai"
    assert "unreachable" in record["error"]


def test_unreachable_upstream_is_502_in_anthropic_envelope(
    fragile_gateway: IrisgateServer,
) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        anthropic_client(fragile_gateway).messages.create(**{**MESSAGE, "model": "claude-nowhere"})
    assert caught.value.status_code == 502
    body = caught.value.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert "upstream unreachable" in body["error"]["message"]


def test_hanging_upstream_is_504_in_the_callers_format(
    fragile_gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.hang = True
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as oai:
        openai_client(fragile_gateway).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT["messages"]
        )
    assert time.monotonic() - started > 0.9  # not before the 1 s timeout (load only adds)
    assert oai.value.status_code == 504
    assert oai.value.response.json()["error"]["type"] == "timeout"

    with pytest.raises(anthropic.APIStatusError) as ant:
        anthropic_client(fragile_gateway).messages.create(**MESSAGE)
    assert ant.value.status_code == 504
    body = ant.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "timeout_error"
    fake_llm.hang = False
    record = wait_for_record(fragile_gateway, ant.value.response.headers["x-irisgate-request-id"])
    assert record["status"] == 504
    assert "did not answer in time" in record["error"]


def test_a_timeout_names_the_provider_never_the_url_with_its_query(
    fragile_gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    # a client's query (Gemini clients send `?key=`, Azure ones `?api-version=`) is forwarded
    # upstream; the URL it ends up in must not come back in an error or the record
    secret = "appid-secret-5f1c"
    fake_llm.hang = True
    with pytest.raises(openai.APIStatusError) as caught:
        openai_client(fragile_gateway).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT["messages"], extra_query={"appid": secret}
        )
    fake_llm.hang = False
    assert caught.value.status_code == 504
    assert caught.value.response.json()["error"]["message"] == (
        "provider openai did not answer in time"
    )
    assert fake_llm.requests[-1].query["appid"] == secret  # it did go upstream
    request_id = caught.value.response.headers["x-irisgate-request-id"]
    record = wait_for_record(fragile_gateway, request_id)
    assert record["error"] == "provider openai did not answer in time"
    assert secret not in json.dumps({k: v for k, v in record.items() if k != "request_body"})
    assert secret not in fragile_gateway.logs()


def test_upstream_errors_pass_through_unchanged_and_are_recorded(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client
) -> None:
    # Retry-After 0: a longer one would rest the provider (tests/e2e/test_e2e_failover.py)
    fake_llm.fail_next(429, headers={"Retry-After": "0"})
    resp = alice.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 429
    assert resp.content == openai_error_body(429)
    assert resp.headers["retry-after"] == "0"
    record = wait_for_record(gateway, resp.headers["x-irisgate-request-id"])
    assert record["status"] == 429
    assert record["error"] == ""
    assert record["response_body"] == resp.text

    vendor_500 = (
        b'{"type":"error","error":{"type":"api_error","message":"Internal server error"},'
        b'"request_id":"req_011CXyz"}'
    )
    fake_llm.fail_next(500, vendor_500)
    resp = alice.post("/v1/messages", json=MESSAGE, headers={"anthropic-version": "2023-06-01"})
    assert resp.status_code == 500
    assert resp.content == vendor_500
    record = wait_for_record(gateway, resp.headers["x-irisgate-request-id"])
    assert record["status"] == 500
    assert record["response_body"] == vendor_500.decode()

    # and the SDKs read the vendor's own error from it
    fake_llm.fail_next(429)
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT["messages"]
        )
    assert "Rate limit reached" in caught.value.message


def test_upstream_error_to_a_stream_request_passes_through_unchanged(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client
) -> None:
    # irisgate edits chat stream requests (include_usage); the error answer is still untouched
    fake_llm.fail_next(429, headers={"Retry-After": "0"})  # 0: no rest
    resp = alice.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status_code == 429
    assert resp.content == openai_error_body(429)
    assert resp.headers["retry-after"] == "0"
    assert resp.headers["content-type"] == "application/json"
    record = wait_for_record(gateway, resp.headers["x-irisgate-request-id"])
    assert (record["status"], record["stream"]) == (429, True)

    fake_llm.fail_next(529)
    with pytest.raises(anthropic.APIStatusError) as caught:
        streamed_text(anthropic_client(gateway))
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_upstream_breaking_off_mid_stream_breaks_the_clients_stream(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client, direct: httpx2.Client
) -> None:
    """A cut upstream must not look like a complete (but short) answer to the client."""
    fake_llm.drop_after_events = 6
    with pytest.raises(httpx2.RemoteProtocolError):  # what the vendor's own client sees
        direct.post("/v1/messages", json={**MESSAGE, "stream": True})

    request_id, received, error = stream_raw(alice, "/v1/messages", {**MESSAGE, "stream": True})
    assert isinstance(error, httpx2.RemoteProtocolError)
    assert b"event: message_start" in received and b"tok2" in received
    assert b"message_stop" not in received

    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        streamed_text(anthropic_client(gateway))
    with pytest.raises(openai.APIConnectionError):
        list(
            openai_client(gateway).chat.completions.create(
                model="gpt-4o-mini", messages=CHAT["messages"], stream=True
            )
        )

    record = wait_for_record(gateway, request_id)
    assert record["status"] == 200
    assert "broke mid-answer" in record["error"]
    assert record["cancelled"] is False
    assert record["input_tokens"] == 3  # the partial usage is still recorded
    assert json.loads(record["response_body"])["content"][0]["text"].startswith("tok0")


def test_upstream_silent_mid_stream_times_out_and_breaks_the_stream(
    fragile_gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.stream_gate = threading.Event()  # never opened: silence after the first event
    started = time.monotonic()
    with http_from(ALICE_IP, fragile_gateway.url) as client:
        request_id, received, error = stream_raw(
            client, "/v1/chat/completions", {**CHAT, "stream": True}
        )
    assert isinstance(error, httpx2.RemoteProtocolError)
    assert time.monotonic() - started > 0.9  # not before the 1 s timeout (load only adds)
    assert b'"role":"assistant"' in received
    assert fake_llm.wait_for(lambda: fake_llm.cancelled_streams == 1)
    record = wait_for_record(fragile_gateway, request_id)
    assert record["status"] == 200
    assert "timeout" in record["error"]


# -- compression -------------------------------------------------------------------------------


def test_gzip_answer_reaches_the_client_as_sent_and_is_captured_decompressed(
    gateway: IrisgateServer, fake_llm: FakeLLM, alice: httpx2.Client
) -> None:
    fake_llm.gzip = True
    with alice.stream(
        "POST", "/v1/chat/completions", json=CHAT, headers={"accept-encoding": "gzip"}
    ) as resp:
        raw = b"".join(resp.iter_raw())
        request_id = resp.headers["x-irisgate-request-id"]
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.headers["content-length"] == str(len(raw))
    plain = gzip.decompress(raw)
    # exactly the fake's compression of that body: irisgate neither re-encoded nor re-compressed
    assert raw == gzip.compress(plain, compresslevel=1, mtime=0)
    answer = json.loads(plain)
    assert answer["object"] == "chat.completion"

    record = wait_for_record(gateway, request_id)
    assert record["response_body_encoding"] == "utf-8"
    assert record["response_body"].encode() == plain
    assert record["output_tokens"] == 20  # usage read from the decompressed body


# -- bad input ---------------------------------------------------------------------------------


def _post_raw(client: httpx2.Client, path: str, body: bytes) -> httpx2.Response:
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    return client.post(path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "needle", "param"),
    [
        (b'{"model": "gpt-4o-mini", "messages": [', "not valid JSON", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model'", "model"),
        (b'["gpt-4o-mini"]', "must be a JSON object", None),
        (b'{"model": 42, "messages": []}', "'model'", "model"),
    ],
    ids=["invalid-json", "missing-model", "not-an-object", "model-not-a-string"],
)
def test_bad_input_is_400_naming_the_problem(
    gateway: IrisgateServer,
    fake_llm: FakeLLM,
    alice: httpx2.Client,
    body: bytes,
    needle: str,
    param: str | None,
) -> None:
    resp = _post_raw(alice, "/v1/chat/completions", body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert needle in error["message"]
    assert error["param"] == param

    resp = _post_raw(alice, "/v1/messages", body)
    assert resp.status_code == 400
    payload: dict[str, Any] = resp.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert needle in payload["error"]["message"]
    assert fake_llm.requests == []  # nothing went upstream
    record = wait_for_record(gateway, resp.headers["x-irisgate-request-id"])
    assert record["status"] == 400
