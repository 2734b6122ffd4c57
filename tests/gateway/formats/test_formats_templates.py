"""Which templated path is which API, model and stream; what goes upstream; error envelopes."""

from __future__ import annotations

import orjson
import pytest

from irisgate.gateway.formats import cloud
from irisgate.gateway.formats.templates import classify
from irisgate.wire.errors import STATUS_OF, GatewayError


@pytest.mark.parametrize(
    ("path", "fmt", "model", "stream", "upstream"),
    [
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "gemini_generate_content",
            "gemini-2.5-flash",
            False,
            "/v1beta/models/gemini-2.5-flash:generateContent",
        ),
        (
            "/v1/models/gemini-2.5-pro:streamGenerateContent",
            "gemini_generate_content",
            "gemini-2.5-pro",
            True,
            "/v1/models/gemini-2.5-pro:streamGenerateContent",
        ),
        (
            "/v1/projects/p1/locations/us-east5/publishers/anthropic/models/claude-x@2025:rawPredict",
            "google_raw_predict",
            "claude-x@2025",
            False,
            "/v1/projects/p1/locations/us-east5/publishers/anthropic/models/claude-x@2025:rawPredict",
        ),
        (
            "/v1beta1/publishers/google/models/gemini-2.5-flash:streamGenerateContent",
            "google_generate_content",
            "gemini-2.5-flash",
            True,
            "/v1beta1/publishers/google/models/gemini-2.5-flash:streamGenerateContent",
        ),
        (
            "/bedrock/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream",
            "bedrock_model_invoke",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            True,
            "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream",
        ),
        (
            "/bedrock/model/amazon.nova-pro-v1%3A0/converse",
            "bedrock_converse",
            "amazon.nova-pro-v1:0",
            False,
            "/model/amazon.nova-pro-v1%3A0/converse",
        ),
    ],
)
def test_classify(path: str, fmt: str, model: str, stream: bool, upstream: str) -> None:
    found = classify(path, b"")
    assert found is not None
    op, target = found
    assert (op.format.name, target.model, target.stream) == (fmt, model, stream)
    assert target.upstream_path(model, None, None) == upstream


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models",
        "/v1beta/models/gemini:predict",
        "/v1/projects/p/locations/r/publishers/google/models/m:predict",
        "/bedrock/model/x/invoke/extra",
        "/bedrock/model/x",
        "/v1/chat/completions",
        "/v1/projects/../locations/r/publishers/google/models/m:generateContent",
        "/v1/projects/p/locations/r/publishers/%2E%2E/models/m:rawPredict",
        "/v1/projects/a%2Fb/locations/r/publishers/google/models/m:generateContent",
    ],
)
def test_other_paths_are_not_templated(path: str) -> None:
    assert classify(path, b"") is None


def test_client_key_never_goes_upstream() -> None:
    found = classify("/v1beta/models/g:streamGenerateContent", b"key=secret&alt=sse")
    assert found is not None and found[1].query == b"alt=sse"
    found = classify("/v1beta/models/g:generateContent", b"key=secret")
    assert found is not None and found[1].query == b""


def test_vertex_placeholders_filled_or_dropped() -> None:
    path = (
        "/v1/projects/_aperture_auto_vertex_project_id_/locations/_aperture_auto_vertex_region_"
        "/publishers/google/models/gemini-2.5-pro:generateContent"
    )
    found = classify(path, b"")
    assert found is not None
    target = found[1]
    assert target.upstream_path("gemini-2.5-pro", "my-proj", "europe-west4") == (
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
        "gemini-2.5-pro:generateContent"
    )
    assert target.upstream_path("gemini-2.5-pro", None, None) == (
        "/v1/publishers/google/models/gemini-2.5-pro:generateContent"
    )


def test_renamed_model_is_escaped_for_its_api() -> None:
    found = classify("/bedrock/model/bedrock%2Fanthropic.claude-v2%3A1/invoke", b"")
    assert found is not None
    target = found[1]
    assert target.model == "bedrock/anthropic.claude-v2:1"
    assert target.upstream_path("anthropic.claude-v2:1", None, None) == (
        "/model/anthropic.claude-v2%3A1/invoke"
    )


@pytest.mark.parametrize("kind", list(STATUS_OF))
def test_every_error_kind_has_a_google_and_an_aws_envelope(kind: str) -> None:
    error = GatewayError(kind, "what went wrong", headers={"Retry-After": "5"})  # type: ignore[arg-type]
    body, extra = cloud.GEMINI.error_body(error)
    assert orjson.loads(body) == {
        "error": {
            "code": STATUS_OF[kind],
            "message": "what went wrong",
            "status": cloud.GOOGLE_STATUS[kind],
        }  # type: ignore[index]
    }
    body, extra = cloud.BEDROCK_CONVERSE.error_body(error)
    assert orjson.loads(body) == {"message": "what went wrong"}
    assert extra["x-amzn-ErrorType"].startswith(cloud.BEDROCK_ERRORS[kind] + ":")  # type: ignore[index]


def test_rate_limit_names() -> None:
    assert cloud.GOOGLE_STATUS["rate_limit"] == "RESOURCE_EXHAUSTED"
    assert cloud.BEDROCK_ERRORS["rate_limit"] == "ThrottlingException"
