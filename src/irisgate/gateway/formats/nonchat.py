"""The APIs beyond chat: embeddings, moderations and images (OpenAI), embedContent (Gemini)
and Bedrock's embedding models, read sans-io.

None of them streams or calls tools, so `NotChat` answers the conversation questions of the
format interface (gateway/formats/base.py) for all of them: no first turn, no tool calls,
no chat adapter, no stream framing. What each one carries is read here: the text a request
embeds or checks (for hooks and for estimating a count the upstream did not report), the
usage of an answer, how many images a request asks for and at which size and quality (what
per-image prices depend on).

Tolerant like every reader of untrusted JSON here: any shape gives some answer, never an
error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats.base import ChunkFilter, StreamAccumulator
from irisgate.gateway.formats.chatwire import ChatAdapter
from irisgate.gateway.formats.streamresult import StreamResult, as_dict, as_int
from irisgate.usage.estimate import Prompt
from irisgate.usage.tokens import Usage

#: texts of one request taken for hooks and estimates (a batch may hold thousands)
_MAX_TEXTS = 4096


class _NoStream:
    """The accumulator of an API that never streams: an SSE answer (a misbehaving upstream)
    is not read."""

    def feed_event(self, event_type: str, data: bytes) -> None:
        return None

    def result(self) -> StreamResult:
        return StreamResult(Usage(), {}, 0, finished=False)


class NotChat:
    """The conversation half of the format interface, for APIs that hold no conversation."""

    chat_adapter: ChatAdapter | None = None

    def wants_stream(self, body: dict[str, Any]) -> bool:
        return False

    def prepare_stream(self, body: dict[str, Any]) -> ChunkFilter | None:
        return None

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        return None

    def accumulator(self) -> StreamAccumulator:
        return _NoStream()

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        """The API itself: a caller's requests to it without a session header are one
        session (their embeddings, their images), apart from their conversations."""
        return [{"api": self.name}]  # type: ignore[attr-defined]  # every format has a name

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        return 0

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        return None  # the Models page's Test asks chat models

    def user_message(self, body: dict[str, Any]) -> str:
        """What the request embeds, checks or draws, for hooks: its texts joined."""
        return "\n".join(self.prompt_text(body).texts)

    def prompt_text(self, body: dict[str, Any]) -> Prompt:
        return Prompt([], 0)

    def answer_text(self, response: dict[str, Any]) -> list[str]:
        return []  # an embedding or an image is not text a tokenizer counts


# -- OpenAI ------------------------------------------------------------------------------------


def openai_inputs(body: Mapping[str, Any]) -> Prompt:
    """The texts of `/v1/embeddings` or `/v1/moderations` `input`: a string, a list of
    strings, or (moderations) a list of `{"type": "text", "text": ...}` parts; token-id
    arrays are not text and are left out."""
    value = body.get("input")
    if isinstance(value, str):
        return Prompt([value], 1)
    texts: list[str] = []
    if isinstance(value, list):
        for item in value[:_MAX_TEXTS]:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                texts.append(item["text"])
    return Prompt(texts, len(texts))


def openai_prompt(body: Mapping[str, Any]) -> Prompt:
    """The prompt of `/v1/images/generations` (or the fields of `/v1/images/edits`)."""
    prompt = body.get("prompt")
    return Prompt([prompt], 1) if isinstance(prompt, str) and prompt else Prompt([], 0)


def embeddings_usage(body: Mapping[str, Any]) -> Usage:
    """`usage.prompt_tokens` of an embeddings answer (its only count)."""
    usage = as_dict(body.get("usage"))
    return Usage(input_tokens=as_int(usage.get("prompt_tokens")))


def images_usage(body: Mapping[str, Any]) -> Usage:
    """The token usage GPT Image models report (`input_tokens`, `output_tokens`, the image
    part of the input in `input_tokens_details.image_tokens`); DALL·E reports none."""
    usage = as_dict(body.get("usage"))
    details = as_dict(usage.get("input_tokens_details"))
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        image_input_tokens=as_int(details.get("image_tokens")),
        cache_read_tokens=as_int(details.get("cached_tokens")),
    )


def images_stored(response: Mapping[str, Any] | None, size: int, content_type: str) -> bytes:
    """An images answer as capture keeps it: every `b64_json` replaced by its size, so no
    image is stored inline; an answer too large to read whole is described, not kept."""
    if response is None:
        return orjson.dumps({"irisgate_not_stored": {"bytes": size, "content_type": content_type}})
    data = response.get("data")
    if not isinstance(data, list):
        return orjson.dumps(response)
    slim = []
    for item in data:
        image = as_dict(item).get("b64_json")
        if isinstance(image, str):
            note = f"[irisgate: {len(image)} bytes of base64 image data, not stored]"
            slim.append({**as_dict(item), "b64_json": note})
        else:
            slim.append(item)
    return orjson.dumps({**response, "data": slim})


#: images one request may ask for (OpenAI's own limit)
MAX_IMAGES = 10


def images_asked(body: Mapping[str, Any]) -> int:
    """How many images a request asks for (`n`, a number in JSON, text in a form), 1 to
    MAX_IMAGES; 1 when not given or not a number."""
    value = body.get("n")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1, min(value, MAX_IMAGES))
    return 1


def images_made(body: Mapping[str, Any]) -> int:
    """How many images an images answer holds (`data` entries)."""
    data = body.get("data")
    return len(data) if isinstance(data, list) else 0


def image_options(body: Mapping[str, Any]) -> tuple[str, str]:
    """(size, quality) a request asked for, as the per-image price table names them
    ("" when not given: the model's default)."""
    size, quality = body.get("size"), body.get("quality")
    return (
        size if isinstance(size, str) else "",
        quality if isinstance(quality, str) else "",
    )


# -- Gemini ------------------------------------------------------------------------------------


def _content_texts(content: object, out: list[str]) -> None:
    for part in as_list(as_dict(content).get("parts")):
        text = as_dict(part).get("text")
        if isinstance(text, str) and len(out) < _MAX_TEXTS:
            out.append(text)


def gemini_embed_texts(body: Mapping[str, Any]) -> Prompt:
    """The texts of `:embedContent` (`content.parts[].text`) or `:batchEmbedContents`
    (`requests[].content.parts[].text`)."""
    texts: list[str] = []
    requests = body.get("requests")
    if isinstance(requests, list):
        for request in requests[:_MAX_TEXTS]:
            _content_texts(as_dict(request).get("content"), texts)
        return Prompt(texts, len(requests))
    _content_texts(body.get("content"), texts)
    return Prompt(texts, 1)


def gemini_embed_usage(body: Mapping[str, Any]) -> Usage:
    """Gemini's embedding answers carry no usage unless `usageMetadata` is there (newer
    models): its `promptTokenCount`."""
    metadata = as_dict(body.get("usageMetadata"))
    return Usage(input_tokens=as_int(metadata.get("promptTokenCount")))


# -- Bedrock -----------------------------------------------------------------------------------


def is_bedrock_embedding(model: str) -> bool:
    """An embedding model on Bedrock: Amazon Titan / Nova embeddings, Cohere Embed
    (`amazon.titan-embed-text-v2:0`, `cohere.embed-english-v3`, `us.cohere.embed-v4:0`)."""
    return "embed" in model.partition(":")[0].rpartition(".")[2]


def bedrock_embed_texts(body: Mapping[str, Any]) -> Prompt:
    """Titan's `inputText`, or Cohere's `texts`."""
    text = body.get("inputText")
    if isinstance(text, str):
        return Prompt([text], 1)
    texts = [t for t in as_list(body.get("texts"))[:_MAX_TEXTS] if isinstance(t, str)]
    return Prompt(texts, len(texts))


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
