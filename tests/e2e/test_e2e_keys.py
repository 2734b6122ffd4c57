"""API keys through a real irisgate and the four official SDKs (issue 19 points 1-3).

The gateway runs in identity mode `dev`, whose one user (`dev@localhost`, an admin) makes the
keys. A request with a key is the key's owner: a valid key works in every SDK's own header
(openai `Authorization: Bearer`, anthropic `x-api-key`, google-genai `x-goog-api-key`, boto3
`AWS_BEARER_TOKEN_BEDROCK`), a revoked, expired or unknown one is a 401 in the SDK's own error
shape and never the dev user's access, a narrowed key reaches only its models, and a
placeholder without the prefix is ignored as before (the dev user).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import boto3
import botocore.config
import botocore.exceptions
import httpx2
import openai
import pytest
from cloud_setup import BEDROCK_HAIKU, BEDROCK_KEY, GEMINI_KEY
from conftest import ANTHROPIC_KEY, OPENAI_KEY, wait_for_record
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer
from irisgate.testing.tls import Certificate, self_signed
from irisgate.testing.tls_front import TlsFront

CONVERSE = [{"role": "user", "content": [{"text": "hi"}]}]
#: a key that has the format and checksum but that irisgate never made
FOREIGN = "irisgate_" + "A" * 43


def _config(upstream: str) -> str:
    providers = {
        "openai": {
            "baseurl": upstream,
            "apikey": OPENAI_KEY,
            "models": ["gpt-4o-mini"],
            "compatibility": {"openai_chat": True},
        },
        "passthru": {  # forwards the client's own credential, but never an irisgate key
            "baseurl": upstream,
            "apikey": "sk-passthrough-fallback",
            "auth_mode": "passthrough",
            "models": ["m-passthru"],
            "compatibility": {"openai_chat": True},
        },
        "anthropic": {
            "baseurl": upstream,
            "apikey": ANTHROPIC_KEY,
            "authorization": "x-api-key",
            "models": ["claude-haiku-4-5"],
            "compatibility": {"anthropic_messages": True},
        },
        "gemini": {
            "baseurl": upstream,
            "apikey": GEMINI_KEY,
            "authorization": "x-goog-api-key",
            "models": ["gemini-2.5-flash"],
            "compatibility": {"gemini_generate_content": True},
        },
        "bedrock": {
            "baseurl": upstream,
            "apikey": BEDROCK_KEY,
            "models": [BEDROCK_HAIKU],
            "compatibility": {"bedrock_converse": True},
        },
    }
    aperture = "tailscale.com/cap/aperture"
    grants = [
        {
            "src": ["dev@localhost"],
            "app": {aperture: [{"role": "admin", "read_metrics": True}, {"models": "**"}]},
        },
        {"src": ["ci-bot@service"], "app": {aperture: [{"role": "user", "models": "openai/**"}]}},
    ]
    quotas = {"pennies": {"capacity": "$0.000000001", "rate": "$0/day"}}
    return json.dumps({"providers": providers, "grants": grants, "quotas": quotas})


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        _config(fake_llm.base_url), data_dir=tmp_path_factory.mktemp("keys"), identity="dev"
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def https(gw: IrisgateServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFront]:
    """HTTPS in front of the gateway, as `tailscale serve` gives it: boto3 sends a Bedrock
    API key over HTTPS only."""
    certificate = self_signed(tmp_path_factory.mktemp("tls"))
    with TlsFront(gw.port, certificate) as front:
        front.certificate = certificate  # type: ignore[attr-defined]
        yield front


def api(gw: IrisgateServer, key: str | None = None) -> httpx2.Client:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.Client(base_url=gw.url, headers=headers, timeout=30)


def make_key(gw: IrisgateServer, **body: Any) -> dict[str, Any]:
    answer = api(gw).post("/api/keys", json={"name": "test key", **body})
    assert answer.status_code == 201, answer.text
    key: dict[str, Any] = answer.json()
    return key


def revoke(gw: IrisgateServer, key_id: str) -> None:
    assert api(gw).delete(f"/api/keys/{key_id}").status_code == 200


# -- the four SDKs, each with its own header ----------------------------------------------------


def chat(gw: IrisgateServer, key: str, model: str = "gpt-4o-mini") -> str:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["x-irisgate-request-id"]


def message(gw: IrisgateServer, key: str) -> str:
    client = anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    return raw.headers["x-irisgate-request-id"]


def generate(gw: IrisgateServer, key: str) -> str:
    options = genai_types.HttpOptions(base_url=gw.url, api_version="v1beta")
    client = genai.Client(api_key=key, http_options=options)
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert answer.sdk_http_response is not None and answer.sdk_http_response.headers
    return answer.sdk_http_response.headers["x-irisgate-request-id"]


def converse(front: TlsFront, key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 with a Bedrock API key: it sends `Authorization: Bearer <key>`, unsigned."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", key)
    certificate: Certificate = front.certificate  # type: ignore[attr-defined]
    client = boto3.Session().client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=front.url + "/bedrock",
        verify=str(certificate.cert_path),
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    answer = client.converse(modelId=BEDROCK_HAIKU, messages=CONVERSE)
    request_id: str = answer["ResponseMetadata"]["HTTPHeaders"]["x-irisgate-request-id"]
    return request_id


def test_a_key_works_in_every_sdk_and_records_name_it(
    gw: IrisgateServer, https: TlsFront, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(gw, name="laptop")
    secret = key["secret"]
    assert secret.startswith("irisgate_") and key["prefix"] == secret[: len(key["prefix"])]
    ids = [
        chat(gw, secret),
        message(gw, secret),
        generate(gw, secret),
        converse(https, secret, monkeypatch),
    ]
    for request_id in ids:
        record = wait_for_record(gw, request_id)
        assert (record["login_name"], record["key_id"], record["key_name"]) == (
            "dev@localhost",
            key["id"],
            "laptop",
        )
        # the upstream got the provider's key, never the caller's irisgate key
        assert secret not in json.dumps(record)
    assert secret not in json.dumps(dict(fake_llm.last_request.headers))
    listed = api(gw).get("/api/keys").json()
    mine = next(k for k in listed if k["id"] == key["id"])
    assert "secret" not in mine and mine["name"] == "laptop"


def test_revoked_unknown_and_expired_keys_are_401_in_each_sdks_shape(
    gw: IrisgateServer, https: TlsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(gw)
    chat(gw, key["secret"])  # works until revoked
    revoke(gw, key["id"])
    expired = _expired_key(gw)
    for secret in (key["secret"], FOREIGN, expired):
        with pytest.raises(openai.AuthenticationError) as oai:
            chat(gw, secret)
        assert oai.value.status_code == 401
        assert oai.value.code == "invalid_api_key"
        with pytest.raises(anthropic.AuthenticationError) as ant:
            message(gw, secret)
        assert ant.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        with pytest.raises(genai_errors.ClientError) as google:
            generate(gw, secret)
        assert (google.value.code, google.value.status) == (401, "UNAUTHENTICATED")
        with pytest.raises(botocore.exceptions.ClientError) as aws:
            converse(https, secret, monkeypatch)
        error = aws.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 401
        assert error["Error"]["Code"] == "UnrecognizedClientException"
    # the management API too: never the dev user's admin access
    assert api(gw, key["secret"]).get("/api/whoami").status_code == 401
    assert "expired" in api(gw, expired).get("/api/whoami").json()["error"]


def _expired_key(gw: IrisgateServer) -> str:
    """A key whose expiry has passed: made through the API with an expiry an hour away, then
    moved into the past in the database (nothing makes a key that is expired already)."""
    key = make_key(gw, expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    secret: str = key["secret"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(Path(gw.data_dir) / "irisgate.db") as db:
        db.execute("UPDATE api_keys SET expires_at = ? WHERE id = ?", (past, key["id"]))
    # this instance holds the key in memory: its next poll of the key generation reloads it
    with sqlite3.connect(Path(gw.data_dir) / "irisgate.db") as db:
        db.execute("UPDATE api_key_generation SET generation = generation + 1")
    _wait(lambda: api(gw, secret).get("/api/whoami").status_code == 401)
    assert hashlib.sha256(secret.encode()).hexdigest() == _stored_hash(gw, key["id"])
    return secret


def _stored_hash(gw: IrisgateServer, key_id: str) -> str:
    with sqlite3.connect(Path(gw.data_dir) / "irisgate.db") as db:
        row = db.execute("SELECT secret_hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return str(row[0])


def _wait(condition: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_narrowed_key_reaches_only_its_models(gw: IrisgateServer) -> None:
    secret = make_key(gw, models=["anthropic/**"])["secret"]
    message(gw, secret)
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, secret)
    models = api(gw, secret).get("/v1/models").json()["data"]
    assert {m["id"] for m in models} == {"claude-haiku-4-5"}
    # and it cannot make a broader key
    made = api(gw, secret).post("/api/keys", json={"name": "wider"})
    assert made.status_code == 403


def test_a_placeholder_without_the_prefix_is_the_network_identity(gw: IrisgateServer) -> None:
    for placeholder in ("-", "sk-placeholder", "irisgate"):
        request_id = chat(gw, placeholder)
        record = wait_for_record(gw, request_id)
        assert (record["login_name"], record["key_id"]) == ("dev@localhost", "")


def test_service_keys_act_as_the_service_identity(gw: IrisgateServer) -> None:
    made = api(gw).post("/api/keys", json={"name": "ci", "owner": "ci-bot@service"})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert api(gw, secret).get("/api/whoami").json()["login_name"] == "ci-bot@service"
    record = wait_for_record(gw, chat(gw, secret))
    assert record["login_name"] == "ci-bot@service"
    with pytest.raises(anthropic.PermissionDeniedError):  # the service's grants, not dev's
        message(gw, secret)
    # a user may not make keys for someone else
    mine = api(gw, secret).post("/api/keys", json={"name": "x", "owner": "other@service"})
    assert mine.status_code == 403


def test_a_key_with_its_own_budget_is_refused_when_it_is_spent(gw: IrisgateServer) -> None:
    secret = make_key(gw, quota="pennies")["secret"]
    chat(gw, secret)  # admitted while the bucket has money, which it overspends
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw, secret)
    assert "key:" in str(refused.value)
    chat(gw, make_key(gw)["secret"])  # the owner's other keys are not limited by it


def test_the_secret_is_in_no_table_file_log_page_export_or_metric(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    key = make_key(gw, name="secretive")
    secret = key["secret"]
    wait_for_record(gw, chat(gw, secret))
    with pytest.raises(openai.NotFoundError):  # a refused request is recorded too
        chat(gw, secret, model="no-such-model")
    wait_for_record(gw, chat(gw, secret))
    needles = (secret, secret[len("irisgate_") :])  # whole, or without its prefix
    seen = []
    with sqlite3.connect(Path(gw.data_dir) / "irisgate.db") as db:
        dump = "\n".join(db.iterdump())
    assert key["id"] in dump  # the right database: it holds the key, by id and hash
    seen.append(dump)
    # every file irisgate wrote: the database's, the record spool, the quota journal, its log
    seen += [p.read_bytes().decode("latin-1") for p in Path(gw.data_dir).rglob("*") if p.is_file()]
    admin = api(gw)
    for path in (
        "/ui/keys",
        "/ui/dashboard",
        "/ui/agent-config",
        "/ui/admin/sessions",
        "/api/keys?all=1",
        "/api/requests",
        "/api/sessions",
        "/api/usage/export.csv",
        "/api/usage/users",
        "/metrics",
    ):
        answer = admin.get(path)
        assert answer.status_code == 200, path
        seen.append(answer.text)
    for request in admin.get("/api/requests").json()["requests"]:
        seen.append(admin.get(f"/api/requests/{request['request_id']}").text)
    for text in seen:
        for needle in needles:
            assert needle not in text


def test_a_passthrough_provider_never_gets_the_irisgate_key(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    secret = make_key(gw)["secret"]
    chat(gw, secret, model="m-passthru")
    sent = {k.lower(): v for k, v in fake_llm.last_request.headers.items()}
    assert sent["authorization"] == "Bearer sk-passthrough-fallback"
    assert secret not in json.dumps(sent)
