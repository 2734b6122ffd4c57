"""End-to-end: every request is one endpoint, and its errors speak that endpoint's language.

Paths in an LLM API's space that irisgate does not serve answer 404 (405 for a served path
called with another method) in that API's error envelope, so each official SDK raises its own
"not found" error naming the path; a cross-site refusal on such a path answers in the same
envelope. Plain text is left to paths outside every API; `/` answers GET and HEAD.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import boto3
import botocore.config
import botocore.exceptions
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
EVIL = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}


def endpoints_config(upstream: str) -> str:
    providers = {
        "openai": {
            "baseurl": upstream,
            "apikey": "sk-upstream-openai-secret",
            "models": ["gpt-4o-mini"],
            "compatibility": {"openai_chat": True, "openai_responses": True},
        },
        "anthropic": {
            "baseurl": upstream,
            "apikey": "sk-ant-upstream-secret",
            "authorization": "x-api-key",
            "models": ["claude-haiku-4-5"],
            "compatibility": {"anthropic_messages": True},
        },
        "gemini": {
            "baseurl": upstream,
            "apikey": "AIza-upstream-gemini-secret",
            "authorization": "x-goog-api-key",
            "models": ["gemini-2.5-flash"],
            "compatibility": {"gemini_generate_content": True},
        },
        "bedrock": {
            "baseurl": upstream,
            "apikey": "ABSK-upstream-bedrock-api-key",
            "models": [BEDROCK_MODEL],
            "compatibility": {"bedrock_model_invoke": True, "bedrock_converse": True},
        },
    }
    grant = {"src": ["dev@localhost"], "app": {"tailscale.com/cap/aperture": [{"role": "admin"}]}}
    grant["app"]["tailscale.com/cap/aperture"].append({"models": "**"})  # type: ignore[index]
    return json.dumps({"providers": providers, "grants": [grant]}, indent=2)


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        endpoints_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("endpoints"),
        identity="dev",
    )
    with server:
        yield server


@pytest.fixture
def http(gw: IrisgateServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=gw.url, timeout=30) as client:
        yield client


def _openai(resp: httpx2.Response, kind: str) -> str:
    error = resp.json()["error"]
    assert error["type"] == kind
    return str(error["message"])


def _anthropic(resp: httpx2.Response, kind: str) -> str:
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    return str(body["error"]["message"])


def _google(resp: httpx2.Response, kind: str) -> str:
    error = resp.json()["error"]
    assert (error["status"], error["code"]) == (kind, resp.status_code)
    return str(error["message"])


def _bedrock(resp: httpx2.Response, kind: str) -> str:
    assert resp.headers["x-amzn-errortype"].startswith(kind + ":")
    return str(resp.json()["message"])


Reader = Callable[[httpx2.Response, str], str]
#: an unserved path of each API, how its envelope reads, its not-found and refusal kinds
UNSERVED: dict[str, tuple[str, Reader, str, str]] = {
    "openai": ("/v1/fine_tuning/jobs", _openai, "invalid_request_error", "permission_error"),
    "openai, no version": ("/v1", _openai, "invalid_request_error", "permission_error"),
    "anthropic": ("/v1/messages/batches", _anthropic, "not_found_error", "permission_error"),
    "gemini": (
        "/v1beta/models/gemini-2.5-flash:predict",
        _google,
        "NOT_FOUND",
        "PERMISSION_DENIED",
    ),
    "vertex": (
        "/v1/projects/p/locations/us/publishers/google/models/m:predict",
        _google,
        "NOT_FOUND",
        "PERMISSION_DENIED",
    ),
    "bedrock": (
        f"/bedrock/model/{BEDROCK_MODEL}/count-tokens",
        _bedrock,
        "ResourceNotFoundException",
        "AccessDeniedException",
    ),
}


@pytest.mark.parametrize("api", list(UNSERVED))
def test_unserved_paths_answer_404_in_their_apis_envelope(
    http: httpx2.Client, fake_llm: FakeLLM, api: str
) -> None:
    path, read, not_found, _ = UNSERVED[api]
    for method in ("POST", "GET", "DELETE"):
        resp = http.request(method, path, json={"model": "gpt-4o-mini"})
        assert resp.status_code == 404, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert read(resp, not_found) == f"no such endpoint: {method} {path}"
    assert fake_llm.requests == []


@pytest.mark.parametrize("api", list(UNSERVED))
def test_cross_site_refusals_on_unserved_paths_use_the_same_envelope(
    http: httpx2.Client, fake_llm: FakeLLM, api: str
) -> None:
    path, read, _, denied = UNSERVED[api]
    resp = http.post(path, content=b"{}", headers={**EVIL, "content-type": "text/plain"})
    assert resp.status_code == 403, resp.text
    assert read(resp, denied).startswith("cross-site request refused: ")
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("path", "read", "kind"),
    [
        ("/v1/chat/completions", _openai, "invalid_request_error"),
        ("/v1/responses", _openai, "invalid_request_error"),
        ("/v1/messages", _anthropic, "invalid_request_error"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", _google, "INVALID_ARGUMENT"),
        (f"/bedrock/model/{BEDROCK_MODEL}/converse", _bedrock, "ValidationException"),
    ],
)
def test_served_paths_called_with_another_method_answer_405(
    http: httpx2.Client, path: str, read: Reader, kind: str
) -> None:
    resp = http.get(path)
    assert resp.status_code == 405, resp.text
    assert resp.headers["allow"] == "POST"
    assert read(resp, kind) == f"GET is not allowed on {path}; allowed: POST"


def test_v1_models_speaks_openai_for_a_wrong_method(http: httpx2.Client) -> None:
    resp = http.post("/v1/models", json={})
    assert resp.status_code == 405, resp.text
    assert "GET" in resp.headers["allow"]
    assert _openai(resp, "invalid_request_error").startswith("POST is not allowed on /v1/models")


def test_a_long_unknown_path_is_quoted_back_shortened(http: httpx2.Client) -> None:
    resp = http.post("/v1/" + "x" * 5000, json={})
    assert resp.status_code == 404
    message = _openai(resp, "invalid_request_error")
    assert message.endswith("x…") and len(message) < 300


def test_paths_outside_the_apis_stay_plain_text(http: httpx2.Client) -> None:
    for path in ("/nowhere", "/v2/chat/completions", "/bedrockish"):
        resp = http.get(path)
        assert (resp.status_code, resp.text) == (404, "Not Found"), path
        assert resp.headers["content-type"].startswith("text/plain")


def test_the_root_answers_get_and_head(http: httpx2.Client) -> None:
    get, head = http.get("/"), http.head("/")
    for resp in (get, head):
        assert resp.status_code == 307
        assert resp.headers["location"] == "/ui/dashboard"
    assert head.content == b""


def _openai_sdk(gw: IrisgateServer, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1", api_key="client-key", max_retries=0, default_headers=headers
    )


def _anthropic_sdk(gw: IrisgateServer, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.url, api_key="client-key", max_retries=0, default_headers=headers
    )


def _gemini_sdk(gw: IrisgateServer, **headers: str) -> genai.Client:
    options = genai_types.HttpOptions(base_url=gw.url, api_version="v1beta", headers=headers)
    return genai.Client(api_key="client-key", http_options=options)


def _bedrock_sdk(gw: IrisgateServer, **headers: str) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=gw.url + "/bedrock",
        aws_access_key_id="client-placeholder",
        aws_secret_access_key="client-placeholder",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )

    def add_headers(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    client.meta.events.register("before-sign.bedrock-runtime.*", add_headers)
    return client


def test_sdks_raise_not_found_naming_the_path(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    with pytest.raises(openai.NotFoundError) as oai:
        _openai_sdk(gw).fine_tuning.jobs.list()
    assert oai.value.body == {  # the `error` object, parsed by the SDK
        "message": "no such endpoint: GET /v1/fine_tuning/jobs",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(anthropic.NotFoundError) as ant:
        _anthropic_sdk(gw).messages.batches.list()
    assert ant.value.body["error"]["message"] == "no such endpoint: GET /v1/messages/batches"  # type: ignore[index]
    gemini = _gemini_sdk(gw)  # kept: the client closes its connections when collected
    with pytest.raises(genai_errors.ClientError) as gem:
        gemini.models.get(model="gemini-2.5-flash")
    assert (gem.value.code, gem.value.status) == (404, "NOT_FOUND")
    assert gem.value.message is not None
    assert "GET /v1beta/models/gemini-2.5-flash" in gem.value.message
    with pytest.raises(botocore.exceptions.ClientError) as aws:
        _bedrock_sdk(gw).count_tokens(
            modelId=BEDROCK_MODEL,
            input={"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}},
        )
    error = aws.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert f"/bedrock/model/{BEDROCK_MODEL}/count-tokens" in error["Error"]["Message"]
    assert fake_llm.requests == []


def test_sdks_parse_cross_site_refusals_in_their_envelope(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """A browser page's forged call, served path or not, is refused in the SDK's language."""
    user = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.PermissionDeniedError) as oai:
        _openai_sdk(gw, **EVIL).chat.completions.create(model="gpt-4o-mini", messages=user)  # type: ignore[arg-type]
    assert oai.value.body["message"].startswith("cross-site request refused: ")  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError) as unserved:
        _openai_sdk(gw, **EVIL).fine_tuning.jobs.create(model="gpt-4o-mini", training_file="f")
    assert unserved.value.body["message"].startswith("cross-site request refused: ")  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError) as ant:
        _anthropic_sdk(gw, **EVIL).messages.create(
            model="claude-haiku-4-5",
            max_tokens=16,
            messages=user,  # type: ignore[arg-type]
        )
    assert ant.value.body["error"]["message"].startswith("cross-site request refused: ")  # type: ignore[index]
    gemini = _gemini_sdk(gw, **EVIL)  # kept: the client closes its connections when collected
    with pytest.raises(genai_errors.ClientError) as gem:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (gem.value.code, gem.value.status) == (403, "PERMISSION_DENIED")
    assert (gem.value.message or "").startswith("cross-site request refused: ")
    with pytest.raises(botocore.exceptions.ClientError) as aws:
        _bedrock_sdk(gw, **EVIL).converse(
            modelId=BEDROCK_MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}]
        )
    assert aws.value.response["Error"]["Code"] == "AccessDeniedException"
    assert aws.value.response["Error"]["Message"].startswith("cross-site request refused: ")
    assert fake_llm.requests == []
