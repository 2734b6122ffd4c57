"""The path-templated formats: Gemini (AI Studio), Vertex AI (Gemini and Anthropic) and Bedrock.

These APIs name the model in the URL and stream by method (`:streamGenerateContent`,
`:streamRawPredict`, `/invoke-with-response-stream`, `/converse-stream`), so `model_of` and
`wants_stream` have nothing to read in the body: `templates.classify` supplies both from the
path. What differs per API is data: names, flags, cost basis, the error envelope, and how a
stream is framed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from irisgate.gateway.formats import anthropic_messages, bedrock, chatwire, gemini, nonchat, turns
from irisgate.gateway.formats.base import (
    PROBE_TEXT,
    PROBE_TOKENS,
    Catalogued,
    ChunkFilter,
    StreamAccumulator,
)
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.translate.vertex_gemini import PROJECT as VERTEX_PROJECT
from irisgate.translate.vertex_gemini import REGION as VERTEX_REGION
from irisgate.usage.estimate import Prompt
from irisgate.usage.tokens import Usage
from irisgate.wire.errors import ErrorKind, GatewayError

#: google.rpc.Code names Google APIs put in `error.status`
GOOGLE_STATUS: dict[ErrorKind, str] = {
    "invalid_request": "INVALID_ARGUMENT",
    "authentication": "UNAUTHENTICATED",
    "permission": "PERMISSION_DENIED",
    "not_found": "NOT_FOUND",
    "too_large": "INVALID_ARGUMENT",
    "rate_limit": "RESOURCE_EXHAUSTED",
    "blocked": "PERMISSION_DENIED",
    "upstream": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED",
    "unavailable": "UNAVAILABLE",
    "internal": "INTERNAL",
}
#: Bedrock runtime exception names (the `x-amzn-ErrorType` header, read by the AWS SDKs)
BEDROCK_ERRORS: dict[ErrorKind, str] = {
    "invalid_request": "ValidationException",
    "authentication": "UnrecognizedClientException",
    "permission": "AccessDeniedException",
    "not_found": "ResourceNotFoundException",
    "too_large": "ValidationException",
    "rate_limit": "ThrottlingException",
    "blocked": "AccessDeniedException",
    "upstream": "InternalServerException",
    "timeout": "ModelTimeoutException",
    "unavailable": "ServiceUnavailableException",
    "internal": "InternalServerException",
}
_EVENTSTREAM = "application/vnd.amazon.eventstream"
#: Vertex paths as Aperture's clients send them: placeholders the provider's project and
#: region replace (gateway/formats/base.py `PathTarget`)
_VERTEX_PREFIX = f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_REGION}/publishers"
#: the Anthropic `anthropic_version` values Vertex and Bedrock require in the body
_VERTEX_ANTHROPIC = "vertex-2023-10-16"
_BEDROCK_ANTHROPIC = "bedrock-2023-05-31"


def _is_claude(model: str) -> bool:
    """An Anthropic model on Vertex (`claude-…@date`) or Bedrock (`[region.]anthropic.…`)."""
    return model.startswith("claude") or "anthropic." in model


def _google_segment(model: str) -> str:
    return quote(model, safe="@")


def _messages_probe(version: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": PROBE_TEXT}]
    return {"anthropic_version": version, "max_tokens": PROBE_TOKENS, "messages": messages}


def _contents_probe() -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": PROBE_TEXT}]}],
        "generationConfig": {"maxOutputTokens": PROBE_TOKENS},
    }


class _ModelInPath(Catalogued):
    def model_of(self, body: dict[str, Any]) -> str | None:
        return None

    def wants_stream(self, body: dict[str, Any]) -> bool:
        return False

    def prepare_stream(self, body: dict[str, Any]) -> ChunkFilter | None:
        return None

    def usage_from_headers(self, headers: Mapping[str, str]) -> Usage:
        return Usage()  # Google reports usage in the body only


class _GoogleErrors:
    def error_body(self, error: GatewayError) -> tuple[bytes, dict[str, str]]:
        payload = {
            "error": {
                "code": error.status,
                "message": error.message,
                "status": GOOGLE_STATUS[error.kind],
            }
        }
        return orjson.dumps(payload), {}


class GeminiGenerateContent(_ModelInPath, _GoogleErrors):
    name = "gemini_generate_content"
    flag = "gemini_generate_content"
    api_type = "gemini_generate_content"
    cost_basis = "google"
    title = "Gemini"
    endpoints: tuple[str, ...] = (
        "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent",
        "/v1beta/models/{model}:countTokens",
    )
    #: how the chat app holds a conversation over this API (gateway/formats/chatwire.py)
    chat_adapter: chatwire.ChatAdapter | None = chatwire.GEMINI

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return gemini.usage_from_response(body), gemini.count_tool_calls(body)

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        return turns.gemini_first_turn(body)

    def user_message(self, body: dict[str, Any]) -> str:
        return turns.gemini_user_message(body)

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return turns.gemini_tool_calls(response)

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        return gemini.count_tool_calls(response)

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        return f"/v1beta/models/{_google_segment(model)}:generateContent", _contents_probe()

    def accumulator(self) -> StreamAccumulator:
        return gemini.GenerateContentAccumulator()

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        if "json" not in content_type:
            return None
        return gemini.read_json_array_stream(body)


class GeminiEmbedContent(nonchat.NotChat, _ModelInPath, _GoogleErrors):
    """`:embedContent` and `:batchEmbedContents`. Their answers carry no token count (newer
    models add `usageMetadata`): irisgate counts the texts itself, marked estimated."""

    name = "gemini_embed_content"
    flag = "gemini_embed_content"
    api_type = "gemini_embed_content"
    cost_basis = "google"
    title = "Gemini embedContent"
    endpoints = (
        "/v1beta/models/{model}:embedContent",
        "/v1beta/models/{model}:batchEmbedContents",
    )

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return nonchat.gemini_embed_usage(body), 0

    def prompt_text(self, body: dict[str, Any]) -> Prompt:
        return nonchat.gemini_embed_texts(body)


class VertexGenerateContent(GeminiGenerateContent):
    name = "google_generate_content"
    flag = "google_generate_content"
    api_type = "google_generate_content"
    cost_basis = "vertex"
    title = "Vertex AI generateContent"
    endpoints = (
        "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent",
        "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}"
        ":streamGenerateContent",
        "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:countTokens",
    )

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        if _is_claude(model):  # served by rawPredict
            return None
        path = f"{_VERTEX_PREFIX}/google/models/{_google_segment(model)}:generateContent"
        return path, _contents_probe()

    chat_adapter: chatwire.ChatAdapter | None = chatwire.VERTEX_GEMINI


class VertexRawPredict(_ModelInPath, _GoogleErrors):
    """Anthropic models on Vertex: Messages API bodies, the model in the path."""

    name = "google_raw_predict"
    flag = "google_raw_predict"
    api_type = "google_raw_predict"
    cost_basis = "vertex"
    title = "Vertex AI rawPredict"
    endpoints = (
        "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict",
        "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}"
        ":streamRawPredict",
    )
    chat_adapter: chatwire.ChatAdapter | None = chatwire.VERTEX_ANTHROPIC

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
        if not _is_claude(model):
            return None
        path = f"{_VERTEX_PREFIX}/anthropic/models/{_google_segment(model)}:rawPredict"
        return path, _messages_probe(_VERTEX_ANTHROPIC)

    def accumulator(self) -> StreamAccumulator:
        return anthropic_messages.MessagesStreamAccumulator()

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        return None  # streamRawPredict is SSE


class _BedrockBase(_ModelInPath):
    cost_basis = "bedrock"

    def error_body(self, error: GatewayError) -> tuple[bytes, dict[str, str]]:
        name = BEDROCK_ERRORS[error.kind]
        headers = {
            "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        }
        return orjson.dumps({"message": error.message}), headers

    def usage_from_headers(self, headers: Mapping[str, str]) -> Usage:
        """Bedrock's own counts (`x-amzn-bedrock-input-token-count`, ...): InvokeModel of a
        vendor whose body has no usage (Mistral, Cohere, AI21, Titan) has only these."""
        return bedrock.header_usage(headers)

    def accumulator(self) -> StreamAccumulator:
        # Bedrock never streams SSE; an SSE answer (a misconfigured upstream) is read as
        # Anthropic events, the only vendor format that Bedrock wraps.
        return anthropic_messages.MessagesStreamAccumulator()


class BedrockInvoke(_BedrockBase):
    name = "bedrock_model_invoke"
    flag = "bedrock_model_invoke"
    api_type = "bedrock_model_invoke"
    title = "Bedrock InvokeModel"
    endpoints = (
        "/bedrock/model/{model}/invoke",
        "/bedrock/model/{model}/invoke-with-response-stream",
    )
    #: the body is the model vendor's own: the chat uses Converse instead
    chat_adapter: chatwire.ChatAdapter | None = None

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        """Anthropic bodies (`usage.input_tokens`), else the other vendors' shapes Bedrock
        passes through: Amazon Nova (`usage.inputTokens`), Meta Llama
        (`prompt_token_count`), or Bedrock's own invocation metrics."""
        usage = anthropic_messages.usage_from_response(body)
        if usage.is_empty():
            usage = bedrock.other_vendor_usage(body)
        return usage, self.count_tool_calls(body)

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        return turns.invoke_first_turn(body)

    def user_message(self, body: dict[str, Any]) -> str:
        return turns.invoke_user_message(body)

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return turns.invoke_tool_calls(response)

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        """Anthropic `tool_use` blocks, else Amazon Nova's `toolUse` blocks."""
        return anthropic_messages.count_tool_calls(response) or bedrock.converse_tool_calls(
            response
        )

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        """An Anthropic body: InvokeModel bodies are the vendor's own, so only Bedrock's
        Anthropic models are asked this way (every model answers to Converse)."""
        if not _is_claude(model):
            return None
        return f"/bedrock/model/{quote(model, safe='')}/invoke", _messages_probe(_BEDROCK_ANTHROPIC)

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        if _EVENTSTREAM not in content_type:
            return None
        return bedrock.invoke_stream_result(body)


class BedrockConverse(_BedrockBase):
    name = "bedrock_converse"
    flag = "bedrock_converse"
    api_type = "bedrock_converse"
    title = "Bedrock Converse"
    endpoints = ("/bedrock/model/{model}/converse", "/bedrock/model/{model}/converse-stream")
    chat_adapter: chatwire.ChatAdapter | None = chatwire.CONVERSE

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return bedrock.converse_usage(body.get("usage")), bedrock.converse_tool_calls(body)

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        return turns.messages_first_turn(body)

    def user_message(self, body: dict[str, Any]) -> str:
        return turns.messages_user_message(body)

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        return turns.converse_tool_calls(response)

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        return bedrock.converse_tool_calls(response)

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        body = {
            "messages": [{"role": "user", "content": [{"text": PROBE_TEXT}]}],
            "inferenceConfig": {"maxTokens": PROBE_TOKENS},
        }
        return f"/bedrock/model/{quote(model, safe='')}/converse", body

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        if _EVENTSTREAM not in content_type:
            return None
        return bedrock.converse_stream_result(body)


GEMINI = GeminiGenerateContent()
GEMINI_EMBED = GeminiEmbedContent()
VERTEX_GENERATE = VertexGenerateContent()
VERTEX_RAW_PREDICT = VertexRawPredict()
BEDROCK_INVOKE = BedrockInvoke()
BEDROCK_CONVERSE = BedrockConverse()
