"""FakeLLM's endpoints beyond chat, in the vendors' wire shapes.

OpenAI
    ``POST /v1/embeddings``: ``{"object": "list", "data": [{"object": "embedding", "index",
    "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``; the vector has
    ``dimensions`` floats (8 unless asked), as a JSON array, or with ``encoding_format:
    "base64"`` (the Python SDK's default) as base64 of little-endian float32s.
    ``POST /v1/moderations``: ``{"id": "modr-…", "model", "results": [{"flagged",
    "categories", "category_scores", "category_applied_input_types"}]}``, one result per
    input; an input containing `FLAG_TRIGGER` is flagged for violence. No usage (OpenAI
    reports none).
    ``POST /v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart/form-data with
    ``image`` files): ``{"created", "data": [{"b64_json"}|{"url", "revised_prompt"}]}``. GPT
    Image models (``gpt-image-*``) answer base64 PNG data with ``usage`` (input, output and
    image-input tokens) and their ``background``, ``output_format``, ``quality`` and
    ``size``; DALL·E models answer ``url`` unless ``response_format`` is ``b64_json``, with no
    usage. `FakeLLM.image_bytes` sets the size of each image (a big answer, for relay tests).
    An edit's recorded request (`RecordedRequest.json`) holds its text fields and, per file
    field, ``{"filename", "content_type", "bytes", "sha256"}``.

Gemini
    ``POST …/models/{m}:embedContent`` → ``{"embedding": {"values"}}``, ``:batchEmbedContents``
    → ``{"embeddings": [{"values"}]}``: no usage, as the Gemini API answers for its
    embedding models (``outputDimensionality`` values, 8 unless asked).

Bedrock (InvokeModel of an embedding model)
    Amazon Titan (``amazon.titan-embed-*``): ``{"embedding", "embeddingsByType": {"float"},
    "inputTextTokenCount"}``; Cohere (``cohere.embed-*``): ``{"id", "texts", "embeddings",
    "response_type": "embeddings_floats"}``. Both with the
    ``X-Amzn-Bedrock-Input-Token-Count`` header.

Token counts follow FakeLLM's word rule: one token per whitespace-separated word, at least one
per input.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from irisgate.testing import fake_bedrock, fake_google, fake_openai
from irisgate.testing.fake_reply import count_words, new_id
from irisgate.testing.fake_server import RecordedRequest

if TYPE_CHECKING:
    from irisgate.testing.fake_llm import FakeLLM

FLAG_TRIGGER = "FLAG_ME"
DEFAULT_DIMENSIONS = 8
_INDENT = orjson.OPT_INDENT_2
_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: the PNG signature and an IHDR of a 1x1 image: what the fake's images start with
_PNG_HEAD = bytes.fromhex("89504e470d0a1a0a0000000d494844520000000100000001080600000001f15c4a")


def vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish vector for `text` (the same text, the same vector)."""
    seed = hashlib.sha256(text.encode()).digest()
    out = []
    for i in range(dimensions):
        byte = seed[i % len(seed)] ^ (i * 37 & 0xFF)
        out.append(round((byte - 127.5) / 127.5, 6))
    return out


def _tokens(texts: list[str]) -> int:
    return sum(max(1, count_words(t)) for t in texts)


def _dimensions(value: object) -> int:
    return value if isinstance(value, int) and 0 < value <= 4096 else DEFAULT_DIMENSIONS


def _openai_texts(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        texts = []
        for item in value:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif isinstance(item, list | int):  # token ids: counted, not embedded as text
                texts.append(" ".join("t" for _ in (item if isinstance(item, list) else [0])))
            else:
                return None
        return texts
    return None


def _bad(fake: FakeLLM, request: web.Request, message: str, param: str) -> web.Response:
    return fake._json(request, fake_openai.error_body(400, message, param=param), status=400)


async def embeddings(fake: FakeLLM, request: web.Request, body: dict[str, Any]) -> web.Response:
    texts = _openai_texts(body.get("input"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _bad(fake, request, "you must provide a model parameter", "model")
    if texts is None:
        return _bad(fake, request, "'input' is a required property", "input")
    size = _dimensions(body.get("dimensions"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        values = vector(text, size)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{size}f", *values)).decode() if as_base64 else values
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = _tokens(texts)
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return fake._json(request, orjson.dumps(answer, option=_INDENT))


async def moderations(fake: FakeLLM, request: web.Request, body: dict[str, Any]) -> web.Response:
    texts = _openai_texts(body.get("input"))
    if texts is None:
        return _bad(fake, request, "'input' is a required property", "input")
    model = body.get("model") if isinstance(body.get("model"), str) else "omni-moderation-latest"
    results = []
    for text in texts:
        flagged = FLAG_TRIGGER in text
        results.append(
            {
                "flagged": flagged,
                "categories": {c: flagged and c == "violence" for c in _CATEGORIES},
                "category_scores": {
                    c: 0.97 if flagged and c == "violence" else 0.0001 for c in _CATEGORIES
                },
                "category_applied_input_types": {c: ["text"] for c in _CATEGORIES},
            }
        )
    answer = {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": model, "results": results}
    return fake._json(request, orjson.dumps(answer, option=_INDENT))


def _image(fake: FakeLLM, prompt: str, index: int) -> bytes:
    """PNG-looking bytes of `fake.image_bytes` (at least the signature), from the prompt."""
    size = max(fake.image_bytes, len(_PNG_HEAD))
    seed = hashlib.sha256(f"{prompt}/{index}".encode()).digest()
    fill = (seed * (size // len(seed) + 1))[: size - len(_PNG_HEAD)]
    return _PNG_HEAD + fill


def _images_answer(fake: FakeLLM, fields: dict[str, Any], image_input_tokens: int) -> bytes:
    model = str(fields.get("model") or "dall-e-2")
    prompt = str(fields.get("prompt") or "")
    count = int(fields.get("n") or 1)
    gpt_image = model.startswith("gpt-image")
    as_b64 = gpt_image or fields.get("response_format") == "b64_json"
    data: list[dict[str, Any]] = []
    for index in range(count):
        if as_b64:
            data.append({"b64_json": base64.b64encode(_image(fake, prompt, index)).decode()})
        else:
            data.append(
                {
                    "url": f"https://images.example.invalid/{new_id('img-', 24)}.png",
                    "revised_prompt": prompt,
                }
            )
    answer: dict[str, Any] = {"created": int(time.time()), "data": data}
    if gpt_image:
        text_tokens = max(1, count_words(prompt))
        answer.update(
            background="opaque",
            output_format="png",
            quality=fields.get("quality") or "medium",
            size=fields.get("size") or "1024x1024",
            usage={
                "input_tokens": text_tokens + image_input_tokens,
                "input_tokens_details": {
                    "image_tokens": image_input_tokens,
                    "text_tokens": text_tokens,
                },
                "output_tokens": 1056 * count,
                "total_tokens": text_tokens + image_input_tokens + 1056 * count,
            },
        )
    # data first, usage last: as OpenAI writes it (a big answer's usage is in its tail)
    return orjson.dumps(answer)


async def images_generations(
    fake: FakeLLM, request: web.Request, body: dict[str, Any]
) -> web.Response:
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return _bad(fake, request, "'prompt' is a required property", "prompt")
    return fake._json(request, _images_answer(fake, body, 0))


async def images_edits(fake: FakeLLM, request: web.Request) -> web.StreamResponse:
    """The multipart edit: fields read, files measured and hashed, all recorded."""
    try:
        form = await request.post()  # aiohttp's own multipart reader, files to temporary files
    except ValueError:
        form = None
    fields: dict[str, Any] = {}
    files: dict[str, list[dict[str, Any]]] = {}
    for name, value in (form or {}).items():
        if isinstance(value, str):
            fields.setdefault(name, value)
        elif isinstance(value, web.FileField):
            content = value.file.read()
            files.setdefault(name, []).append(
                {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "bytes": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            )
    if fake.record:
        fake.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=request.headers,
                body=b"",  # the form is in `json`: its fields, and its files measured
                json={**fields, **files},
            )
        )
    early = await fake._before_answer(request, "openai")
    if early is not None:
        return early
    images = files.get("image") or files.get("image[]")
    if form is None or not images:
        return _bad(fake, request, "'image' is a required property", "image")
    if not fields.get("prompt"):
        return _bad(fake, request, "'prompt' is a required property", "prompt")
    image_tokens = 65 * len(images)
    return fake._json(request, _images_answer(fake, fields, image_tokens))


# -- Gemini ------------------------------------------------------------------------------------


def _gemini_texts(content: object) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [
        p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]


async def gemini_embed(
    fake: FakeLLM, request: web.Request, body: dict[str, Any], method: str
) -> web.Response:
    def bad(message: str) -> web.Response:
        return fake._json(
            request, fake_google.error_body(400, message), status=400, dialect="google"
        )

    if method == "embedContent":
        texts = _gemini_texts(body.get("content"))
        if not texts:
            return bad("* EmbedContentRequest.content: contents must not be empty\n")
        size = _dimensions(body.get("outputDimensionality"))
        answer: dict[str, Any] = {"embedding": {"values": vector(" ".join(texts), size)}}
    else:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return bad("* BatchEmbedContentsRequest.requests: requests must not be empty\n")
        embeddings = []
        for item in requests:
            texts = _gemini_texts(item.get("content") if isinstance(item, dict) else None)
            if not texts:
                return bad("* BatchEmbedContentsRequest.requests[].content: must not be empty\n")
            size = _dimensions(item.get("outputDimensionality"))  # a dict: it had texts
            embeddings.append({"values": vector(" ".join(texts), size)})
        answer = {"embeddings": embeddings}
    return fake._json(request, orjson.dumps(answer, option=_INDENT), dialect="google")


# -- Bedrock -----------------------------------------------------------------------------------


def is_embedding_model(model_id: str) -> bool:
    return "embed" in model_id.partition(":")[0].rpartition(".")[2]


async def bedrock_embed(
    fake: FakeLLM, request: web.Request, body: dict[str, Any], model: str
) -> web.Response:
    def bad(message: str) -> web.Response:
        return fake._json(
            request, fake_bedrock.error(400, message)[0], status=400, dialect="bedrock"
        )

    if fake_bedrock.vendor(model) == "cohere":
        texts = body.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
            return bad("Malformed input request: #: required key [texts] not found")
        answer: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "texts": texts,
            "embeddings": [vector(t, DEFAULT_DIMENSIONS) for t in texts],
            "response_type": "embeddings_floats",
        }
    else:
        text = body.get("inputText")
        if not isinstance(text, str) or not text:
            return bad("Malformed input request: #: required key [inputText] not found")
        texts = [text]
        values = vector(text, _dimensions(body.get("dimensions")))
        answer = {
            "embedding": values,
            "embeddingsByType": {"float": values},
            "inputTextTokenCount": _tokens(texts),
        }
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": str(_tokens(texts)),
        "X-Amzn-Bedrock-Invocation-Latency": "12",
    }
    return fake._json(request, orjson.dumps(answer), dialect="bedrock", headers=headers)
