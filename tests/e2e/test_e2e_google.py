"""Gemini (AI Studio) and Vertex AI end to end through the official clients: google-genai in
Gemini API and Vertex modes, anthropic's AnthropicVertex. Answers arrive intact, the provider
credential is injected (API key, or an OAuth token minted from a service account), Vertex
placeholders are filled in, and usage and cost are recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
from cloud_setup import (
    EXPECTED_TEXT,
    EXPRESS_KEY,
    GEMINI_KEY,
    PLACEHOLDER_PROJECT,
    PLACEHOLDER_REGION,
    VERTEX_CLAUDE,
    cloud_config,
    gemini_client,
    nanodollars,
    vertex_client,
)
from conftest import wait_for_record
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from irisgate.testing import FakeGoogleOAuth, FakeLLM
from irisgate.testing.server import IrisgateServer

TRANSLATED_MODEL = "gemini-2.0-flash-lite"


@pytest.fixture(scope="module")
def oauth() -> Iterator[FakeGoogleOAuth]:
    with FakeGoogleOAuth() as fake:
        yield fake


@pytest.fixture(scope="module")
def cloud_gw(
    fake_llm: FakeLLM, oauth: FakeGoogleOAuth, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    translated = {  # Gemini on Vertex, reached by other APIs' clients through translation
        "baseurl": fake_llm.base_url,
        "apikey": "keyfile::" + oauth.service_account("translated-proj", name="translated"),
        "models": [TRANSLATED_MODEL],
        "compatibility": {"google_generate_content": True},
        "translate": True,
    }
    config = cloud_config(
        fake_llm.base_url,
        oauth.service_account("vertex-proj"),
        oauth.service_account("refresh-proj", name="refresher"),
        oauth.service_account("burst-proj", name="burst"),
        **{"vertex-translated": translated},
    )
    server = IrisgateServer(config, data_dir=Path(tmp_path_factory.mktemp("gw")), identity="dev")
    with server:
        yield server


def _request_id(response: Any) -> str:
    headers = response.sdk_http_response.headers
    return str(headers["x-irisgate-request-id"])


def _http(gw: IrisgateServer) -> httpx2.Client:
    return httpx2.Client(base_url=gw.url, timeout=30)


# -- Gemini API ---------------------------------------------------------------------------------


def test_gemini_plain(cloud_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = gemini_client(cloud_gw)  # kept: the SDK closes its HTTP client when collected
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="say something nice"
    )
    assert response.text == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert upstream.headers["x-goog-api-key"] == GEMINI_KEY
    record = wait_for_record(cloud_gw, _request_id(response))
    assert record["api_format"] == "gemini_generate_content"
    assert record["provider"] == "gemini" and record["model"] == "gemini-2.5-flash"
    assert record["stream"] is False
    assert (record["input_tokens"], record["output_tokens"]) == (3, 20)
    expected = nanodollars("google", "gemini-2.5-flash", input_tokens=3, output_tokens=20)
    assert record["cost_nanodollars"] == expected
    assert record["cost_basis"] == "google/gemini-2.5-flash"


def test_gemini_sse_stream_with_thoughts_and_cache(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.reasoning_tokens = 7
    fake_llm.cached_tokens = 4
    client = gemini_client(cloud_gw)
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-pro", contents="stream me a poem")
    )
    assert "".join(c.text or "" for c in chunks) == EXPECTED_TEXT
    assert fake_llm.last_request.query == {"alt": "sse"}
    final = chunks[-1].usage_metadata
    assert final is not None and final.thoughts_token_count == 7
    record = wait_for_record(cloud_gw, _request_id(chunks[0]))
    assert record["stream"] is True
    assert record["input_tokens"] == 4 + 4 and record["cache_read_tokens"] == 4
    assert record["output_tokens"] == 27 and record["reasoning_tokens"] == 7
    expected = nanodollars(
        "google", "gemini-2.5-pro", input_tokens=8, cache_read_tokens=4, output_tokens=27
    )
    assert record["cost_nanodollars"] == expected
    stored = orjson.loads(record["response_body"])
    assert stored["candidates"][0]["content"]["parts"][0]["text"] == EXPECTED_TEXT


def test_gemini_json_array_stream_under_v1_and_client_key_dropped(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "one two three four"}]}]}
    with _http(cloud_gw) as client:
        resp = client.post(
            "/v1/models/gemini-2.5-flash:streamGenerateContent?key=client-own-key", json=body
        )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    chunks = orjson.loads(resp.content)
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.path == "/v1/models/gemini-2.5-flash:streamGenerateContent"
    assert upstream.query == {}, "the client's key= must not reach the upstream"
    assert upstream.headers["x-goog-api-key"] == GEMINI_KEY
    record = wait_for_record(cloud_gw, resp.headers["x-irisgate-request-id"])
    assert record["stream"] is True
    assert (record["input_tokens"], record["output_tokens"]) == (4, 20)
    assert "key=" not in record["path"]


def test_gemini_count_tokens_is_relayed_not_billed(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    client = gemini_client(cloud_gw)
    counted = client.models.count_tokens(
        model="gemini-2.5-flash", contents="five words are in here"
    )
    assert counted.total_tokens == 5
    assert fake_llm.last_request.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert fake_llm.last_request.headers["x-goog-api-key"] == GEMINI_KEY
    record = wait_for_record(cloud_gw, _request_id(counted))
    assert record["input_tokens"] == 0 and record["cost_nanodollars"] == 0
    with pytest.raises(genai_errors.ClientError) as denied:
        client.models.count_tokens(model="gemini-secret", contents="hi")
    assert denied.value.code == 403


def test_gemini_errors_in_google_envelope(cloud_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = gemini_client(cloud_gw)
    with pytest.raises(genai_errors.ClientError) as missing:
        client.models.generate_content(model="gemini-nowhere", contents="hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    assert "model 'gemini-nowhere' is not served by any provider" in str(missing.value.message)
    with pytest.raises(genai_errors.ClientError) as denied:
        client.models.generate_content(model="gemini-secret", contents="hi")
    assert denied.value.code == 403 and denied.value.status == "PERMISSION_DENIED"
    fake_llm.fail_next(429, headers={"Retry-After": "0"})  # 0: no rest (failover)
    with pytest.raises(genai_errors.ClientError) as limited:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert limited.value.code == 429 and limited.value.status == "RESOURCE_EXHAUSTED"
    assert limited.value.response is not None
    assert limited.value.response.headers["retry-after"] == "0"
    with _http(cloud_gw) as http:
        bad = http.post("/v1beta/models/gemini-2.5-flash:generateContent", content=b"{nope")
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "not valid JSON" in bad.json()["error"]["message"]


# -- Vertex AI ----------------------------------------------------------------------------------


def test_vertex_gemini_with_service_account(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM, oauth: FakeGoogleOAuth
) -> None:
    client = vertex_client(cloud_gw)
    response = client.models.generate_content(model="gemini-2.5-pro", contents="hello vertex")
    assert response.text == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.path == (
        "/v1/projects/vertex-proj/locations/global/publishers/google/models/"
        "gemini-2.5-pro:generateContent"
    )
    minted = [t for t in oauth.issued if upstream.headers["authorization"] == f"Bearer {t}"]
    assert len(minted) == 1, "the upstream gets a token minted for the service account"
    assert "client-placeholder-token" not in str(dict(upstream.headers))
    streamed = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="again"))
    assert "".join(c.text or "" for c in streamed) == EXPECTED_TEXT
    assert fake_llm.last_request.headers["authorization"] == f"Bearer {minted[0]}"
    assert oauth.refused == []
    record = wait_for_record(cloud_gw, _request_id(streamed[0]))
    assert record["api_format"] == "google_generate_content" and record["provider"] == "vertex"
    assert record["cost_basis"] == "vertex/gemini-2.5-pro"
    assert record["output_tokens"] == 20
    assert record["request_headers"]["authorization"] == "[redacted]"


def test_vertex_token_minted_once_and_renewed_before_expiry(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM, oauth: FakeGoogleOAuth
) -> None:
    """A token inside its renewal window is still used while one renewal runs behind it."""
    oauth.expires_in = 200  # under irisgate's 300 s renewal margin, well above the 30 s slack
    try:
        before = len(oauth.issued)
        client = vertex_client(cloud_gw)
        client.models.generate_content(model="gemini-2.0-flash", contents="first")
        assert len(oauth.issued) == before + 1
        first = f"Bearer {oauth.issued[-1]}"
        assert fake_llm.last_request.headers["authorization"] == first
        client.models.generate_content(model="gemini-2.0-flash", contents="second")
        assert fake_llm.last_request.headers["authorization"] == first, "did not wait"
        assert fake_llm.wait_for(lambda: len(oauth.issued) >= before + 2)
        # the renewed token is stored once irisgate has read the endpoint's answer
        used = first
        deadline = time.monotonic() + 30  # only a stuck renewal takes this long
        while used == first and time.monotonic() < deadline:
            client.models.generate_content(model="gemini-2.0-flash", contents="again")
            used = fake_llm.last_request.headers["authorization"]
        assert used in {f"Bearer {t}" for t in oauth.issued[before + 1 :]}
    finally:
        oauth.expires_in = 3599


def test_concurrent_first_requests_share_one_mint(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM, oauth: FakeGoogleOAuth
) -> None:
    path = (
        f"/v1/projects/{PLACEHOLDER_PROJECT}/locations/{PLACEHOLDER_REGION}"
        "/publishers/google/models/gemini-2.5-flash-image:generateContent"
    )
    body = {"contents": [{"role": "user", "parts": [{"text": "burst"}]}]}
    gate = threading.Barrier(8)

    def call() -> int:
        with _http(cloud_gw) as http:
            gate.wait()
            return http.post(path, json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: call(), range(8)))
    assert statuses == [200] * 8
    burst = [r for r in fake_llm.requests if "/projects/burst-proj/" in r.path]
    assert len(burst) == 8
    tokens = {r.headers["authorization"] for r in burst}
    assert len(tokens) == 1, "one token for all of them"
    assert sum(1 for t in oauth.issued if f"Bearer {t}" in tokens) == 1


def test_anthropic_on_vertex_error_envelope(cloud_gw: IrisgateServer) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        _anthropic_vertex(cloud_gw).messages.create(
            model="claude-nowhere@1", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    error = caught.value.response.json()["error"]
    assert error["status"] == "NOT_FOUND" and error["code"] == 404


def test_vertex_express_with_plain_api_key(cloud_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    options = genai_types.HttpOptions(base_url=cloud_gw.url)
    client = genai.Client(vertexai=True, api_key="client-placeholder", http_options=options)
    response = client.models.generate_content(model="gemini-2.5-flash-lite", contents="hi there")
    assert response.text == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.path == (
        "/v1beta1/publishers/google/models/gemini-2.5-flash-lite:generateContent"
    )
    assert upstream.headers["x-goog-api-key"] == EXPRESS_KEY
    # Aperture's placeholders with an Express key: the project-less global form upstream
    path = (
        f"/v1/projects/{PLACEHOLDER_PROJECT}/locations/{PLACEHOLDER_REGION}"
        "/publishers/google/models/gemini-2.5-flash-lite:generateContent"
    )
    with _http(cloud_gw) as http:
        resp = http.post(path, json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
    assert resp.status_code == 200
    assert fake_llm.last_request.path == (
        "/v1/publishers/google/models/gemini-2.5-flash-lite:generateContent"
    )
    record = wait_for_record(cloud_gw, resp.headers["x-irisgate-request-id"])
    assert record["provider"] == "vertex-express"
    assert record["cost_basis"] == "vertex/gemini-2.5-flash-lite"


def _anthropic_vertex(gw: IrisgateServer) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region=PLACEHOLDER_REGION,
        project_id=PLACEHOLDER_PROJECT,
        access_token="client-placeholder-token",
        base_url=gw.url + "/v1",
        max_retries=0,
    )


def test_anthropic_on_vertex_plain_and_stream(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM, oauth: FakeGoogleOAuth
) -> None:
    client = _anthropic_vertex(cloud_gw)
    fake_llm.cached_tokens = 10
    raw = client.messages.with_raw_response.create(
        model=VERTEX_CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "hello claude"}]
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.path == (
        f"/v1/projects/vertex-proj/locations/global/publishers/anthropic/models/"
        f"{VERTEX_CLAUDE}:rawPredict"
    )
    assert upstream.headers["authorization"] in {f"Bearer {t}" for t in oauth.issued}
    record = wait_for_record(cloud_gw, raw.headers["x-irisgate-request-id"])
    assert record["api_format"] == "google_raw_predict"
    assert record["input_tokens"] == 2 + 10 and record["cache_read_tokens"] == 10
    assert record["cost_basis"] == f"vertex/{VERTEX_CLAUDE}"
    expected = nanodollars(
        "google", "claude-sonnet-4-5", input_tokens=12, cache_read_tokens=10, output_tokens=20
    )
    assert record["cost_nanodollars"] == expected

    with client.messages.stream(
        model=VERTEX_CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        text = "".join(stream.text_stream)
        request_id = stream.response.headers["x-irisgate-request-id"]
    assert text == EXPECTED_TEXT
    assert fake_llm.last_request.path.endswith(f"/models/{VERTEX_CLAUDE}:streamRawPredict")
    record = wait_for_record(cloud_gw, request_id)
    assert record["stream"] is True and record["output_tokens"] == 20


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_openai_client_reaches_gemini_on_vertex_through_translation(
    cloud_gw: IrisgateServer, fake_llm: FakeLLM, oauth: FakeGoogleOAuth, stream: bool
) -> None:
    """The translated request goes to Vertex's path with the provider's project and region
    filled in, as an ordinary Vertex request does, with a token minted for its account."""
    client = openai.OpenAI(base_url=cloud_gw.url + "/v1", api_key="client-key", max_retries=0)
    messages: Any = [{"role": "user", "content": "hello vertex"}]
    raw = client.chat.completions.with_raw_response.create(
        model=TRANSLATED_MODEL, messages=messages, stream=stream
    )
    if stream:
        chunks = list(raw.parse())
        said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        said = raw.parse().choices[0].message.content or ""
    assert said == EXPECTED_TEXT
    upstream = fake_llm.last_request
    method = "streamGenerateContent" if stream else "generateContent"
    assert upstream.path == (
        "/v1/projects/translated-proj/locations/global/publishers/google/models/"
        f"{TRANSLATED_MODEL}:{method}"
    )
    token = upstream.headers["authorization"].removeprefix("Bearer ")
    assert token in oauth.issued and "client-key" not in str(dict(upstream.headers))
    record = wait_for_record(cloud_gw, raw.headers["x-irisgate-request-id"])
    assert record["provider"] == "vertex-translated" and record["status"] == 200
    assert record["upstream_format"] == "google_generate_content"
    assert record["cost_basis"] == f"vertex/{TRANSLATED_MODEL}"
    assert record["cost_nanodollars"] > 0
