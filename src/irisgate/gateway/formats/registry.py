"""The API formats irisgate speaks, and which gateway path is which format.

Each format is a small class over its sans-io parsing module; what differs between formats
is data (names, flags, envelopes). Adding a provider that speaks an existing format needs no
code here at all: it is configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats import (
    anthropic_messages,
    chatwire,
    cloud,
    nonchat,
    openai_audio,
    openai_chat,
    openai_responses,
    texts,
    turns,
)
from irisgate.gateway.formats.base import (
    PROBE_TEXT,
    PROBE_TOKENS,
    ApiFormat,
    Catalogued,
    ChunkFilter,
    Operation,
    StreamAccumulator,
)
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units
from irisgate.wire.errors import GatewayError

_OPENAI_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "too_large": "invalid_request_error",
    "rate_limit": "insufficient_quota",
    "blocked": "guardrail_blocked",
    "upstream": "upstream_error",
    "timeout": "timeout",
    "unavailable": "service_unavailable",
    "internal": "server_error",
}
_ANTHROPIC_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "blocked": "invalid_request_error",
    "upstream": "api_error",
    "timeout": "timeout_error",
    "unavailable": "overloaded_error",
    "internal": "api_error",
}


class _ModelInBody(Catalogued):
    """Formats that name the model in the JSON body and stream on `"stream": true`."""

    def model_of(self, body: dict[str, Any]) -> str | None:
        model = body.get("model")
        return model if isinstance(model, str) and model else None

    def wants_stream(self, body: dict[str, Any]) -> bool:
        return body.get("stream") is True

    def prepare_stream(self, body: dict[str, Any]) -> ChunkFilter | None:
        return None

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        return None  # these stream as SSE only

    def usage_from_headers(self, headers: Mapping[str, str]) -> Usage:
        return Usage()  # these report usage in the body only


class _OpenAIBase(_ModelInBody):
    cost_basis = "openai"

    def error_body(self, error: GatewayError) -> tuple[bytes, dict[str, str]]:
        payload = {
            "error": {
                "message": error.message,
                "type": _OPENAI_TYPES[error.kind],
                "param": error.param,
                "code": error.code,
            }
        }
        return orjson.dumps(payload), {}


class _ChatAccumulator:
    """Adapts the chat accumulator (data-only events) to the common interface."""

    def __init__(self) -> None:
        self._inner = openai_chat.ChatStreamAccumulator()

    def feed_event(self, event_type: str, data: bytes) -> None:
        self._inner.feed_event(data)

    def result(self) -> StreamResult:
        return self._inner.result()


class OpenAIChat(_OpenAIBase):
    name = "openai_chat"
    flag = "openai_chat"
    api_type = "oai_completions"
    title = "OpenAI Chat Completions"
    endpoints = ("/v1/chat/completions", "/chat/completions")
    #: how the chat app holds a conversation over this API (gateway/formats/chatwire.py)
    chat_adapter: chatwire.ChatAdapter | None = chatwire.OPENAI_CHAT

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return openai_chat.usage_from_response(body), openai_chat.count_tool_calls(body)

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        return turns.chat_first_turn(body)

    def user_message(self, body: dict[str, Any]) -> str:
        return turns.chat_user_message(body)

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return turns.chat_tool_calls(response)

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        return openai_chat.count_tool_calls(response)

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        messages = [{"role": "user", "content": PROBE_TEXT}]
        return "/v1/chat/completions", {
            "model": model,
            "max_tokens": PROBE_TOKENS,
            "messages": messages,
        }

    def accumulator(self) -> StreamAccumulator:
        return _ChatAccumulator()

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        return texts.chat_prompt(body)

    def answer_text(self, response: dict[str, Any]) -> list[str]:
        return texts.chat_answer(response)

    def prepare_stream(self, body: dict[str, Any]) -> ChunkFilter | None:
        """Ask for the usage chunk when the client did not; the filter removes it again."""
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return None
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        return openai_chat.UsageChunkFilter()


class OpenAIResponses(_OpenAIBase):
    name = "openai_responses"
    flag = "openai_responses"
    api_type = "oai_responses"
    title = "OpenAI Responses"
    endpoints = ("/v1/responses",)
    chat_adapter: chatwire.ChatAdapter | None = chatwire.RESPONSES

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return openai_responses.usage_from_response(body), openai_responses.count_tool_calls(body)

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        return turns.responses_first_turn(body)

    def user_message(self, body: dict[str, Any]) -> str:
        return turns.responses_user_message(body)

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return turns.responses_tool_calls(response)

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        return openai_responses.count_tool_calls(response)

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        return "/v1/responses", {
            "model": model,
            "max_output_tokens": PROBE_TOKENS,
            "input": PROBE_TEXT,
        }

    def accumulator(self) -> StreamAccumulator:
        return openai_responses.ResponsesStreamAccumulator()

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        return texts.responses_prompt(body)

    def answer_text(self, response: dict[str, Any]) -> list[str]:
        return texts.responses_answer(response)


class AnthropicMessages(_ModelInBody):
    name = "anthropic_messages"
    flag = "anthropic_messages"
    api_type = "ant_messages"
    title = "Anthropic Messages"
    chat_adapter: chatwire.ChatAdapter | None = chatwire.ANTHROPIC
    cost_basis = "anthropic"
    endpoints = ("/v1/messages", "/v1/messages/count_tokens")

    def error_body(self, error: GatewayError) -> tuple[bytes, dict[str, str]]:
        payload = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES[error.kind], "message": error.message},
        }
        return orjson.dumps(payload), {}

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return (
            anthropic_messages.usage_from_response(body),
            anthropic_messages.count_tool_calls(body),
        )

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        return turns.messages_first_turn(body)

    def user_message(self, body: dict[str, Any]) -> str:
        return turns.messages_user_message(body)

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return turns.anthropic_tool_calls(response)

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        return anthropic_messages.count_tool_calls(response)

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        messages = [{"role": "user", "content": PROBE_TEXT}]
        return "/v1/messages", {"model": model, "max_tokens": PROBE_TOKENS, "messages": messages}

    def accumulator(self) -> StreamAccumulator:
        return anthropic_messages.MessagesStreamAccumulator()

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        return texts.anthropic_prompt(body)

    def answer_text(self, response: dict[str, Any]) -> list[str]:
        return texts.anthropic_answer(response)


class _OpenAIBeyondChat(nonchat.NotChat, _OpenAIBase):
    """OpenAI's APIs beyond chat: the model in the JSON body (or the form), never a stream.
    `default_model` is what OpenAI uses when a request names none (the route is found for
    it; the body goes upstream without one, as the client sent it)."""

    default_model = ""

    def model_of(self, body: dict[str, Any]) -> str | None:
        return super().model_of(body) or (self.default_model or None)


class OpenAIEmbeddings(_OpenAIBeyondChat):
    name = "openai_embeddings"
    flag = "openai_embeddings"
    api_type = "oai_embeddings"
    title = "OpenAI Embeddings"
    endpoints = ("/v1/embeddings",)

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return nonchat.embeddings_usage(body), 0

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        return nonchat.openai_inputs(body)


class OpenAIModerations(_OpenAIBeyondChat):
    """Moderations report no usage and OpenAI does not charge for them: recorded at 0."""

    name = "openai_moderations"
    flag = "openai_moderations"
    api_type = "oai_moderations"
    title = "OpenAI Moderations"
    endpoints = ("/v1/moderations",)
    default_model = "omni-moderation-latest"

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return Usage(), 0

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        return nonchat.openai_inputs(body)


class OpenAIImages(_OpenAIBeyondChat):
    """Image generation and edits: GPT Image models report tokens (priced per token),
    DALL·E models none (priced per image, usage/unitprices.py)."""

    name = "openai_images"
    flag = "openai_images"
    api_type = "oai_images"
    title = "OpenAI Images"
    endpoints = ("/v1/images/generations", "/v1/images/edits")
    default_model = "dall-e-2"

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return nonchat.images_usage(body), 0

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        return nonchat.openai_prompt(body)

    def stored_body(
        self, response: dict[str, Any] | None, size: int, content_type: str
    ) -> bytes | None:
        return nonchat.images_stored(response, size, content_type)

    def requested(self, request: dict[str, Any]) -> Units:
        return Units("image", nonchat.images_asked(request), nonchat.image_options(request))

    def units(self, request: dict[str, Any], response: dict[str, Any]) -> Units | None:
        made = nonchat.images_made(response)
        return Units("image", made, nonchat.image_options(request)) if made else None


class OpenAIAudio(nonchat.NotChat, _OpenAIBase):
    """Transcriptions and translations (multipart uploads) and speech (binary answers);
    see gateway/formats/openai_audio.py for what each reports and how it is priced."""

    name = "openai_audio"
    flag = "openai_audio"
    api_type = "oai_audio"
    title = "OpenAI Audio"
    endpoints = ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech")

    def wants_stream(self, body: dict[str, Any]) -> bool:
        """Multipart fields are text: a transcription streams on `stream=true`; speech
        answers stream as audio whatever the body says (its bytes are relayed as they come)."""
        return body.get("stream") in (True, "true", "True")

    def accumulator(self) -> StreamAccumulator:
        return openai_audio.TranscriptStreamAccumulator()

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return openai_audio.usage_from_response(body), 0

    def prompt_text(self, body: dict[str, Any]) -> texts.Prompt:
        """Speech's `input` (the text to say), for hooks; none for an upload."""
        return openai_audio.speech_input(body)

    def requested(self, request: dict[str, Any]) -> Units:
        return openai_audio.requested_units(request)

    def units(self, request: dict[str, Any], response: dict[str, Any]) -> Units | None:
        return openai_audio.answered_units(request, response)


class OpenAIBatches(nonchat.NotChat, _OpenAIBase):
    """Files and batches: objects that belong to their creator (gateway/objects.py)."""

    name = "openai_batches"
    flag = "openai_batches"
    api_type = "oai_batches"
    title = "OpenAI Files and Batches"
    endpoints = ("/v1/files", "/v1/batches")

    def model_of(self, body: dict[str, Any]) -> str | None:
        return None  # routed by the object's owner and provider, never by a model

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return Usage(), 0


OPENAI_CHAT = OpenAIChat()
OPENAI_RESPONSES = OpenAIResponses()
ANTHROPIC_MESSAGES = AnthropicMessages()
OPENAI_EMBEDDINGS = OpenAIEmbeddings()
OPENAI_MODERATIONS = OpenAIModerations()
OPENAI_IMAGES = OpenAIImages()
OPENAI_AUDIO = OpenAIAudio()
OPENAI_BATCHES = OpenAIBatches()

#: every API format, in the order a catalog lists them and picks a provider's cost basis
#: and Test request by (chat-like APIs first, then the cloud APIs, then the APIs beyond chat)
FORMATS: tuple[ApiFormat, ...] = (
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    ANTHROPIC_MESSAGES,
    cloud.GEMINI,
    cloud.VERTEX_GENERATE,
    cloud.VERTEX_RAW_PREDICT,
    cloud.BEDROCK_CONVERSE,
    cloud.BEDROCK_INVOKE,
    OPENAI_EMBEDDINGS,
    OPENAI_IMAGES,
    OPENAI_MODERATIONS,
    cloud.GEMINI_EMBED,
    OPENAI_AUDIO,
    OPENAI_BATCHES,
)

#: gateway path -> what it does; matched exactly, before any framework routing
PATHS: dict[str, Operation] = {
    "/v1/chat/completions": Operation(OPENAI_CHAT),
    "/chat/completions": Operation(OPENAI_CHAT),
    "/v1/responses": Operation(OPENAI_RESPONSES),
    "/v1/messages": Operation(ANTHROPIC_MESSAGES),
    "/v1/messages/count_tokens": Operation(ANTHROPIC_MESSAGES, billable=False, can_stream=False),
    "/v1/embeddings": Operation(OPENAI_EMBEDDINGS, can_stream=False, kind="embedding"),
    "/v1/moderations": Operation(OPENAI_MODERATIONS, can_stream=False, kind="moderation"),
    "/v1/images/generations": Operation(OPENAI_IMAGES, can_stream=False, kind="image"),
    "/v1/images/edits": Operation(OPENAI_IMAGES, can_stream=False, kind="image", upload=True),
    "/v1/audio/transcriptions": Operation(OPENAI_AUDIO, kind="audio", upload=True),
    "/v1/audio/translations": Operation(OPENAI_AUDIO, can_stream=False, kind="audio", upload=True),
    "/v1/audio/speech": Operation(OPENAI_AUDIO, can_stream=False, kind="audio"),
}
#: the calls of `/v1/files` and `/v1/batches` (gateway/objects.py): routed by the object's
#: creator and provider; relayed and recorded, billed only for a batch's results
FILE_CALL = Operation(OPENAI_BATCHES, billable=False, can_stream=False, kind="file")
BATCH_CALL = Operation(OPENAI_BATCHES, billable=False, can_stream=False, kind="batch")
#: `POST /v1/files`: an upload like the audio ones
FILE_UPLOAD = Operation(OPENAI_BATCHES, billable=False, can_stream=False, kind="file", upload=True)
#: `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`, `POST …/cancel`: routed by the
#: response id (telemetry/responses.py), relayed and recorded, never billed
STORED_RESPONSE = Operation(OPENAI_RESPONSES, billable=False, can_stream=False)
