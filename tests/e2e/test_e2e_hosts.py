"""Requests for a name that is not the gateway's are refused (DNS rebinding).

A page whose own name an attacker points at the gateway's address is, to the browser, the
gateway's origin: only the `Host` header tells the two apart. A real irisgate in `tailscale`
mode, with a fake tailscaled that knows the gateway's own node (`ai.example.ts.net` on
127.0.0.1) and alice's laptop, and in `dev` mode; requests come with the Host a browser on
such a page would send. Where the guard's answer is all that is checked, irisgate's app
runs in the test's process (`InProcessIrisgate`): no process start per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from conftest import ALICE_IP, gateway_config, http_from

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def tailnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLocalAPI]:
    fake = FakeLocalAPI()
    fake.add_user(ALICE_IP, "alice@example.com", "Alice", node_name="alice-laptop")
    fake.add_tagged("127.0.0.1", ["tag:gateway"], node_name="ai")  # the gateway's own node
    fake.start(str(tmp_path_factory.mktemp("ts") / "tailscaled.sock"))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, tailnet: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    assert tailnet.socket_path
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate"),
        identity="tailscale",
        tailscaled_socket=tailnet.socket_path,
        env={"IRISGATE_ALLOWED_HOSTS": "gw.corp.example, *.ai.example.org"},
    )
    with server:
        yield server


def send(gw: IrisgateServer, host: str, path: str = "/v1/chat/completions") -> httpx2.Response:
    with http_from(ALICE_IP, gw.url) as client:
        if path == "/v1/chat/completions":
            return client.post(path, json=CHAT, headers={"Host": host})
        return client.get(path, headers={"Host": host})


@pytest.mark.parametrize(
    "host",
    [
        "ai",  # the MagicDNS short name
        "ai.example.ts.net",
        "AI.Example.ts.net.:80",
        "127.0.0.1",
        "[::1]:8080",
        "localhost:8080",
        "gw.corp.example",  # --allowed-hosts
        "x.ai.example.org",  # --allowed-hosts *.ai.example.org
    ],
)
def test_the_gateways_own_names_and_allowed_hosts_pass(
    gw: IrisgateServer, fake_llm: FakeLLM, host: str
) -> None:
    answer = send(gw, host)
    assert answer.status_code == 200, answer.text
    assert fake_llm.last_request.json["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("host", ["evil.example", "ai.evil.example", "ai.example.org"])
def test_a_name_rebound_to_the_gateway_is_refused(
    gw: IrisgateServer, fake_llm: FakeLLM, host: str
) -> None:
    before = len(fake_llm.requests)
    chat = send(gw, f"{host}:{gw.port}")
    assert chat.status_code == 403
    error = chat.json()["error"]
    assert error["type"] == "permission_error"  # OpenAI's envelope
    assert f"host {host!r} is not a name of this gateway" in error["message"]
    assert "--allowed-hosts" in error["message"]
    assert len(fake_llm.requests) == before  # nothing reached the upstream
    # reading is refused too: the page must not learn who the user is or what they did
    for path in ("/api/whoami", "/api/requests", "/ui/"):
        assert send(gw, host, path).status_code == 403
    assert "refused a request for another host name" in gw.logs()


def test_dev_mode_answers_only_to_loopback_names(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with InProcessIrisgate(
        gateway_config(fake_llm.base_url), data_dir=tmp_path_factory.mktemp("dev")
    ) as gw:
        for host, status in (("localhost", 200), ("127.0.0.1", 200), ("rebound.example", 403)):
            answer = gw.client.get("/api/whoami", headers={"Host": host})
            assert answer.status_code == status, (host, answer.text)


SERVE_ALICE = {"Tailscale-User-Login": "alice@example.com", "Tailscale-User-Name": "Alice"}


def read_config_behind_serve(
    gw: IrisgateServer | InProcessIrisgate, host: str, forwarded: str
) -> httpx2.Response:
    """GET /api/config as the admin, relayed by `tailscale serve` for a browser that used
    `host` (serve keeps `Host` and adds `X-Forwarded-Host`)."""
    headers = {**SERVE_ALICE, "Host": host, "X-Forwarded-Host": forwarded}
    if isinstance(gw, InProcessIrisgate):
        return gw.client.get("/api/config", headers=headers)
    with httpx2.Client(base_url=gw.url, timeout=30) as client:
        return client.get("/api/config", headers=headers)


def test_serve_mode_learns_its_names_from_tailscaled_and_refuses_others(
    fake_llm: FakeLLM, tailnet: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert tailnet.socket_path
    with InProcessIrisgate(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("serve-names"),
        identity="serve",
        tailscaled_socket=tailnet.socket_path,
    ) as gw:
        own = read_config_behind_serve(gw, "ai.example.ts.net", "ai.example.ts.net")
        rebound = read_config_behind_serve(gw, "evil.example", "evil.example")
        forwarded_only = read_config_behind_serve(gw, "127.0.0.1", "evil.example")
        local = read_config_behind_serve(gw, "127.0.0.1:8080", "127.0.0.1:8080")
    assert own.status_code == 200, own.text
    assert "providers" in own.json()["config"]
    for refused in (rebound, forwarded_only):
        assert refused.status_code == 403
        assert refused.json()["error"].startswith("host 'evil.example' is not a name of this")
        assert "providers" not in refused.text
    assert local.status_code == 200
    status = [r for r in tailnet.requests if r.path == "/localapi/v0/status"]
    assert status and status[0].query == {"peers": "false"}


def test_serve_mode_without_tailscaled_takes_its_names_from_allowed_hosts(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("serve-allowed")
    with IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=data_dir,
        identity="serve",
        tailscaled_socket=str(data_dir / "no-tailscaled.sock"),
        env={"IRISGATE_ALLOWED_HOSTS": "ai.corp.example"},
    ) as gw:
        listed_name = read_config_behind_serve(gw, "ai.corp.example", "ai.corp.example")
        rebound = read_config_behind_serve(gw, "ai.example.ts.net", "ai.example.ts.net")
        assert "cannot learn this node's names from tailscaled" in gw.logs()
    assert listed_name.status_code == 200, listed_name.text
    assert rebound.status_code == 403
    assert "--allowed-hosts" in rebound.json()["error"]
