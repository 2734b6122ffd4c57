"""FakeLLM's Google and AWS endpoints: Gemini, Vertex AI (Gemini and Anthropic) and Bedrock.

    POST /v1beta/models/{model}:generateContent | :streamGenerateContent | :countTokens
         | :embedContent | :batchEmbedContents (also /v1/)
    POST /v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent | …
    POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict | …
         (also /v1beta1/, and the project-less /v1/publishers/… form of Vertex Express)
    POST /model/{modelId}/invoke | invoke-with-response-stream | converse | converse-stream

Wire details: `fake_google`, `fake_bedrock`, `fake_anthropic`. With FakeLLM's ``aws_keys``
set, Bedrock requests must carry a valid SigV4 signature by those keys (else the 403
``InvalidSignatureException`` AWS sends); with ``api_key`` set, Google requests need it as
``x-goog-api-key`` or bearer token and Bedrock requests as bearer token (Bedrock API keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from irisgate.cloudauth import sigv4
from irisgate.testing import fake_anthropic, fake_bedrock, fake_google, fake_media
from irisgate.testing.fake_reply import count_words, new_id

if TYPE_CHECKING:
    from irisgate.testing.fake_llm import FakeLLM

GOOGLE_PATHS = (
    "/v1beta/models/{call}",
    "/v1/models/{call}",
    "/{version}/projects/{project}/locations/{location}/publishers/{publisher}/models/{call}",
    "/{version}/publishers/{publisher}/models/{call}",
)
BEDROCK_PATH = "/model/{model_id}/{operation}"


def _split_call(request: web.Request) -> tuple[str, str]:
    model, _, method = request.match_info["call"].partition(":")
    return unquote(model), method


def google_key_ok(fake: FakeLLM, request: web.Request) -> bool:
    key = fake.api_key
    headers = request.headers
    return headers.get("x-goog-api-key") == key or headers.get("Authorization") == f"Bearer {key}"


def bedrock_auth_problem(fake: FakeLLM, request: web.Request, raw: bytes) -> str | None:
    if fake.aws_keys is not None:
        url = f"http://{request.host}{request.raw_path}"
        headers = {k.lower(): v for k, v in request.headers.items()}
        return sigv4.verify(request.method, url, headers, raw, fake.aws_keys)
    if (
        fake.api_key is not None
        and request.headers.get("Authorization") != f"Bearer {fake.api_key}"
    ):
        return "Invalid API Key format: Must start with pre-defined prefix"
    return None


async def google(fake: FakeLLM, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    model, method = _split_call(request)
    if method in ("rawPredict", "streamRawPredict"):
        return await _raw_predict(fake, request, body, model, method == "streamRawPredict")
    if method in ("embedContent", "batchEmbedContents"):
        return await fake_media.gemini_embed(fake, request, body, method)
    if method == "countTokens":
        tokens = fake.prompt_tokens or fake_google.count_prompt_tokens(body)
        return fake._json(request, fake_google.count_tokens(tokens), dialect="google")
    if method not in ("generateContent", "streamGenerateContent"):
        return fake._json(request, fake_google.error_body(404), status=404, dialect="google")
    problem = fake_google.check_request(body, model)
    if problem is not None:
        return fake._json(
            request, fake_google.error_body(400, problem), status=400, dialect="google"
        )
    vertex = "publisher" in request.match_info
    reply = fake._plan(
        {**body, "model": model},
        fake_google.function_tool(body),
        "",
        thinking=fake_google.thinking_wanted(body),
        prompt_tokens=fake_google.count_prompt_tokens(body),
    )
    response_id = new_id("", 22)
    signed = fake_google.signs_calls(body, model)
    if method == "generateContent":
        answer = fake_google.response(reply, response_id, vertex=vertex, signed=signed)
        return fake._json(request, answer, dialect="google")
    chunk_bodies = fake_google.chunks(reply, response_id, vertex=vertex, signed=signed)
    if request.query.get("alt") == "sse":
        return await fake._stream(request, fake_google.sse(chunk_bodies), "google")
    return await fake._stream(
        request, fake_google.json_array(chunk_bodies), "google", content_type="application/json"
    )


async def _raw_predict(
    fake: FakeLLM, request: web.Request, body: dict[str, Any], model: str, stream: bool
) -> web.StreamResponse:
    if not isinstance(body.get("anthropic_version"), str):  # Vertex wants it in the body
        message = "anthropic_version: Field required"
        return fake._json(
            request, fake._error("anthropic", 400, message), status=400, dialect="anthropic"
        )
    problem = fake_anthropic.check_message({**body, "model": model})
    if problem is not None:
        return fake._json(
            request, fake._error("anthropic", 400, problem), status=400, dialect="anthropic"
        )
    thinking = fake_anthropic.thinking_enabled(body)
    reply = fake._plan(
        {**body, "model": model},
        fake_anthropic.message_tool(body),
        "toolu_vrtx_01",
        thinking=thinking,
    )
    message_id = new_id("msg_vrtx_01", 22)
    if stream:
        events = fake_anthropic.message_events(reply, message_id)
        return await fake._stream(request, events, "anthropic")
    return fake._json(request, fake_anthropic.message(reply, message_id), dialect="anthropic")


async def bedrock(fake: FakeLLM, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    model = unquote(request.match_info["model_id"])
    operation = request.match_info["operation"]
    if operation == "invoke" and fake_media.is_embedding_model(model):
        return await fake_media.bedrock_embed(fake, request, body, model)
    mistral = fake_bedrock.vendor(model) == "mistral"
    if operation in ("invoke", "invoke-with-response-stream"):
        problem = (fake_bedrock.check_mistral if mistral else fake_bedrock.check_invoke)(body)
    elif operation in ("converse", "converse-stream"):
        problem = fake_bedrock.check_converse(body)
    else:
        return fake._json(request, b'{"message":"Not Found"}', status=404, dialect="bedrock")
    if problem is not None:
        return fake._json(
            request, fake_bedrock.error(400, problem)[0], status=400, dialect="bedrock"
        )
    if mistral and operation.startswith("invoke"):
        return await _mistral_invoke(fake, request, body, model, operation == "invoke")
    is_invoke = operation.startswith("invoke")
    if is_invoke:
        tool, thinking = fake_anthropic.message_tool(body), False
    else:
        tool, thinking = fake_bedrock.converse_tool(body), fake_bedrock.converse_thinking(body)
    reply = fake._plan({**body, "model": model}, tool, "toolu_bdrk_01", thinking=thinking)
    if operation == "invoke":
        message = fake_anthropic.message(reply, new_id("msg_bdrk_01", 22))
        headers = fake_bedrock.token_headers(reply)
        return fake._json(request, message, dialect="bedrock", headers=headers)
    if operation == "converse":
        headers = fake_bedrock.token_headers(reply)
        body_out = fake_bedrock.converse_body(reply)
        return fake._json(request, body_out, dialect="bedrock", headers=headers)
    events = (
        fake_bedrock.invoke_events(reply, new_id("msg_bdrk_01", 22))
        if is_invoke
        else fake_bedrock.converse_events(reply)
    )
    return await _stream_frames(fake, request, events)


async def _stream_frames(
    fake: FakeLLM, request: web.Request, events: Iterable[bytes]
) -> web.StreamResponse:
    """Frames are rendered before the first is written (base64, CRCs: ~2.5 us each), so they
    go out back to back like the other dialects' cheaper events: rendered between writes,
    they reached a client in ~10 reads instead of ~2, which is not Bedrock's behaviour but
    the fake's (`chunk_delay` is the knob for pacing)."""
    frames = list(events)
    return await fake._stream(request, frames, "bedrock", content_type=fake_bedrock.EVENTSTREAM)


async def _mistral_invoke(
    fake: FakeLLM, request: web.Request, body: dict[str, Any], model: str, plain: bool
) -> web.StreamResponse:
    """Mistral's own InvokeModel shapes: no usage in the body, only in headers / metrics."""
    prompt = count_words(body["prompt"])
    reply = fake._plan({**body, "model": model}, None, "", prompt_tokens=max(prompt, 1))
    if plain:
        headers = fake_bedrock.token_headers(reply, anthropic=False)
        return fake._json(
            request, fake_bedrock.mistral_body(reply), dialect="bedrock", headers=headers
        )
    return await _stream_frames(fake, request, fake_bedrock.mistral_events(reply))
