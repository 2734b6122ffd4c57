"""End-to-end fixtures: a real irisgate process in front of the fake vendors.

Identity is real too: irisgate runs in `tailscale` mode against the fake LocalAPI, and each
test client connects from its own loopback address (127.0.0.x), which the fake LocalAPI maps
to a tailnet user or tagged node — exactly how WhoIs of a TCP peer works on a tailnet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.postgres import PostgresCluster
from irisgate.testing.server import IrisgateServer

#: an irisgate process, or its app in the test's process where the process is not the point
Gateway = IrisgateServer | InProcessIrisgate

ALICE_IP = "127.0.0.2"  # admin
BOB_IP = "127.0.0.3"  # user, anthropic models only
CI_IP = "127.0.0.4"  # tagged node tag:ci,tag:prod
NOBODY_IP = "127.0.0.5"  # a tailnet user without any grant
STRANGER_IP = "127.0.0.6"  # not on the tailnet at all
GROUP_IP = "127.0.0.7"  # member of group:eng

OPENAI_KEY = "sk-upstream-openai-secret"
ANTHROPIC_KEY = "sk-ant-upstream-secret"


def gateway_config(upstream: str, **overrides: Any) -> str:
    """A config routing to the fake upstream, with grants for the test identities."""
    config: dict[str, Any] = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": OPENAI_KEY,
                "models": ["gpt-4o-mini", "gpt-5-mini"],
                "compatibility": {"openai_chat": True, "openai_responses": True},
                "add_headers": ["X-Provider-Header: from-provider"],
            },
            "anthropic": {
                "baseurl": upstream,
                "apikey": ANTHROPIC_KEY,
                "authorization": "x-api-key",
                "models": ["claude-sonnet-4-5", "claude-haiku-4-5"],
                "compatibility": {"anthropic_messages": True},
            },
            "local": {"baseurl": upstream, "models": ["llama-local"]},
        },
        "grants": [
            {
                "src": ["alice@example.com"],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
            },
            {
                "src": ["bob@example.com", "group:eng"],
                "app": {
                    "tailscale.com/cap/aperture": [
                        {"role": "user"},
                        {"models": "anthropic/**", "add_headers": ["X-Team: eng"]},
                        {"models": "local/*"},
                    ]
                },
            },
            {
                "src": ["tag:ci,tag:prod"],
                "app": {"tailscale.com/cap/aperture": [{"role": "user", "models": "openai/*"}]},
            },
        ],
    }
    config.update(overrides)
    return "// written by the test suite\n" + json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL server for one test module, which its tests may stop and start
    (irisgate.testing.postgres). `IRISGATE_TEST_POSTGRES=0` skips the tests using it."""
    if os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0":
        pytest.skip("IRISGATE_TEST_POSTGRES=0")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_fake(fake_llm: FakeLLM) -> None:
    fake_llm.reset()


@pytest.fixture(scope="session")
def localapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLocalAPI]:
    sock = tmp_path_factory.mktemp("ts") / "tailscaled.sock"
    fake = FakeLocalAPI()
    fake.add_user(ALICE_IP, "alice@example.com", "Alice", node_name="alice-laptop")
    fake.add_user(BOB_IP, "bob@example.com", "Bob", node_name="bob-desktop")
    fake.add_tagged(CI_IP, ["tag:prod", "tag:ci"], node_name="ci-runner")
    fake.add_user(NOBODY_IP, "nobody@example.com", "Nobody")
    fake.add_user(GROUP_IP, "carol@example.com", "Carol", groups=("group:eng",))
    fake.start(str(sock))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """One irisgate for a test module (SQLite, tailscale identity)."""
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate"),
        identity="tailscale",
        tailscaled_socket=_socket_of(localapi),
    )
    with server:
        yield server


def _socket_of(localapi: FakeLocalAPI) -> str:
    assert localapi.socket_path, "FakeLocalAPI not started"
    return localapi.socket_path


def http_from(ip: str, base_url: str) -> httpx2.Client:
    return httpx2.Client(
        base_url=base_url, transport=httpx2.HTTPTransport(local_address=ip), timeout=30
    )


def client_from(ip: str, gw: Gateway) -> httpx2.Client:
    """An HTTP client of `gw` whose requests come from `ip` (a tailnet identity)."""
    if isinstance(gw, InProcessIrisgate):
        return gw.client_from(ip)
    return http_from(ip, gw.url)


def openai_client(gw: Gateway, ip: str = ALICE_IP, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key="client-placeholder-key",
        http_client=client_from(ip, gw),
        max_retries=0,
        **kwargs,
    )


def anthropic_client(gw: Gateway, ip: str = ALICE_IP) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.url,
        api_key="client-placeholder-key",
        http_client=client_from(ip, gw),
        max_retries=0,
    )


def wait_for_record(gw: Gateway, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The stored capture of one request, polling the API as the admin until it is written."""
    import time

    client = client_from(ALICE_IP, gw)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = client.get(f"/api/requests/{request_id}")
        if resp.status_code == 200:
            data: dict[str, Any] = resp.json()
            return data
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} was not recorded within {timeout}s")


def data_dir_of(gw: IrisgateServer) -> Path:
    return gw.data_dir
