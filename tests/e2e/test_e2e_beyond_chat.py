"""The APIs beyond chat end to end through the official clients against a running irisgate:
OpenAI embeddings (float and base64), moderations, image generation and edits (a real PNG
made by the test, uploaded as multipart), Gemini batchEmbedContents through google-genai and
Bedrock embedding models through boto3's InvokeModel. Each is recorded with its kind, usage
and cost, refused in its own envelope without a grant or a flag, charged to a quota, and
listed by the catalog."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import httpx2
import openai
import pytest
from conftest import wait_for_record
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from irisgate.testing import FakeLLM
from irisgate.testing.fake_media import vector
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer
from irisgate.usage.tokenizer import count_tokens

OPENAI_MODELS = [
    "text-embedding-3-small",
    "omni-moderation-latest",
    "gpt-image-1",
    "dall-e-3",
    "dall-e-2",
    "gpt-4o-mini",
]
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"


def _config(upstream: str) -> str:
    every_openai_flag = {
        "openai_chat": True,
        "openai_embeddings": True,
        "openai_images": True,
        "openai_moderations": True,
    }
    providers = {
        "openai": {
            "baseurl": upstream,
            "apikey": "sk-upstream-secret",
            "models": OPENAI_MODELS,
            "compatibility": every_openai_flag,
        },
        # an OpenAI-compatible server that serves chat only: no flag for embeddings
        "chatonly": {"baseurl": upstream, "models": ["local-embed"]},
        "secret": {
            "baseurl": upstream,
            "models": ["secret-embed"],
            "compatibility": {"openai_embeddings": True},
        },
        "gemini": {
            "baseurl": upstream,
            "apikey": "gemini-upstream-key",
            "authorization": "x-goog-api-key",
            "models": ["gemini-embedding-001", "gemini-2.5-flash"],
            "compatibility": {"gemini_generate_content": True, "gemini_embed_content": True},
        },
        "gemini-chat": {
            "baseurl": upstream,
            "apikey": "gemini-upstream-key",
            "authorization": "x-goog-api-key",
            "models": ["text-embedding-004"],
            "compatibility": {"gemini_generate_content": True},
        },
        "bedrock": {
            "baseurl": upstream,
            "apikey": "bedrock-api-key",
            "models": [TITAN, COHERE],
            "compatibility": {"bedrock_model_invoke": True},
        },
    }
    grants = [
        {
            "src": ["dev@localhost"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "admin"},
                    *(
                        {"models": f"{p}/**"}
                        for p in ("openai", "chatonly", "gemini", "gemini-chat", "bedrock")
                    ),
                    {"quotas": [{"bucket": "spend"}]},
                ]
            },
        }
    ]
    quotas = {"spend": {"capacity": "$100", "rate": "$0/day"}}
    return json.dumps({"providers": providers, "grants": grants, "quotas": quotas}, indent=2)


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        _config(fake_llm.base_url), data_dir=Path(tmp_path_factory.mktemp("gw")), identity="dev"
    )
    with server:
        yield server


def _openai(gw: IrisgateServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="client-placeholder", max_retries=0)


def _http(gw: IrisgateServer) -> httpx2.Client:
    return httpx2.Client(base_url=gw.url, timeout=60)


def _balance(gw: IrisgateServer) -> int:
    buckets = _http(gw).get("/api/quotas").json()["buckets"]
    [spend] = [b for b in buckets if b["name"] == "spend"]
    return int(spend["balance_nanodollars"])


def png(width: int, height: int) -> bytes:
    """A real PNG image (RGBA, a gradient), as an image editor would upload it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    noise = random.Random(width * height)  # a photo's noise: it does not compress away
    raw = b"".join(b"\x00" + noise.randbytes(width * 4) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# -- OpenAI embeddings ----------------------------------------------------------------------------


def test_embeddings_float_and_base64_are_relayed_and_recorded(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    client = _openai(gw)
    before = _balance(gw)
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["the quick brown fox", "jumps"], dimensions=8
    )
    answer = raw.parse()  # the SDK asks for base64 and decodes it
    assert answer.data[0].embedding == pytest.approx(vector("the quick brown fox", 8), abs=1e-6)
    assert answer.data[1].embedding == pytest.approx(vector("jumps", 8), abs=1e-6)
    upstream = fake_llm.last_request
    assert upstream.path == "/v1/embeddings"
    assert upstream.json["encoding_format"] == "base64"
    assert upstream.headers["authorization"] == "Bearer sk-upstream-secret"
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert (record["kind"], record["api_format"], record["provider"]) == (
        "embedding",
        "openai_embeddings",
        "openai",
    )
    assert (record["input_tokens"], record["output_tokens"]) == (5, 0)
    assert record["cost_nanodollars"] == 5 * 20  # $0.02 per million tokens
    assert record["cost_basis"] == "openai/text-embedding-3-small"
    assert _balance(gw) == before - 100  # the reservation settled to the cost

    floats = client.embeddings.create(
        model="text-embedding-3-small", input="one two", encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(vector("one two", 8), abs=1e-6)
    assert floats.usage.prompt_tokens == 2


def test_embeddings_refused_in_openai_envelope(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = _openai(gw)
    calls = len(fake_llm.requests)
    with pytest.raises(openai.PermissionDeniedError) as denied:  # no grant for secret/*
        client.embeddings.create(model="secret-embed", input="x")
    assert denied.value.body["code"] == "model_not_granted"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:  # chatonly lacks openai_embeddings
        client.embeddings.create(model="local-embed", input="x")
    assert "OpenAI Embeddings" in missing.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="", input="x")
    assert bad.value.body["param"] == "model"  # type: ignore[index]
    assert len(fake_llm.requests) == calls, "refused requests never go upstream"
    # chat still goes to the chat-only provider: its flags are as they were
    assert (
        _openai(gw)
        .chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        .choices
    )


def test_provider_qualified_model_goes_upstream_bare(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    _openai(gw).embeddings.create(model="openai/text-embedding-3-small", input="a b c")
    assert fake_llm.last_request.json["model"] == "text-embedding-3-small"


# -- moderations ----------------------------------------------------------------------------------


def test_moderations_are_relayed_and_free(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    raw = _openai(gw).moderations.with_raw_response.create(input=["a kind word", "FLAG_ME now"])
    answer = raw.parse()
    assert [r.flagged for r in answer.results] == [False, True]
    assert answer.results[1].categories.violence is True
    assert "model" not in fake_llm.last_request.json  # OpenAI picks its default, as asked
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert (record["kind"], record["model"]) == ("moderation", "omni-moderation-latest")
    assert record["cost_nanodollars"] == 0  # OpenAI does not charge moderations


# -- images ---------------------------------------------------------------------------------------


def test_gpt_image_generation_priced_by_tokens(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    raw = _openai(gw).images.with_raw_response.generate(
        model="gpt-image-1", prompt="a red fox in snow", size="1024x1024"
    )
    answer = raw.parse()
    image = base64.b64decode(answer.data[0].b64_json or "")
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    stored = json.loads(record["response_body"])  # the image by its size, not inline
    b64_size = len(answer.data[0].b64_json or "")
    assert stored["data"] == [
        {"b64_json": f"[irisgate: {b64_size} bytes of base64 image data, not stored]"}
    ]
    assert stored["usage"]["output_tokens"] == 1056
    assert (record["kind"], record["unit"]) == ("image", "")
    assert (record["input_tokens"], record["output_tokens"]) == (5, 1056)
    # genai-prices: $5 per million text input tokens, $40 per million output tokens
    assert record["cost_nanodollars"] == 5 * 5_000 + 1056 * 40_000


def test_dall_e_priced_per_image_by_size_and_quality(gw: IrisgateServer) -> None:
    raw = _openai(gw).images.with_raw_response.generate(
        model="dall-e-3", prompt="a lighthouse", size="1792x1024", quality="hd", n=1
    )
    assert raw.parse().data[0].url
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert (record["kind"], record["unit"], record["units"]) == ("image", "image", 1)
    assert record["cost_nanodollars"] == 120_000_000  # $0.12 for one HD 1792x1024 image
    assert record["cost_basis"] == "openai/dall-e-3"

    raw = _openai(gw).images.with_raw_response.generate(prompt="two cats", n=2)  # dall-e-2
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert (record["model"], record["units"]) == ("dall-e-2", 2)
    assert record["cost_nanodollars"] == 40_000_000  # 2 x $0.02 at the default 1024x1024


def test_image_requests_reserve_their_per_image_price(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """An HD 1792x1024 DALL-E 3 image ($0.12) held upstream reserves its price: a $0.10
    bucket refuses a second image meanwhile, and the first is charged what it cost."""
    admin = _http(gw)
    assert admin.post("/api/quotas/set", json={"bucket": "spend", "balance": "$0.10"}).is_success
    calls = len(fake_llm.requests)
    try:
        fake_llm.hang = True
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(
                _openai(gw).images.with_raw_response.generate,
                model="dall-e-3",
                prompt="a held image",
                size="1792x1024",
                quality="hd",
            )
            assert fake_llm.wait_for(lambda: len(fake_llm.requests) > calls)
            with pytest.raises(openai.RateLimitError) as refused:
                _openai(gw).images.generate(model="dall-e-3", prompt="another")
            assert "reserved by 1 request(s) in flight" in refused.value.message
            fake_llm.hang = False
            raw = held.result()
        record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
        assert record["cost_nanodollars"] == 120_000_000
        assert _balance(gw) == 100_000_000 - 120_000_000
        assert len(fake_llm.requests) == calls + 1  # the refused one never went upstream
    finally:
        fake_llm.hang = False
        admin.post("/api/quotas/set", json={"bucket": "spend", "balance": "$100"})


def test_image_edit_uploads_a_real_png_whole(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    image = png(600, 600)  # ~1.4 MB: past the in-memory part of the upload, so on disk
    assert len(image) > 1 << 20
    raw = _openai(gw).images.with_raw_response.edit(
        model="openai/gpt-image-1",
        image=("fox.png", io.BytesIO(image), "image/png"),
        prompt="add a hat",
    )
    answer = raw.parse()
    assert answer.data[0].b64_json
    upstream = fake_llm.last_request
    assert upstream.path == "/v1/images/edits"
    assert upstream.json["model"] == "gpt-image-1"  # renamed inside the form
    assert upstream.json["prompt"] == "add a hat"
    [sent] = upstream.json["image"]
    assert (sent["filename"], sent["content_type"], sent["bytes"]) == (
        "fox.png",
        "image/png",
        len(image),
    )
    assert sent["sha256"] == hashlib.sha256(image).hexdigest()
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert record["kind"] == "image"
    assert record["request_bytes"] > len(image)
    assert record["input_tokens"] == 3 + 65  # text and image tokens the answer reported
    captured = json.loads(record["request_body"])  # the form by size and type, not inline
    assert captured == {
        "model": "openai/gpt-image-1",
        "prompt": "add a hat",
        "image": [{"filename": "fox.png", "content_type": "image/png", "bytes": len(image)}],
    }


def test_an_upload_is_sent_again_to_the_next_key(fake_llm: FakeLLM, tmp_path: Path) -> None:
    """The first key is rate-limited (429): the same upload, whole, goes to the second."""
    config = {
        "providers": {
            "openai": {
                "baseurl": fake_llm.base_url,
                "apikey": ["sk-first", "sk-second"],
                "models": ["gpt-image-1"],
                "compatibility": {"openai_images": True},
            }
        },
        "grants": [
            {
                "src": ["dev@localhost"],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
            }
        ],
    }
    image = png(300, 300)
    fake_llm.fail_next(429)
    with InProcessIrisgate(json.dumps(config), data_dir=tmp_path) as local:
        sdk = openai.OpenAI(
            base_url=local.url + "/v1", api_key="-", http_client=local.client, max_retries=0
        )
        answer = sdk.images.edit(
            model="gpt-image-1", image=("a.png", io.BytesIO(image), "image/png"), prompt="hat"
        )
    assert answer.data[0].b64_json
    first, second = fake_llm.requests[-2:]
    keys = {first.headers["authorization"], second.headers["authorization"]}
    assert keys == {"Bearer sk-first", "Bearer sk-second"}
    for sent in (first, second):
        assert sent.json["image"][0]["sha256"] == hashlib.sha256(image).hexdigest()


def test_bad_multipart_is_a_400_in_openai_envelope(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    calls = len(fake_llm.requests)
    http = _http(gw)
    cut = (
        b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-image-1\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nPNG'
    )
    answer = http.post(
        "/v1/images/edits",
        content=cut,
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "closing boundary" in answer.json()["error"]["message"]
    answer = http.post(
        "/v1/images/edits", json={"model": "gpt-image-1"}, headers={"authorization": "Bearer x"}
    )
    assert answer.status_code == 400
    assert "multipart/form-data" in answer.json()["error"]["message"]
    assert len(fake_llm.requests) == calls


def test_a_big_image_answer_is_relayed_whole(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    fake_llm.image_bytes = 15 * 1024 * 1024  # 20 MB of base64 JSON
    raw = _openai(gw).images.with_raw_response.generate(model="gpt-image-1", prompt="big one")
    image = base64.b64decode(raw.parse().data[0].b64_json or "")
    assert len(image) == fake_llm.image_bytes
    assert len(raw.content) > 20_000_000
    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert record["response_bytes"] == len(raw.content)
    assert record["output_tokens"] == 1056  # usage read from the answer's tail
    kept = json.loads(record["response_body"])  # described by size and type, not inline
    assert kept == {
        "irisgate_not_stored": {"bytes": len(raw.content), "content_type": "application/json"}
    }


# -- Gemini ---------------------------------------------------------------------------------------


def _gemini(gw: IrisgateServer) -> genai.Client:
    options = genai_types.HttpOptions(base_url=gw.url, api_version="v1beta")
    return genai.Client(api_key="client-placeholder", http_options=options)


def test_gemini_embed_content_counts_tokens_it_was_not_told(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    client = _gemini(gw)
    texts = ["retrieval augmented generation", "is a pattern"]
    answer = client.models.embed_content(
        model="gemini-embedding-001",
        contents=texts,
        config=genai_types.EmbedContentConfig(output_dimensionality=8),
    )
    embeddings = answer.embeddings or []
    assert len(embeddings) == 2
    for embedding, text in zip(embeddings, texts, strict=True):
        assert embedding.values == pytest.approx(vector(text, 8), abs=1e-6)
    upstream = fake_llm.last_request
    assert upstream.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert upstream.headers["x-goog-api-key"] == "gemini-upstream-key"
    request_id = answer.sdk_http_response.headers["x-irisgate-request-id"]  # type: ignore[union-attr]
    record = wait_for_record(gw, request_id)
    assert (record["kind"], record["api_format"]) == ("embedding", "gemini_embed_content")
    assert record["usage_estimated"] is True
    counted = count_tokens("cl100k_base", texts)
    assert counted < record["input_tokens"] <= counted + 20
    assert record["cost_nanodollars"] == record["input_tokens"] * 150  # $0.15 per million


def test_gemini_embed_needs_its_flag(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    calls = len(fake_llm.requests)
    client = _gemini(gw)  # kept: the SDK closes its HTTP client when collected
    with pytest.raises(genai_errors.ClientError) as refused:
        client.models.embed_content(model="text-embedding-004", contents="x")
    assert refused.value.code == 404
    assert refused.value.status == "NOT_FOUND"
    assert len(fake_llm.requests) == calls


# -- Bedrock --------------------------------------------------------------------------------------


def _bedrock(gw: IrisgateServer) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=gw.url + "/bedrock",
        aws_access_key_id="client-placeholder",
        aws_secret_access_key="client-placeholder",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def test_bedrock_titan_and_cohere_embeddings(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = _bedrock(gw)
    answer = client.invoke_model(
        modelId=TITAN, body=json.dumps({"inputText": "hello titan world", "dimensions": 8})
    )
    body = json.loads(answer["body"].read())
    assert body["embedding"] == pytest.approx(vector("hello titan world", 8), abs=1e-6)
    assert fake_llm.last_request.headers["authorization"] == "Bearer bedrock-api-key"
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-irisgate-request-id"]
    record = wait_for_record(gw, request_id)
    assert (record["kind"], record["api_format"]) == ("embedding", "bedrock_model_invoke")
    assert record["input_tokens"] == 3
    assert record["cost_nanodollars"] == 3 * 20  # $0.02 per million (genai-prices, aws)

    answer = client.invoke_model(
        modelId=COHERE,
        body=json.dumps({"texts": ["one", "two three"], "input_type": "search_document"}),
    )
    assert len(json.loads(answer["body"].read())["embeddings"]) == 2
    request_id = answer["ResponseMetadata"]["HTTPHeaders"]["x-irisgate-request-id"]
    record = wait_for_record(gw, request_id)
    assert (record["kind"], record["input_tokens"]) == ("embedding", 3)  # from the header


# -- catalog --------------------------------------------------------------------------------------


def test_catalog_lists_what_each_provider_serves(gw: IrisgateServer) -> None:
    models = {m["id"]: m for m in _http(gw).get("/v1/models").json()["data"]}
    assert {"openai_embeddings", "openai_images", "openai_moderations"} <= set(
        models["text-embedding-3-small"]["formats"]
    )
    assert "gemini_embed_content" in models["gemini-embedding-001"]["formats"]
    assert models[TITAN]["formats"] == ["bedrock_model_invoke"]
    assert models["local-embed"]["formats"] == ["openai_chat"]
    groups = {g["provider"]: g for g in _http(gw).get("/api/models").json()["providers"]}
    apis = {a["flag"]: a for a in groups["openai"]["apis"]}
    assert apis["openai_embeddings"]["endpoints"] == ["/v1/embeddings"]
    assert apis["openai_images"]["endpoints"] == ["/v1/images/generations", "/v1/images/edits"]
    gemini = {a["flag"]: a for a in groups["gemini"]["apis"]}
    assert gemini["gemini_embed_content"]["endpoints"] == [
        "/v1beta/models/{model}:embedContent",
        "/v1beta/models/{model}:batchEmbedContents",
    ]
