"""Cloud credentials in `apikey` are checked when the config is: a malformed key file or AWS
key set is a warning naming what is wrong (never echoing the secret) and takes the provider
out of routing, the way an unset `env:` key does, so an Aperture example config still loads."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from irisgate.config.check import check_text
from irisgate.config.cloudkeys import aws_region, vertex_region
from irisgate.config.schema import build_config
from irisgate.testing import FakeGoogleOAuth


def provider_config(apikey: str, baseurl: str = "https://aiplatform.googleapis.com") -> str:
    provider = {
        "baseurl": baseurl,
        "apikey": apikey,
        "models": ["m"],
        "compatibility": {"google_generate_content": True},
    }
    return json.dumps({"providers": {"p": provider}})


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    """The problems reported (as warnings) about the provider's key."""
    issues = check_text(text, env or {})
    assert not [i for i in issues if i.severity == "error"]
    return [i.message for i in issues if i.path == "providers.p.apikey"]


def test_bad_key_takes_the_provider_out_of_routing() -> None:
    config, warnings = build_config(provider_config("keyfile::{...service account json...}"), {})
    assert config.providers["p"].unavailable_reason == "keyfile:: service account is not valid JSON"
    assert not config.providers["p"].enabled
    assert [w.path for w in warnings] == ["providers.p.apikey"]


@pytest.fixture(scope="module")
def keyfile() -> Iterator[str]:
    with FakeGoogleOAuth() as oauth:
        yield oauth.service_account("proj")


def test_valid_keyfile_and_env_reference(keyfile: str) -> None:
    assert errors_of(provider_config("keyfile::" + keyfile)) == []
    env = {"VERTEX_KEY": "keyfile::" + keyfile}
    assert errors_of(provider_config("env:VERTEX_KEY"), env) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda k: "{not json", "keyfile:: service account is not valid JSON"),
        (lambda k: json.dumps({**json.loads(k), "client_email": ""}), "has no 'client_email'"),
        (
            lambda k: json.dumps({**json.loads(k), "private_key": "-----BEGIN PRIVATE KEY-----x"}),
            "'private_key' cannot be read",
        ),
        (
            lambda k: json.dumps({**json.loads(k), "type": "authorized_user"}),
            "expected 'service_account'",
        ),
        (lambda k: json.dumps({**json.loads(k), "token_uri": "file:///etc/passwd"}), "http(s) URL"),
    ],
)
def test_bad_keyfiles_are_errors(keyfile: str, mutate: object, expected: str) -> None:
    text = mutate(keyfile)  # type: ignore[operator]
    errors = errors_of(provider_config("keyfile::" + text))
    assert len(errors) == 1 and expected in errors[0]
    assert "PRIVATE KEY" not in errors[0]


def test_sigv4_keys_need_a_region() -> None:
    keys = {"access_key_id": "AKID", "secret_access_key": "very-secret"}
    ok = provider_config(
        "sigv4::" + json.dumps(keys), "https://bedrock-runtime.us-west-2.amazonaws.com"
    )
    assert errors_of(ok) == []
    (error,) = errors_of(provider_config("sigv4::" + json.dumps(keys), "http://127.0.0.1:9"))
    assert "no 'region'" in error and "very-secret" not in error
    (error,) = errors_of(provider_config("sigv4::" + json.dumps({"access_key_id": "AKID"})))
    assert "has no 'secret_access_key'" in error


def test_regions_from_base_urls() -> None:
    assert aws_region("https://bedrock-runtime.eu-central-1.amazonaws.com") == "eu-central-1"
    assert aws_region("https://bedrock-runtime-fips.us-east-1.amazonaws.com/") == "us-east-1"
    assert aws_region("https://example.com") == ""
    assert vertex_region("https://us-east5-aiplatform.googleapis.com") == "us-east5"
    assert vertex_region("https://aiplatform.googleapis.com") == "global"
