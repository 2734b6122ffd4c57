"""Upstream failures on the Google and AWS APIs reach the client in that API's own envelope:
502 for an unreachable upstream (or a token endpoint that will not mint), 504 for one that
does not answer in time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest
from cloud_setup import BEDROCK_KEY, bedrock_client, cloud_config, gemini_client, vertex_client
from conftest import wait_for_record
from google.genai import errors as genai_errors

from irisgate.testing import FakeGoogleOAuth, FakeLLM
from irisgate.testing.server import IrisgateServer, free_port

CONVERSE = [{"role": "user", "content": [{"text": "anyone there"}]}]


@pytest.fixture(scope="module")
def fragile_gw(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """1 s upstream read timeout; providers on a closed port; a service account whose token
    endpoint is that closed port too."""
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeGoogleOAuth() as oauth:
        stale = json.loads(oauth.service_account("stale-proj"))
        stale["token_uri"] = dead + "/token"
        extra = {
            "dead-gemini": {
                "baseurl": dead,
                "apikey": "k",
                "authorization": "x-goog-api-key",
                "models": ["gemini-dead"],
                "compatibility": {"gemini_generate_content": True},
            },
            "dead-bedrock": {
                "baseurl": dead,
                "apikey": "k",
                "models": ["anthropic.claude-dead-v1:0"],
                "compatibility": {"bedrock_converse": True},
            },
            "no-token": {
                "baseurl": fake_llm.base_url,
                "apikey": "keyfile::" + json.dumps(stale),
                "models": ["gemini-no-token"],
                "compatibility": {"google_generate_content": True},
            },
        }
        config = cloud_config(
            fake_llm.base_url, oauth.service_account(), oauth.service_account(), **extra
        )
        server = IrisgateServer(
            config,
            data_dir=Path(tmp_path_factory.mktemp("fragile")),
            identity="dev",
            env={"IRISGATE_UPSTREAM_READ_TIMEOUT": "1"},
        )
        with server:
            yield server


def test_unreachable_gemini_upstream_is_502(fragile_gw: IrisgateServer) -> None:
    client = gemini_client(fragile_gw)
    with pytest.raises(genai_errors.ServerError) as caught:
        client.models.generate_content(model="gemini-dead", contents="hi")
    assert caught.value.code == 502 and caught.value.status == "UNAVAILABLE"
    assert "upstream unreachable" in str(caught.value.message)


def test_token_endpoint_down_is_502_without_secrets(fragile_gw: IrisgateServer) -> None:
    client = vertex_client(fragile_gw)
    with pytest.raises(genai_errors.ServerError) as caught:
        client.models.generate_content(model="gemini-no-token", contents="hi")
    assert caught.value.code == 502
    message = str(caught.value.message)
    assert "token endpoint" in message and "PRIVATE KEY" not in message
    assert caught.value.response is not None
    record = wait_for_record(fragile_gw, caught.value.response.headers["x-irisgate-request-id"])
    assert record["status"] == 502 and record["provider"] == "no-token"


def test_unreachable_bedrock_upstream_is_502(fragile_gw: IrisgateServer) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        bedrock_client(fragile_gw).converse(modelId="anthropic.claude-dead-v1:0", messages=CONVERSE)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert error["Error"]["Code"] == "InternalServerException"
    assert "upstream unreachable" in error["Error"]["Message"]


def test_hanging_upstream_is_504_in_google_and_aws_shape(
    fragile_gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    fake_llm.hang = True
    client = gemini_client(fragile_gw)
    with pytest.raises(genai_errors.ServerError) as google:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert google.value.code == 504 and google.value.status == "DEADLINE_EXCEEDED"
    fake_llm.api_key = BEDROCK_KEY
    with pytest.raises(botocore.exceptions.ClientError) as aws:
        bedrock_client(fragile_gw).converse(
            modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0", messages=CONVERSE
        )
    fake_llm.hang = False
    assert aws.value.response["ResponseMetadata"]["HTTPStatusCode"] == 504
    assert aws.value.response["Error"]["Code"] == "ModelTimeoutException"
