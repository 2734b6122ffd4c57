"""How the upstream credential is chosen: override (default), passthrough and none, and the
authorization header styles. The client's own credential reaches the upstream only in
passthrough mode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    up = fake_llm.base_url
    config = {
        "providers": {
            "override": {"baseurl": up, "apikey": "sk-configured", "models": ["m-override"]},
            "passthru": {
                "baseurl": up,
                "apikey": "sk-fallback",
                "auth_mode": "passthrough",
                "models": ["m-passthru"],
            },
            "nokey": {
                "baseurl": up,
                "apikey": "sk-never-sent",
                "auth_mode": "none",
                "models": ["m-none"],
            },
            "splunk": {
                "baseurl": up,
                "apikey": "hec-token",
                "authorization": "hec",
                "models": ["m-hec"],
            },
            "cloudflare": {
                "baseurl": up,
                "apikey": "cf-token",
                "authorization": "cf-aig-authorization",
                "models": ["m-cf"],
            },
            "google": {
                "baseurl": up,
                "apikey": "goog-key",
                "authorization": "x-goog-api-key",
                "models": ["m-goog"],
            },
        },
        "grants": [
            {
                "src": ["*"],
                "app": {"tailscale.com/cap/aperture": [{"role": "user", "models": "**"}]},
            }
        ],
    }
    server = IrisgateServer(
        json.dumps(config), data_dir=tmp_path_factory.mktemp("auth"), identity="dev"
    )
    with server:
        yield server


def post(gw: IrisgateServer, model: str, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(
        gw.url + "/v1/chat/completions", json={"model": model, **CHAT}, headers=headers
    )


CLIENT_CREDS = {
    "authorization": "Bearer client-own-token",
    "x-api-key": "client-own-key",
    "x-goog-api-key": "client-goog",
    "api-key": "client-azure",
}


def upstream_auth(fake: FakeLLM) -> dict[str, str]:
    request = fake.last_request
    assert request is not None
    names = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "cf-aig-authorization")
    return {name: request.headers[name] for name in names if name in request.headers}


def test_override_injects_the_key_and_drops_every_client_credential(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    assert post(gw, "m-override", CLIENT_CREDS).status_code == 200
    assert upstream_auth(fake_llm) == {"authorization": "Bearer sk-configured"}


def test_passthrough_forwards_the_client_credential(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    assert post(gw, "m-passthru", {"authorization": "Bearer sub-token"}).status_code == 200
    assert upstream_auth(fake_llm) == {"authorization": "Bearer sub-token"}
    assert post(gw, "m-passthru", {"x-api-key": "sk-ant-oat-abc"}).status_code == 200
    assert upstream_auth(fake_llm) == {"x-api-key": "sk-ant-oat-abc"}


def test_passthrough_falls_back_to_the_configured_key(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    assert post(gw, "m-passthru", {}).status_code == 200
    assert upstream_auth(fake_llm) == {"authorization": "Bearer sk-fallback"}


def test_none_sends_no_credential(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    assert post(gw, "m-none", CLIENT_CREDS).status_code == 200
    assert upstream_auth(fake_llm) == {}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("m-hec", {"authorization": "Splunk hec-token"}),
        ("m-cf", {"cf-aig-authorization": "Bearer cf-token"}),
        ("m-goog", {"x-goog-api-key": "goog-key"}),
    ],
)
def test_authorization_styles(
    gw: IrisgateServer, fake_llm: FakeLLM, model: str, expected: dict[str, str]
) -> None:
    assert post(gw, model, CLIENT_CREDS).status_code == 200
    assert upstream_auth(fake_llm) == expected
