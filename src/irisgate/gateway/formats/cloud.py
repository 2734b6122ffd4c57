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

import orjson

from irisgate.gateway.formats import anthropic_messages, bedrock, gemini
from irisgate.gateway.formats.base import ChunkFilter, StreamAccumulator
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage
from irisgate.wire.errors import ErrorKind, GatewayError

#: google.rpc.Code names Google APIs put in `error.status`
GOOGLE_STATUS: dict[ErrorKind, str] = {
    "invalid_request": "INVALID_ARGUMENT",
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


class _ModelInPath:
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

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return gemini.usage_from_response(body), gemini.count_tool_calls(body)

    def accumulator(self) -> StreamAccumulator:
        return gemini.GenerateContentAccumulator()

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        if "json" not in content_type:
            return None
        return gemini.read_json_array_stream(body)


class VertexGenerateContent(GeminiGenerateContent):
    name = "google_generate_content"
    flag = "google_generate_content"
    api_type = "google_generate_content"
    cost_basis = "vertex"
    title = "Vertex AI generateContent"


class VertexRawPredict(_ModelInPath, _GoogleErrors):
    """Anthropic models on Vertex: Messages API bodies, the model in the path."""

    name = "google_raw_predict"
    flag = "google_raw_predict"
    api_type = "google_raw_predict"
    cost_basis = "vertex"
    title = "Vertex AI rawPredict"

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return (
            anthropic_messages.usage_from_response(body),
            anthropic_messages.count_tool_calls(body),
        )

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

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        """Anthropic bodies (`usage.input_tokens`), else the other vendors' shapes Bedrock
        passes through: Amazon Nova (`usage.inputTokens`), Meta Llama
        (`prompt_token_count`), or Bedrock's own invocation metrics."""
        usage = anthropic_messages.usage_from_response(body)
        if usage.is_empty():
            usage = bedrock.other_vendor_usage(body)
        return usage, anthropic_messages.count_tool_calls(body)

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        if _EVENTSTREAM not in content_type:
            return None
        return bedrock.invoke_stream_result(body)


class BedrockConverse(_BedrockBase):
    name = "bedrock_converse"
    flag = "bedrock_converse"
    api_type = "bedrock_converse"
    title = "Bedrock Converse"

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        return bedrock.converse_usage(body.get("usage")), bedrock.converse_tool_calls(body)

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        if _EVENTSTREAM not in content_type:
            return None
        return bedrock.converse_stream_result(body)


GEMINI = GeminiGenerateContent()
VERTEX_GENERATE = VertexGenerateContent()
VERTEX_RAW_PREDICT = VertexRawPredict()
BEDROCK_INVOKE = BedrockInvoke()
BEDROCK_CONVERSE = BedrockConverse()
