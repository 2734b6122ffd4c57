"""The APIs beyond chat (gateway/formats/nonchat.py): each format reads usage from the answer
the vendor sends, the texts of its request (what hooks see and what an unreported count is
estimated from), never a conversation or a tool call; its paths classify to it; DALL·E
answers are counted in images, priced by size and quality."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from irisgate.gateway.capture import read_answer
from irisgate.gateway.formats import cloud, nonchat, templates
from irisgate.gateway.formats.base import Counted
from irisgate.gateway.formats.registry import (
    OPENAI_EMBEDDINGS,
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    PATHS,
)
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units, unit_price

JSON = {"content-type": "application/json"}


def test_embeddings_usage_and_texts() -> None:
    body = b'{"object":"list","data":[],"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}'
    answer = read_answer(OPENAI_EMBEDDINGS, 200, JSON, body)
    assert answer.usage == Usage(input_tokens=7)
    assert answer.tool_calls == 0
    request = {"model": "m", "input": ["alpha beta", "gamma", [1, 2, 3]]}
    assert OPENAI_EMBEDDINGS.prompt_text(request).texts == ["alpha beta", "gamma"]
    assert OPENAI_EMBEDDINGS.user_message({"input": "one"}) == "one"
    assert OPENAI_EMBEDDINGS.first_turn(request) == [{"api": "openai_embeddings"}]
    assert OPENAI_EMBEDDINGS.wants_stream({"stream": True}) is False


def test_moderations_default_model_and_parts() -> None:
    assert OPENAI_MODERATIONS.model_of({"input": "x"}) == "omni-moderation-latest"
    assert OPENAI_MODERATIONS.model_of({"model": "text-moderation-007"}) == "text-moderation-007"
    request = {"input": [{"type": "text", "text": "check me"}, {"type": "image_url"}]}
    assert OPENAI_MODERATIONS.user_message(request) == "check me"
    answer = read_answer(OPENAI_MODERATIONS, 200, JSON, b'{"id":"modr-1","results":[]}')
    assert answer.usage.is_empty()


def test_gpt_image_usage_and_dall_e_units() -> None:
    gpt = (
        b'{"created":1,"data":[{"b64_json":"AAAA"}],"usage":{"input_tokens":70,'
        b'"input_tokens_details":{"image_tokens":65,"text_tokens":5},"output_tokens":1056,'
        b'"total_tokens":1126}}'
    )
    answer = read_answer(OPENAI_IMAGES, 200, JSON, gpt)
    assert answer.usage == Usage(input_tokens=70, output_tokens=1056, image_input_tokens=65)
    assert isinstance(OPENAI_IMAGES, Counted)
    dall_e: dict[str, Any] = {"created": 1, "data": [{"url": "u1"}, {"url": "u2"}]}
    request = {"prompt": "p", "size": "512x512"}
    assert OPENAI_IMAGES.units(request, dall_e) == Units("image", 2, ("512x512", ""))
    assert OPENAI_IMAGES.units(request, {"data": []}) is None
    assert OPENAI_IMAGES.model_of({"prompt": "p"}) == "dall-e-2"


@pytest.mark.parametrize(
    ("basis", "model", "options", "usd"),
    [
        ("openai", "dall-e-3", ("", ""), "0.040"),
        ("openai", "dall-e-3", ("1024x1792", "hd"), "0.120"),
        ("openai", "dall-e-3", ("1792x1024", "standard"), "0.080"),
        ("azure", "dall-e-2", ("256x256", ""), "0.016"),
        ("openai", "dall-e-2", ("1024x1024", "auto"), "0.020"),
        ("openai", "dall-e-3", ("333x333", ""), None),  # a size OpenAI does not sell
        ("openai", "gpt-image-1", ("", ""), None),  # priced by tokens instead
        ("google", "dall-e-3", ("", ""), None),  # not these list prices
    ],
)
def test_image_prices(basis: str, model: str, options: tuple[str, str], usd: str | None) -> None:
    price = unit_price(basis, model, Units("image", 1, options))
    assert price == (Decimal(usd) if usd is not None else None)


def test_gemini_embed_texts_and_paths() -> None:
    batch = {
        "requests": [
            {"model": "models/m", "content": {"parts": [{"text": "first"}, {"text": "more"}]}},
            {"model": "models/m", "content": {"parts": [{"text": "second"}]}},
            "junk",
        ]
    }
    assert cloud.GEMINI_EMBED.prompt_text(batch).texts == ["first", "more", "second"]
    single = {"content": {"parts": [{"text": "only"}]}}
    assert cloud.GEMINI_EMBED.user_message(single) == "only"
    answer = read_answer(cloud.GEMINI_EMBED, 200, JSON, b'{"embeddings":[{"values":[0.1]}]}')
    assert answer.usage.is_empty()  # Gemini reports none: the gateway counts (pipeline.py)
    with_usage = b'{"embedding":{"values":[0.1]},"usageMetadata":{"promptTokenCount":4}}'
    assert read_answer(cloud.GEMINI_EMBED, 200, JSON, with_usage).usage == Usage(input_tokens=4)
    for method in ("embedContent", "batchEmbedContents"):
        found = templates.classify(f"/v1beta/models/gemini-embedding-001:{method}", b"key=s")
        assert found is not None
        op, target = found
        assert (op.format, op.kind, target.model, target.query) == (
            cloud.GEMINI_EMBED,
            "embedding",
            "gemini-embedding-001",
            b"",
        )


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("amazon.titan-embed-text-v2:0", "embedding"),
        ("cohere.embed-english-v3", "embedding"),
        ("us.cohere.embed-v4:0", "embedding"),
        ("amazon.nova-2-multimodal-embeddings-v1:0", "embedding"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "chat"),
        ("amazon.titan-text-express-v1", "chat"),
    ],
)
def test_bedrock_invoke_kind_follows_the_model(model: str, kind: str) -> None:
    found = templates.classify(f"/bedrock/model/{model}/invoke", b"")
    assert found is not None
    assert found[0].kind_of(model) == kind


def test_bedrock_titan_usage_from_the_body() -> None:
    body = b'{"embedding":[0.1],"inputTextTokenCount":9}'
    assert read_answer(cloud.BEDROCK_INVOKE, 200, JSON, body).usage == Usage(input_tokens=9)
    assert nonchat.bedrock_embed_texts({"texts": ["a", 3, "b"]}).texts == ["a", "b"]


def test_paths_and_kinds() -> None:
    served = {path: (op.format.name, op.kind, op.upload) for path, op in PATHS.items()}
    assert (
        served.items()
        >= {
            "/v1/embeddings": ("openai_embeddings", "embedding", False),
            "/v1/moderations": ("openai_moderations", "moderation", False),
            "/v1/images/generations": ("openai_images", "image", False),
            "/v1/images/edits": ("openai_images", "image", True),
        }.items()
    )
