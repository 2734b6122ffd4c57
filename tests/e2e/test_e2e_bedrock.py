"""Amazon Bedrock end to end through boto3's `bedrock-runtime` client pointed at irisgate:
InvokeModel, InvokeModelWithResponseStream, Converse and ConverseStream, with a Bedrock API
key (bearer) and with SigV4 signing from AWS keys. boto3 checks every event stream frame's
CRCs itself, so intact streams prove the bytes passed through unchanged."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from cloud_setup import (
    AWS_ACCESS_KEY,
    AWS_SECRET,
    AWS_SESSION,
    BEDROCK_HAIKU,
    BEDROCK_KEY,
    BEDROCK_MISTRAL,
    BEDROCK_SONNET,
    EXPECTED_TEXT,
    bedrock_client,
    cloud_config,
    nanodollars,
)
from conftest import wait_for_record

from irisgate.config.cloudkeys import AwsKeys
from irisgate.testing import FakeGoogleOAuth, FakeLLM
from irisgate.testing.server import IrisgateServer

SIGNED = AwsKeys(AWS_ACCESS_KEY, AWS_SECRET, AWS_SESSION, "eu-west-1")
CONVERSE = [{"role": "user", "content": [{"text": "hello bedrock friend"}]}]


@pytest.fixture(scope="module")
def bedrock_gw(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    with FakeGoogleOAuth() as oauth:
        config = cloud_config(fake_llm.base_url, oauth.service_account(), oauth.service_account())
        server = IrisgateServer(
            config, data_dir=Path(tmp_path_factory.mktemp("gw")), identity="dev"
        )
        with server:
            yield server


def _invoke_body(text: str = "hello there claude") -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 200,
            "messages": [{"role": "user", "content": text}],
        }
    )


def _mistral_body() -> str:
    return json.dumps({"prompt": "<s>[INST] bonjour le monde [/INST]", "max_tokens": 200})


def _request_id(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["HTTPHeaders"]["x-irisgate-request-id"])


def test_invoke_model_with_api_key(bedrock_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    fake_llm.api_key = BEDROCK_KEY
    response = bedrock_client(bedrock_gw).invoke_model(modelId=BEDROCK_HAIKU, body=_invoke_body())
    message = json.loads(response["body"].read())
    assert message["content"][0]["text"] == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.path == f"/model/{BEDROCK_HAIKU}/invoke", "the /bedrock prefix is stripped"
    assert upstream.headers["authorization"] == f"Bearer {BEDROCK_KEY}"
    assert not any(h.lower().startswith("x-amz-") for h in upstream.headers), (
        "the client's own SigV4 headers do not pass"
    )
    record = wait_for_record(bedrock_gw, _request_id(response))
    assert record["api_format"] == "bedrock_model_invoke" and record["provider"] == "bedrock"
    assert (record["input_tokens"], record["output_tokens"]) == (3, 20)
    assert record["cost_basis"] == f"bedrock-us/{BEDROCK_HAIKU}"
    expected = nanodollars("aws", BEDROCK_HAIKU, input_tokens=3, output_tokens=20)
    assert record["cost_nanodollars"] == expected


def test_invoke_model_usage_from_bedrock_headers(
    bedrock_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """Mistral's InvokeModel body has no usage: the tokens come from Bedrock's headers."""
    fake_llm.api_key = BEDROCK_KEY
    client = bedrock_client(bedrock_gw)
    response = client.invoke_model(modelId=BEDROCK_MISTRAL, body=_mistral_body())
    body = json.loads(response["body"].read())
    assert body == {"outputs": [{"text": EXPECTED_TEXT, "stop_reason": "stop"}]}
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "5"
    assert headers["x-amzn-bedrock-output-token-count"] == "20"
    record = wait_for_record(bedrock_gw, _request_id(response))
    assert (record["input_tokens"], record["output_tokens"]) == (5, 20)
    assert record["cost_basis"] == f"bedrock-us/{BEDROCK_MISTRAL}"
    expected = nanodollars("aws", BEDROCK_MISTRAL, input_tokens=5, output_tokens=20)
    assert expected > 0 and record["cost_nanodollars"] == expected
    assert json.loads(record["response_body"]) == body

    unknown = client.invoke_model(modelId="mistral.mistral-unknown-9-v1:0", body=_mistral_body())
    assert json.loads(unknown["body"].read())["outputs"][0]["text"] == EXPECTED_TEXT
    record = wait_for_record(bedrock_gw, _request_id(unknown))
    assert (record["input_tokens"], record["output_tokens"]) == (5, 20)
    assert record["cost_nanodollars"] is None and record["cost_basis"] in ("", None)


def test_invoke_stream_of_another_vendor(bedrock_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    """A Mistral stream: usage from the invocation metrics of its last chunk, the pieces
    joined in the capture."""
    fake_llm.api_key = BEDROCK_KEY
    response = bedrock_client(bedrock_gw).invoke_model_with_response_stream(
        modelId=BEDROCK_MISTRAL, body=_mistral_body()
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert "".join(c["outputs"][0]["text"] for c in chunks) == EXPECTED_TEXT
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 20
    record = wait_for_record(bedrock_gw, _request_id(response))
    assert record["stream"] is True
    assert (record["input_tokens"], record["output_tokens"]) == (5, 20)
    assert record["cost_nanodollars"] == nanodollars(
        "aws", BEDROCK_MISTRAL, input_tokens=5, output_tokens=20
    )
    stored = json.loads(record["response_body"])
    assert stored["outputs"] == [{"text": EXPECTED_TEXT, "stop_reason": "stop"}]


def test_invoke_stream_decoded_on_the_side(bedrock_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    fake_llm.api_key = BEDROCK_KEY
    response = bedrock_client(bedrock_gw).invoke_model_with_response_stream(
        modelId=BEDROCK_HAIKU, body=_invoke_body("stream a little")
    )
    events = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == EXPECTED_TEXT
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 20
    assert fake_llm.last_request.path == f"/model/{BEDROCK_HAIKU}/invoke-with-response-stream"
    record = wait_for_record(bedrock_gw, _request_id(response))
    assert record["stream"] is True
    assert (record["input_tokens"], record["output_tokens"]) == (3, 20)
    stored = json.loads(record["response_body"])
    assert stored["content"][0]["text"] == EXPECTED_TEXT
    assert record["cost_nanodollars"] == nanodollars(
        "aws", BEDROCK_HAIKU, input_tokens=3, output_tokens=20
    )


def test_converse_and_converse_stream(bedrock_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    fake_llm.api_key = BEDROCK_KEY
    fake_llm.cached_tokens = 6
    client = bedrock_client(bedrock_gw)
    answer = client.converse(modelId=BEDROCK_HAIKU, messages=CONVERSE)
    assert answer["output"]["message"]["content"][0]["text"] == EXPECTED_TEXT
    assert fake_llm.last_request.path == f"/model/{BEDROCK_HAIKU}/converse"
    record = wait_for_record(bedrock_gw, _request_id(answer))
    assert record["api_format"] == "bedrock_converse"
    assert record["input_tokens"] == 3 + 6 and record["cache_read_tokens"] == 6
    assert record["output_tokens"] == 20

    streamed = client.converse_stream(modelId=BEDROCK_HAIKU, messages=CONVERSE)
    events = list(streamed["stream"])
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == EXPECTED_TEXT
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 20
    record = wait_for_record(bedrock_gw, _request_id(streamed))
    assert record["stream"] is True
    assert record["input_tokens"] == 9 and record["output_tokens"] == 20
    expected = nanodollars(
        "aws", BEDROCK_HAIKU, input_tokens=9, cache_read_tokens=6, output_tokens=20
    )
    assert record["cost_nanodollars"] == expected
    stored = json.loads(record["response_body"])
    assert stored["output"]["message"]["content"][0]["text"] == EXPECTED_TEXT


def test_sigv4_signed_upstream(bedrock_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    """The fake recomputes the signature over what it received: path, headers and body."""
    fake_llm.aws_keys = SIGNED
    client = bedrock_client(bedrock_gw)
    answer = client.converse(modelId=BEDROCK_SONNET, messages=CONVERSE)
    assert answer["output"]["message"]["content"][0]["text"] == EXPECTED_TEXT
    upstream = fake_llm.last_request
    assert upstream.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/"
    )
    assert "/eu-west-1/bedrock/aws4_request" in upstream.headers["authorization"]
    assert upstream.headers["x-amz-security-token"] == AWS_SESSION
    streamed = client.invoke_model_with_response_stream(
        modelId=BEDROCK_SONNET, body=_invoke_body("signed stream")
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    assert chunks[-1]["type"] == "message_stop"
    record = wait_for_record(bedrock_gw, _request_id(streamed))
    assert record["provider"] == "bedrock-signed"
    assert record["request_headers"]["authorization"] == "[redacted]"
    assert record["request_headers"]["x-amz-security-token"] == "[redacted]"
    assert record["cost_basis"] == f"bedrock-eu/{BEDROCK_SONNET}"
    assert record["output_tokens"] == 20


def test_wrong_signing_keys_are_refused_upstream(
    bedrock_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.aws_keys = AwsKeys(AWS_ACCESS_KEY, "another-secret", AWS_SESSION, "eu-west-1")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        bedrock_client(bedrock_gw).converse(modelId=BEDROCK_SONNET, messages=CONVERSE)
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_bedrock_errors_in_aws_shape(bedrock_gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    client = bedrock_client(bedrock_gw)
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        client.converse(modelId="anthropic.claude-nowhere-v1:0", messages=CONVERSE)
    error = missing.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "not served by any provider" in error["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        client.converse(modelId="anthropic.claude-secret-v1:0", messages=CONVERSE)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    fake_llm.fail_next(429, headers={"Retry-After": "0"})  # 0: no rest (failover)
    with pytest.raises(botocore.exceptions.ClientError) as throttled:
        client.converse(modelId=BEDROCK_HAIKU, messages=CONVERSE)
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "0"
    with pytest.raises(botocore.exceptions.ClientError) as invalid:
        client.invoke_model(modelId=BEDROCK_HAIKU, body=b"[1, 2]")
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert "must be a JSON object" in invalid.value.response["Error"]["Message"]


def test_unpriced_bedrock_model_is_not_guessed(
    bedrock_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.api_key = BEDROCK_KEY
    response = bedrock_client(bedrock_gw).invoke_model(
        modelId="us.anthropic.claude-unknown-9-v1:0", body=_invoke_body()
    )
    assert base64.b64encode(response["body"].read())
    record = wait_for_record(bedrock_gw, _request_id(response))
    assert record["output_tokens"] == 20
    assert record["cost_nanodollars"] is None and record["cost_basis"] in ("", None)
