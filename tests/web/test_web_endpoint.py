"""Which endpoint a request is, decided from its method and path alone (sans-io). Through a
running irisgate: tests/e2e/test_e2e_endpoints.py."""

from __future__ import annotations

from typing import Any

import pytest

from irisgate.web.endpoint import SCOPE_KEY, endpoint_of

GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
VERTEX = "/v1/projects/p/locations/us/publishers/anthropic/models/claude@1:rawPredict"
BEDROCK = "/bedrock/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse-stream"


def scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode()}


@pytest.mark.parametrize(
    ("method", "path", "kind", "api", "served"),
    [
        ("POST", "/v1/chat/completions", "llm", "openai_chat", True),
        ("POST", "/chat/completions", "llm", "openai_chat", True),
        ("POST", "/v1/responses", "llm", "openai_responses", True),
        ("POST", "/v1/messages", "llm", "anthropic_messages", True),
        ("POST", "/v1/messages/count_tokens", "llm", "anthropic_messages", True),
        ("POST", GEMINI, "llm", "gemini_generate_content", True),
        ("POST", VERTEX, "llm", "google_raw_predict", True),
        ("POST", BEDROCK, "llm", "bedrock_converse", True),
        ("GET", "/v1/responses/resp_1", "llm", "openai_responses", True),
        ("POST", "/v1/responses/resp_1/cancel", "llm", "openai_responses", True),
        # in an API's space, but none of its operations
        ("GET", "/v1/chat/completions", "llm", "openai_chat", False),
        ("PUT", "/v1/responses/resp_1", "llm", "openai_responses", False),
        ("POST", "/v1/embeddings", "llm", "openai_embeddings", True),
        ("POST", "/v1/images/edits", "llm", "openai_images", True),
        ("POST", "/v1/fine_tuning/jobs", "llm", "openai_chat", False),
        ("POST", "/v1", "llm", "openai_chat", False),
        ("POST", "/v1/messages/batches", "llm", "anthropic_messages", False),
        ("GET", GEMINI, "llm", "gemini_generate_content", False),
        ("POST", "/v1beta/models/m:embedContent", "llm", "gemini_embed_content", True),
        ("POST", "/v1/models/m:batchEmbedContents", "llm", "gemini_embed_content", True),
        ("POST", "/v1beta/models/m:predict", "llm", "gemini_generate_content", False),
        ("POST", "/bedrock/model/m/count-tokens", "llm", "bedrock_converse", False),
        # irisgate's own
        ("GET", "/v1/models", "api", "openai_chat", False),
        ("GET", "/api/usage/summary", "api", None, False),
        ("GET", "/aperture/config", "api", None, False),
        ("GET", "/v1/mcp", "mcp", None, False),
        ("POST", "/v1/connectors/jira/rest/api/3/issue", "connector", None, False),
        ("GET", "/ui/dashboard", "page", None, False),
        ("GET", "/chat/", "page", None, False),
        ("GET", "/aperture/auth/jira/callback", "page", None, False),
        ("GET", "/healthz", "health", None, False),
        ("GET", "/metrics", "health", None, False),
        ("GET", "/", "unknown", None, False),
        ("GET", "/v2/chat/completions", "unknown", None, False),
        ("GET", "/bedrockish", "unknown", None, False),
    ],
)
def test_each_path_is_one_endpoint(
    method: str, path: str, kind: str, api: str | None, served: bool
) -> None:
    endpoint = endpoint_of(scope(method, path))
    assert endpoint.kind == kind
    assert (endpoint.format.name if endpoint.format else None) == api
    assert (endpoint.op is not None) == served


def test_the_endpoint_is_decided_once_per_request() -> None:
    request = scope("POST", GEMINI)
    first = endpoint_of(request)
    assert request[SCOPE_KEY] is first
    request["path"] = request["raw_path"] = "/api/whoami"  # nothing decides again
    assert endpoint_of(request) is first
    assert first.target is not None and first.target.model == "gemini-2.5-flash"


def test_a_served_path_with_another_method_names_the_one_it_takes() -> None:
    assert endpoint_of(scope("GET", "/v1/messages")).allowed == ("POST",)
    assert endpoint_of(scope("GET", BEDROCK)).allowed == ("POST",)
    assert endpoint_of(scope("GET", "/v1/embeddings")).allowed == ("POST",)
    assert endpoint_of(scope("GET", "/v1/fine_tuning/jobs")).allowed == ()


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/v1/embeddings", "application/json", b'"type":"permission_error"'),
        ("/v1/messages/batches", "application/json", b'"type":"error"'),
        (GEMINI, "application/json", b'"status":"PERMISSION_DENIED"'),
        ("/v1/mcp", "application/json", b'"jsonrpc":"2.0"'),
        ("/api/config", "application/json", b'{"error":"no"}'),
        ("/ui/dashboard", "text/plain; charset=utf-8", b"no"),
    ],
)
def test_errors_take_the_endpoints_envelope(path: str, content_type: str, marker: bytes) -> None:
    body, headers = endpoint_of(scope("POST", path)).error(403, "permission", "no")
    assert headers["content-type"] == content_type
    assert marker in body
