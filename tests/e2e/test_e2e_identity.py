"""End-to-end: who is calling (tailscale, serve and dev identity modes) and what grants allow.

Who is who in tailscale mode goes through a real irisgate process: the client connects from its
own loopback address, which the fake LocalAPI maps to a tailnet node, exactly as WhoIs of a
TCP peer works on a tailnet. What grants allow, and serve mode, run irisgate's app in the
test's process (`InProcessIrisgate`, with the same peer addresses). Only the non-loopback
refusals are checked on the resolvers directly: this machine cannot produce a non-loopback
peer.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from conftest import (
    ALICE_IP,
    ANTHROPIC_KEY,
    BOB_IP,
    CI_IP,
    GROUP_IP,
    NOBODY_IP,
    OPENAI_KEY,
    STRANGER_IP,
    Gateway,
    anthropic_client,
    client_from,
    gateway_config,
    openai_client,
)

from irisgate.identity import IdentityRefused
from irisgate.identity.resolver import DevResolver, ServeResolver
from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
USER_MSG = [{"role": "user", "content": "hello"}]

# Extra tailnet nodes this module registers on the shared fake LocalAPI (127.0.1.0/24, so they
# never collide with the conftest identities).
CAPMAP_IP = "127.0.1.1"  # dana: no config grant, role + model from the tailnet policy (CapMap)
BOB_LAPTOP_IP = "127.0.1.2"  # bob's second node, whose CapMap adds openai/gpt-4o-mini
CACHE_IP = "127.0.1.3"  # fresh node for the WhoIs cache check
LATE_IP = "127.0.1.4"  # unknown at first, joins the tailnet during the test
DENIED_IP = "127.0.1.5"  # asked while tailscaled denies WhoIs
DOWN_IP = "127.0.1.6"  # asked while tailscaled is down
MODELS_ONLY_IP = "127.0.1.10"  # granted {"models": "**"} but no role
STAR_IP = "127.0.1.11"  # user, router/*
GLOBSTAR_IP = "127.0.1.12"  # user, router/** and backup/*
BOTH_IP = "127.0.1.13"  # granted user by one grant and admin by another
RELAY_IP = "127.0.0.1"  # tailscaled relays peers from here, told apart by port (`forward`)

BACKUP_KEY = "sk-backup-upstream-secret"
ROUTER_KEY = "sk-router-upstream-secret"
DECIMAL = re.compile(r"\A\d+\.\d{8,}\Z")


def chat(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.create(model=model, messages=USER_MSG)  # type: ignore[arg-type]


def message(client: anthropic.Anthropic, model: str) -> Any:
    return client.messages.create(model=model, max_tokens=16, messages=USER_MSG)  # type: ignore[arg-type]


def whoami(gw: Gateway, ip: str, **headers: str) -> Any:
    with client_from(ip, gw) as client:
        return client.get("/api/whoami", headers=headers)


@pytest.fixture(scope="module")
def peers(localapi: FakeLocalAPI) -> Iterator[FakeLocalAPI]:
    """This module's extra tailnet nodes, removed again afterwards."""
    localapi.add_user(
        CAPMAP_IP,
        "dana@example.com",
        "Dana",
        capmap={APERTURE: [{"role": "user"}, {"models": "anthropic/claude-haiku-4-5"}]},
    )
    localapi.add_user(
        BOB_LAPTOP_IP,
        "bob@example.com",
        "Bob",
        node_name="bob-laptop",
        capmap={APERTURE: [{"models": "openai/gpt-4o-mini"}]},
    )
    localapi.add_user(CACHE_IP, "cache@example.com", "Cache")
    localapi.add_user(DENIED_IP, "denied@example.com", "Denied")
    localapi.add_user(DOWN_IP, "down@example.com", "Down")
    localapi.add_user(MODELS_ONLY_IP, "models-only@example.com", "Models Only")
    localapi.add_user(STAR_IP, "star@example.com", "Star")
    localapi.add_user(GLOBSTAR_IP, "globstar@example.com", "Globstar")
    localapi.add_user(BOTH_IP, "both@example.com", "Both")
    yield localapi
    for ip in (
        CAPMAP_IP,
        BOB_LAPTOP_IP,
        CACHE_IP,
        LATE_IP,
        DENIED_IP,
        DOWN_IP,
        MODELS_ONLY_IP,
        STAR_IP,
        GLOBSTAR_IP,
        BOTH_IP,
    ):
        localapi.remove(ip)


# -- tailscale mode: who is who ---------------------------------------------------------------


def test_whoami_admin_user_and_tagged_node(gateway: IrisgateServer, localapi: FakeLocalAPI) -> None:
    def node_id(ip: str) -> str:
        answer = localapi.whois(ip)
        assert answer is not None
        return str(answer["Node"]["StableID"])

    common = {"profile_pic": "", "groups": [], "tailnet": "example.ts.net"}
    alice = whoami(gateway, ALICE_IP)
    assert alice.status_code == 200
    assert alice.json() == {
        **common,
        "login_name": "alice@example.com",
        "display_name": "Alice",
        "node_id": node_id(ALICE_IP),
        "node_name": "alice-laptop",
        "tags": [],
        "tagged": False,
        "role": "admin",
        "identity_mode": "tailscale",
        "key": None,
    }
    bob = whoami(gateway, BOB_IP).json()
    assert bob == {
        **common,
        "login_name": "bob@example.com",
        "display_name": "Bob",
        "node_id": node_id(BOB_IP),
        "node_name": "bob-desktop",
        "tags": [],
        "tagged": False,
        "role": "user",
        "identity_mode": "tailscale",
        "key": None,
    }
    # the fake registered the node with tags ["tag:prod", "tag:ci"]: the login is them sorted
    ci = whoami(gateway, CI_IP).json()
    assert ci == {
        **common,
        "login_name": "tag:ci,tag:prod",
        "display_name": "tag:ci,tag:prod",
        "node_id": node_id(CI_IP),
        "node_name": "ci-runner",
        "tags": ["tag:ci", "tag:prod"],
        "tagged": True,
        "role": "user",
        "identity_mode": "tailscale",
        "key": None,
    }
    assert len({alice.json()["node_id"], bob["node_id"], ci["node_id"]}) == 3


def test_tagged_node_uses_the_grant_for_its_sorted_tags(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    reply = chat(openai_client(gateway, CI_IP), "gpt-4o-mini")
    assert reply.model == "gpt-4o-mini"
    upstream = fake_llm.last_request
    assert upstream.path == "/v1/chat/completions"
    assert upstream.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    # its grant is openai/* only
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        message(anthropic_client(gateway, CI_IP), "claude-haiku-4-5")
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "access denied: model 'claude-haiku-4-5' is not granted to you",
        },
    }
    assert len(fake_llm.requests) == 1


def test_group_member_gets_the_group_grant(gateway: IrisgateServer, fake_llm: FakeLLM) -> None:
    me = whoami(gateway, GROUP_IP).json()
    assert (me["login_name"], me["groups"], me["role"]) == (
        "carol@example.com",
        ["group:eng"],
        "user",
    )
    reply = message(anthropic_client(gateway, GROUP_IP), "claude-sonnet-4-5")
    assert reply.model == "claude-sonnet-4-5"
    upstream = fake_llm.last_request
    assert upstream.headers["x-api-key"] == ANTHROPIC_KEY
    assert upstream.headers["X-Team"] == "eng"  # the group grant's add_headers
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(openai_client(gateway, GROUP_IP), "gpt-4o-mini")
    assert caught.value.body["message"] == (  # type: ignore[index]
        "access denied: model 'gpt-4o-mini' is not granted to you"
    )


def test_tailnet_user_without_grants_is_denied_in_each_api_envelope(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    assert whoami(gateway, NOBODY_IP).json()["role"] is None  # known, but granted nothing
    with pytest.raises(openai.PermissionDeniedError) as oai:
        chat(openai_client(gateway, NOBODY_IP), "gpt-4o-mini")
    assert oai.value.status_code == 403
    assert oai.value.message == "Error code: 403 - access denied: no role granted"
    assert oai.value.body == {
        "message": "access denied: no role granted",
        "type": "permission_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(anthropic.PermissionDeniedError) as ant:
        message(anthropic_client(gateway, NOBODY_IP), "claude-haiku-4-5")
    assert ant.value.body == {
        "type": "error",
        "error": {"type": "permission_error", "message": "access denied: no role granted"},
    }
    with pytest.raises(openai.PermissionDeniedError) as models:
        openai_client(gateway, NOBODY_IP).models.list()
    assert models.value.body["message"] == "access denied: no role granted"  # type: ignore[index]
    with client_from(NOBODY_IP, gateway) as client:
        resp = client.get("/api/providers")
    assert resp.status_code == 403
    assert resp.json() == {"error": "access denied: no role granted"}
    assert fake_llm.requests == []


def test_tailscale_mode_ignores_serve_identity_headers(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    forged = {"Tailscale-User-Login": "alice@example.com", "Tailscale-User-Name": "Alice"}
    me = whoami(gateway, NOBODY_IP, **forged).json()
    assert (me["login_name"], me["role"]) == ("nobody@example.com", None)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(openai_client(gateway, NOBODY_IP, default_headers=forged), "gpt-4o-mini")
    assert caught.value.body["message"] == "access denied: no role granted"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError):
        chat(openai_client(gateway, STRANGER_IP, default_headers=forged), "gpt-4o-mini")
    assert fake_llm.requests == []


def test_peer_unknown_to_tailscaled_is_refused_never_anonymous(
    gateway: IrisgateServer, fake_llm: FakeLLM
) -> None:
    expected = "access denied: tailscale does not know peer 127.0.0.6: not a tailnet node"
    resp = whoami(gateway, STRANGER_IP)
    assert resp.status_code == 403
    assert resp.json() == {"error": expected}
    with pytest.raises(openai.PermissionDeniedError) as oai:
        chat(openai_client(gateway, STRANGER_IP), "gpt-4o-mini")
    assert oai.value.body["message"] == expected  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError) as ant:
        message(anthropic_client(gateway, STRANGER_IP), "claude-haiku-4-5")
    assert ant.value.body["error"]["message"] == expected  # type: ignore[index]
    assert fake_llm.requests == []


def test_whois_answer_is_reused_on_one_connection_only(
    gateway: IrisgateServer, peers: FakeLocalAPI, fake_llm: FakeLLM
) -> None:
    # cache@ has no grant: every request still needs its identity, none reaches upstream
    before = peers.whois_calls
    with client_from(CACHE_IP, gateway) as client:  # one keep-alive connection
        for _ in range(3):
            assert client.get("/api/whoami").json()["login_name"] == "cache@example.com"
    assert peers.whois_calls == before + 1
    whois = [r for r in peers.requests if r.path == "/localapi/v0/whois"][-1]
    assert whois.query["addr"].startswith(f"{CACHE_IP}:")
    assert whois.headers["Host"] == "local-tailscaled.sock"
    # a new connection from the same (loopback) address is asked about afresh
    with pytest.raises(openai.PermissionDeniedError):
        chat(openai_client(gateway, CACHE_IP), "gpt-4o-mini")
    assert peers.whois_calls == before + 2


def _connect_from(gw: IrisgateServer, ip: str) -> http.client.HTTPConnection:
    """A keep-alive connection to irisgate from `ip` on a port the system picks."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, source_address=(ip, 0), timeout=30)
    conn.connect()
    return conn


def _whoami_on(conn: http.client.HTTPConnection) -> tuple[int, Any]:
    conn.request("GET", "/api/whoami")
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_peers_relayed_through_one_loopback_address_are_told_apart_by_port(
    gateway: IrisgateServer, localapi: FakeLocalAPI, fake_llm: FakeLLM
) -> None:
    # tailscaled's userspace networking / `tailscale serve` TCP forwarding: every tailnet peer
    # reaches irisgate from 127.0.0.1, and only WhoIs of the full ip:port says who it is
    alice, bob, stranger = (_connect_from(gateway, RELAY_IP) for _ in range(3))
    localapi.forward(f"{RELAY_IP}:{alice.sock.getsockname()[1]}", ALICE_IP)
    localapi.forward(f"{RELAY_IP}:{bob.sock.getsockname()[1]}", BOB_IP)
    before = localapi.whois_calls
    try:
        assert _whoami_on(alice)[1]["login_name"] == "alice@example.com"
        assert _whoami_on(bob)[1]["login_name"] == "bob@example.com"
        status, body = _whoami_on(stranger)
        assert status == 403
        assert body == {
            "error": f"access denied: tailscale does not know peer {RELAY_IP}: not a tailnet node"
        }
        # the same keep-alive connection keeps its identity without asking again
        assert _whoami_on(alice)[1]["login_name"] == "alice@example.com"
        assert _whoami_on(bob)[1]["role"] == "user"
    finally:
        for conn in (alice, bob, stranger):
            conn.close()
    assert localapi.whois_calls == before + 3
    assert fake_llm.requests == []


def test_whois_failure_is_not_cached(gateway: IrisgateServer, peers: FakeLocalAPI) -> None:
    before = peers.whois_calls
    for _ in range(2):
        resp = whoami(gateway, LATE_IP)
        assert resp.status_code == 403
        assert resp.json() == {
            "error": f"access denied: tailscale does not know peer {LATE_IP}: not a tailnet node"
        }
    assert peers.whois_calls == before + 2  # asked again each time
    peers.add_user(LATE_IP, "late@example.com", "Late")  # the node joins the tailnet
    resp = whoami(gateway, LATE_IP)
    assert resp.status_code == 200
    assert resp.json()["login_name"] == "late@example.com"


def test_whois_denied_by_tailscaled_is_refused_with_the_reason(
    gateway: IrisgateServer, peers: FakeLocalAPI, fake_llm: FakeLLM
) -> None:
    expected = (
        f"access denied: tailscale whois for {DENIED_IP} failed: HTTP 403 whois access denied"
    )
    peers.deny_whois = True
    try:
        resp = whoami(gateway, DENIED_IP)
        with pytest.raises(openai.PermissionDeniedError) as caught:
            chat(openai_client(gateway, DENIED_IP), "gpt-4o-mini")
    finally:
        peers.deny_whois = False
    assert resp.status_code == 403
    assert resp.json() == {"error": expected}
    assert caught.value.body["message"] == expected  # type: ignore[index]
    assert fake_llm.requests == []
    assert whoami(gateway, DENIED_IP).json()["login_name"] == "denied@example.com"


def test_localapi_down_is_refused_naming_the_socket(
    gateway: IrisgateServer, peers: FakeLocalAPI, fake_llm: FakeLLM
) -> None:
    socket_path = peers.socket_path
    peers.stop()
    try:
        resp = whoami(gateway, DOWN_IP)
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            message(anthropic_client(gateway, DOWN_IP), "claude-haiku-4-5")
    finally:
        peers.start(socket_path)
    prefix = f"access denied: cannot ask tailscaled who {DOWN_IP} is ({socket_path}): "
    assert resp.status_code == 403
    assert resp.json()["error"].startswith(prefix)
    assert caught.value.body["error"]["message"].startswith(prefix)  # type: ignore[index]
    assert fake_llm.requests == []
    # tailscaled is back: the failure was not remembered
    assert whoami(gateway, DOWN_IP).json()["login_name"] == "down@example.com"


# -- grants from the tailnet policy file (CapMap) -------------------------------------------


def test_capmap_grant_works_without_any_config_grant(
    gateway: IrisgateServer, peers: FakeLocalAPI, fake_llm: FakeLLM
) -> None:
    assert whoami(gateway, CAPMAP_IP).json()["role"] == "user"
    reply = message(anthropic_client(gateway, CAPMAP_IP), "claude-haiku-4-5")
    assert reply.model == "claude-haiku-4-5"
    assert fake_llm.last_request.headers["x-api-key"] == ANTHROPIC_KEY
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        message(anthropic_client(gateway, CAPMAP_IP), "claude-sonnet-4-5")
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "access denied: model 'claude-sonnet-4-5' is not granted to you"
    )
    ids = [m.id for m in openai_client(gateway, CAPMAP_IP).models.list().data]
    assert ids == ["claude-haiku-4-5"]


def test_capmap_grants_join_the_config_grants(
    gateway: IrisgateServer, peers: FakeLocalAPI, fake_llm: FakeLLM
) -> None:
    # bob's laptop: the config's grant (anthropic/**, local/*) plus its CapMap's gpt-4o-mini
    laptop = whoami(gateway, BOB_LAPTOP_IP).json()
    assert (laptop["login_name"], laptop["node_name"], laptop["role"]) == (
        "bob@example.com",
        "bob-laptop",
        "user",
    )
    assert chat(openai_client(gateway, BOB_LAPTOP_IP), "gpt-4o-mini").model == "gpt-4o-mini"
    assert message(anthropic_client(gateway, BOB_LAPTOP_IP), "claude-sonnet-4-5").content
    assert chat(openai_client(gateway, BOB_LAPTOP_IP), "llama-local").model == "llama-local"
    assert [r.json["model"] for r in fake_llm.requests] == [
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "llama-local",
    ]
    ids = {m.id for m in openai_client(gateway, BOB_LAPTOP_IP).models.list().data}
    assert ids == {"gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5", "llama-local"}
    # the same user on a node without that CapMap does not get it
    with pytest.raises(openai.PermissionDeniedError):
        chat(openai_client(gateway, BOB_IP), "gpt-4o-mini")


# -- grant semantics (a gateway with more providers and grant shapes) -------------------------


def _grant(src: str, *caps: dict[str, Any]) -> dict[str, Any]:
    return {"src": [src], "app": {APERTURE: list(caps)}}


@pytest.fixture(scope="module")
def grants_gw(
    fake_llm: FakeLLM,
    peers: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    up = fake_llm.base_url
    chat_only = {"openai_chat": True}
    providers = {
        "openai": {
            "baseurl": up,
            "apikey": OPENAI_KEY,
            "models": ["gpt-4o-mini", "gpt-5-mini"],
            "compatibility": {"openai_chat": True, "openai_responses": True},
            "preference": 10,
        },
        "backup": {
            "baseurl": up,
            "apikey": BACKUP_KEY,
            "models": ["gpt-4o-mini"],
            "compatibility": chat_only,
        },
        "anthropic": {
            "baseurl": up,
            "apikey": ANTHROPIC_KEY,
            "authorization": "x-api-key",
            "models": ["claude-sonnet-4-5", "claude-haiku-4-5"],
            "compatibility": {"anthropic_messages": True},
        },
        "router": {
            "baseurl": up,
            "apikey": ROUTER_KEY,
            "models": ["qwen/qwen3-coder", "mistral-small"],
        },
        "legacy": {
            "baseurl": up,
            "apikey": "sk-legacy-upstream-secret",
            "name": "Legacy",
            "description": "retired upstream",
            "models": ["old-model"],
            "disabled": True,
        },
    }
    grants = [
        _grant("alice@example.com", {"role": "admin"}, {"models": "**"}),
        _grant("models-only@example.com", {"models": "**"}),
        _grant("star@example.com", {"role": "user"}, {"models": "router/*"}),
        _grant(
            "globstar@example.com",
            {"role": "user"},
            {"models": "router/**"},
            {"models": "backup/*"},
        ),
        _grant("both@example.com", {"role": "user"}, {"models": "anthropic/*"}),
        _grant("both@example.com", {"role": "admin"}),
    ]
    server = InProcessIrisgate(
        gateway_config(up, providers=providers, grants=grants),
        data_dir=tmp_path_factory.mktemp("irisgate-grants"),
        identity="tailscale",
        tailscaled_socket=peers.socket_path,
    )
    with server:
        yield server


def test_grants_deny_by_default(grants_gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    # bob has a grant on the shared gateway, none here
    assert whoami(grants_gw, BOB_IP).json()["role"] is None
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(openai_client(grants_gw, BOB_IP), "gpt-4o-mini")
    assert caught.value.body["message"] == "access denied: no role granted"  # type: ignore[index]
    assert fake_llm.requests == []


def test_models_without_a_role_grant_nothing(
    grants_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    assert whoami(grants_gw, MODELS_ONLY_IP).json()["role"] is None
    with pytest.raises(openai.PermissionDeniedError) as oai:
        chat(openai_client(grants_gw, MODELS_ONLY_IP), "gpt-4o-mini")
    assert oai.value.body["message"] == "access denied: no role granted"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError) as ant:
        message(anthropic_client(grants_gw, MODELS_ONLY_IP), "claude-haiku-4-5")
    assert ant.value.body["error"]["message"] == "access denied: no role granted"  # type: ignore[index]
    with client_from(MODELS_ONLY_IP, grants_gw) as client:
        assert client.get("/v1/models").status_code == 403
    assert fake_llm.requests == []


def test_admin_beats_user(grants_gw: InProcessIrisgate) -> None:
    assert whoami(grants_gw, BOTH_IP).json()["role"] == "admin"
    with client_from(BOTH_IP, grants_gw) as client:
        resp = client.get("/api/config")
    assert resp.status_code == 200
    assert set(resp.json()) >= {"config", "hash"}
    with client_from(STAR_IP, grants_gw) as client:
        resp = client.get("/api/config")
    assert resp.status_code == 403
    assert resp.json() == {"error": "access denied: admin role required"}


def test_single_star_stays_within_one_path_segment(
    grants_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    star = openai_client(grants_gw, STAR_IP)
    assert chat(star, "mistral-small").model == "mistral-small"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {ROUTER_KEY}"
    # router/qwen/qwen3-coder has two segments after the provider: router/* does not match
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(star, "qwen/qwen3-coder")
    assert caught.value.body == {
        "message": "access denied: model 'qwen/qwen3-coder' is not granted to you",
        "type": "permission_error",
        "param": None,
        "code": "model_not_granted",
    }
    assert [m.id for m in star.models.list().data] == ["mistral-small"]
    assert len(fake_llm.requests) == 1


def test_double_star_crosses_segments(grants_gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    client = openai_client(grants_gw, GLOBSTAR_IP)
    assert chat(client, "qwen/qwen3-coder").model == "qwen/qwen3-coder"
    assert fake_llm.last_request.json["model"] == "qwen/qwen3-coder"
    # the same model named with its provider: the upstream still gets the bare id
    assert chat(client, "router/qwen/qwen3-coder").model == "qwen/qwen3-coder"
    assert fake_llm.last_request.json["model"] == "qwen/qwen3-coder"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {ROUTER_KEY}"


def test_qualified_model_names_pick_the_provider(
    grants_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    alice = openai_client(grants_gw, ALICE_IP)
    # bare name: openai (preference 10) wins over backup
    assert chat(alice, "gpt-4o-mini").model == "gpt-4o-mini"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    # provider/model: that provider, with the bare id upstream
    assert chat(alice, "backup/gpt-4o-mini").model == "gpt-4o-mini"
    upstream = fake_llm.last_request
    assert upstream.headers["Authorization"] == f"Bearer {BACKUP_KEY}"
    assert upstream.json["model"] == "gpt-4o-mini"
    assert upstream.path == "/v1/chat/completions"
    reply = message(anthropic_client(grants_gw, ALICE_IP), "anthropic/claude-haiku-4-5")
    assert reply.model == "claude-haiku-4-5"
    assert fake_llm.last_request.json["model"] == "claude-haiku-4-5"
    assert fake_llm.last_request.headers["x-api-key"] == ANTHROPIC_KEY


def test_routing_picks_the_provider_the_caller_is_granted(
    grants_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    # globstar may use backup/* but not openai/*: the bare name routes to backup
    assert chat(openai_client(grants_gw, GLOBSTAR_IP), "gpt-4o-mini").model == "gpt-4o-mini"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {BACKUP_KEY}"
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(openai_client(grants_gw, GLOBSTAR_IP), "openai/gpt-4o-mini")
    assert caught.value.body["message"] == (  # type: ignore[index]
        "access denied: model 'openai/gpt-4o-mini' is not granted to you"
    )


def test_unknown_model_is_404_naming_it(grants_gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    with pytest.raises(openai.NotFoundError) as oai:
        chat(openai_client(grants_gw, ALICE_IP), "gpt-9-imaginary")
    assert oai.value.body == {
        "message": "model 'gpt-9-imaginary' is not served by any provider",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    with pytest.raises(anthropic.NotFoundError) as ant:
        message(anthropic_client(grants_gw, ALICE_IP), "claude-imaginary")
    assert ant.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "model 'claude-imaginary' is not served by any provider",
        },
    }
    # a disabled provider's model is unavailable, with the reason
    with pytest.raises(openai.NotFoundError) as disabled:
        chat(openai_client(grants_gw, ALICE_IP), "old-model")
    assert disabled.value.body["message"] == (  # type: ignore[index]
        "model 'old-model' is unavailable: provider 'legacy' is disabled"
    )
    assert fake_llm.requests == []


def test_v1_models_lists_only_granted_models_with_prices(grants_gw: InProcessIrisgate) -> None:
    def listing(ip: str) -> dict[str, Any]:
        with client_from(ip, grants_gw) as client:
            resp = client.get("/v1/models")
        assert resp.status_code == 200
        body: dict[str, Any] = resp.json()
        assert body["object"] == "list"
        return {m["id"]: m for m in body["data"]}

    alice = listing(ALICE_IP)
    assert set(alice) == {
        "gpt-4o-mini",
        "gpt-5-mini",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "qwen/qwen3-coder",
        "mistral-small",
    }  # old-model's provider is disabled
    assert alice["gpt-4o-mini"]["owned_by"] == "openai"
    assert alice["gpt-4o-mini"]["object"] == "model"
    priced = [m for m in alice.values() if "pricing" in m]
    assert {m["id"] for m in priced} >= {"gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5"}
    for model in priced:
        assert model["pricing"], model
        for name, value in model["pricing"].items():
            assert isinstance(value, str), (model["id"], name, value)
            assert DECIMAL.match(value), (model["id"], name, value)
    assert alice["gpt-4o-mini"]["pricing"]["input"] == "0.00000015"
    assert alice["gpt-4o-mini"]["pricing"]["output"] == "0.00000060"

    globstar = listing(GLOBSTAR_IP)
    assert set(globstar) == {"gpt-4o-mini", "qwen/qwen3-coder", "mistral-small"}
    assert globstar["gpt-4o-mini"]["owned_by"] == "backup"
    assert set(listing(BOTH_IP)) == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    # the SDK sees the same list
    sdk = openai_client(grants_gw, STAR_IP).models.list()
    assert [m.id for m in sdk.data] == ["mistral-small"]


def test_api_providers_lists_every_provider_including_disabled(
    grants_gw: InProcessIrisgate,
) -> None:
    with client_from(STAR_IP, grants_gw) as client:  # any role may list providers
        resp = client.get("/api/providers")
    assert resp.status_code == 200
    providers = resp.json()
    assert isinstance(providers, list)
    by_id = {p["id"]: p for p in providers}
    assert list(by_id) == ["openai", "backup", "anthropic", "router", "legacy"]
    for entry in providers:
        assert {"id", "name", "description", "models", "compatibility"} <= set(entry)
    legacy = by_id["legacy"]
    assert (legacy["name"], legacy["description"], legacy["models"]) == (
        "Legacy",
        "retired upstream",
        ["old-model"],
    )
    assert legacy["disabled"] is True
    assert legacy["compatibility"]["openai_chat"] is True  # the default when absent
    assert by_id["router"]["name"] == "router"  # no name: the id
    assert by_id["router"]["models"] == ["qwen/qwen3-coder", "mistral-small"]
    assert by_id["anthropic"]["compatibility"]["anthropic_messages"] is True
    assert by_id["anthropic"]["compatibility"]["openai_chat"] is False
    assert by_id["openai"]["compatibility"]["openai_responses"] is True
    assert by_id["openai"]["disabled"] is False
    assert "sk-" not in resp.text  # no secrets


# -- serve mode -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serve_gw(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    grants = [
        _grant("alice@example.com", {"role": "admin"}, {"models": "**"}),
        _grant("jürgen@example.com", {"role": "user"}, {"models": "anthropic/**"}),
    ]
    server = InProcessIrisgate(
        gateway_config(fake_llm.base_url, grants=grants),
        data_dir=tmp_path_factory.mktemp("irisgate-serve"),
        identity="serve",
    )
    with server:
        yield server


ALICE_HEADERS = {
    "Tailscale-User-Login": "alice@example.com",
    "Tailscale-User-Name": "Alice",
    "Tailscale-User-Profile-Pic": "https://pics.example.com/alice.png",
}
JURGEN_HEADERS = {
    "Tailscale-User-Login": "=?utf-8?q?j=C3=BCrgen@example.com?=",
    "Tailscale-User-Name": "=?utf-8?q?J=C3=BCrgen_M=C3=BCller?=",
}


def test_serve_headers_from_loopback_give_the_identity(
    serve_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    resp = whoami(serve_gw, "127.0.0.1", **ALICE_HEADERS)
    assert resp.status_code == 200
    assert resp.json() == {
        "login_name": "alice@example.com",
        "display_name": "Alice",
        "profile_pic": "https://pics.example.com/alice.png",
        "node_id": "",
        "node_name": "",
        "tags": [],
        "groups": [],
        "tailnet": "",
        "tagged": False,
        "role": "admin",
        "identity_mode": "serve",
        "key": None,
    }
    client = openai_client(serve_gw, "127.0.0.1", default_headers=ALICE_HEADERS)
    assert chat(client, "gpt-4o-mini").model == "gpt-4o-mini"
    upstream = fake_llm.last_request
    assert upstream.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert "Tailscale-User-Login" not in upstream.headers  # identity headers stay here


def test_serve_decodes_rfc2047_login_and_name(
    serve_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    resp = whoami(serve_gw, "127.0.0.1", **JURGEN_HEADERS)
    assert resp.status_code == 200
    me = resp.json()
    assert (me["login_name"], me["display_name"], me["role"]) == (
        "jürgen@example.com",
        "Jürgen Müller",
        "user",
    )
    client = anthropic.Anthropic(
        base_url=serve_gw.url,
        api_key="client-placeholder-key",
        http_client=client_from("127.0.0.1", serve_gw),
        max_retries=0,
        default_headers=JURGEN_HEADERS,
    )
    assert message(client, "claude-haiku-4-5").model == "claude-haiku-4-5"
    assert fake_llm.last_request.headers["x-api-key"] == ANTHROPIC_KEY


def test_serve_app_capabilities_header_grants(
    serve_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    eve = {"Tailscale-User-Login": "eve@example.com", "Tailscale-User-Name": "Eve"}
    caps = {APERTURE: [{"role": "user"}, {"models": "anthropic/claude-haiku-4-5"}]}
    with_caps = {**eve, "Tailscale-App-Capabilities": json.dumps(caps)}
    assert whoami(serve_gw, "127.0.0.1", **eve).json()["role"] is None
    assert whoami(serve_gw, "127.0.0.1", **with_caps).json()["role"] == "user"
    client = openai_client(serve_gw, "127.0.0.1", default_headers=with_caps)
    ids = [m.id for m in client.models.list().data]
    assert ids == ["claude-haiku-4-5"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(client, "gpt-4o-mini")
    assert caught.value.body["message"] == (  # type: ignore[index]
        "access denied: model 'gpt-4o-mini' is not granted to you"
    )
    ant = anthropic.Anthropic(
        base_url=serve_gw.url,
        api_key="-",
        http_client=client_from("127.0.0.1", serve_gw),
        max_retries=0,
        default_headers=with_caps,
    )
    assert message(ant, "claude-haiku-4-5").model == "claude-haiku-4-5"
    assert len(fake_llm.requests) == 1


def test_serve_refuses_funnel_requests(serve_gw: InProcessIrisgate, fake_llm: FakeLLM) -> None:
    funnel = {**ALICE_HEADERS, "Tailscale-Funnel-Request": "?1"}
    expected = "access denied: requests through Tailscale Funnel carry no identity; refused"
    resp = whoami(serve_gw, "127.0.0.1", **funnel)
    assert resp.status_code == 403
    assert resp.json() == {"error": expected}
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(openai_client(serve_gw, "127.0.0.1", default_headers=funnel), "gpt-4o-mini")
    assert caught.value.body["message"] == expected  # type: ignore[index]
    assert fake_llm.requests == []


def test_serve_refuses_requests_without_a_login(
    serve_gw: InProcessIrisgate, fake_llm: FakeLLM
) -> None:
    expected = (
        "access denied: no Tailscale-User-Login header: tagged nodes and non-tailnet clients "
        "cannot be identified behind tailscale serve"
    )
    resp = whoami(serve_gw, "127.0.0.1", **{"Tailscale-User-Name": "Alice"})
    assert resp.status_code == 403
    assert resp.json() == {"error": expected}
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        message(anthropic_client(serve_gw, "127.0.0.1"), "claude-haiku-4-5")
    assert caught.value.body["error"]["message"] == expected  # type: ignore[index]
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        (
            {"Tailscale-User-Login": "=?x-unknown?q?eve@example.com?="},
            "Tailscale-User-Login header is not valid RFC 2047",
        ),
        (
            {"Tailscale-User-Login": "eve@example.com", "Tailscale-User-Name": "=?utf-8?q?=FF?="},
            "Tailscale-User-Name header is not valid RFC 2047",
        ),
        (
            {"Tailscale-User-Login": "eve@example.com", "Tailscale-App-Capabilities": "{role"},
            "Tailscale-App-Capabilities header is not JSON",
        ),
        (
            {
                "Tailscale-User-Login": "eve@example.com",
                "Tailscale-App-Capabilities": '{"cap": [' + "[" * 300 + "]" * 300 + "]}",
            },
            "Tailscale-App-Capabilities header is nested deeper than 128 levels",
        ),
    ],
)
def test_serve_refuses_malformed_identity_headers_naming_the_header(
    serve_gw: InProcessIrisgate, fake_llm: FakeLLM, headers: dict[str, str], problem: str
) -> None:
    resp = whoami(serve_gw, "127.0.0.1", **headers)
    assert resp.status_code == 403
    assert resp.json() == {"error": f"access denied: {problem}"}
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(openai_client(serve_gw, "127.0.0.1", default_headers=headers), "gpt-4o-mini")
    assert caught.value.body["message"] == f"access denied: {problem}"  # type: ignore[index]
    assert fake_llm.requests == []


ALICE_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in ALICE_HEADERS.items()]


@pytest.mark.parametrize("peer", ["100.64.0.5", "fd7a:115c:a1e0::5", "192.168.1.20"])
async def test_serve_resolver_refuses_non_loopback_peers(peer: str) -> None:
    with pytest.raises(IdentityRefused) as caught:
        await ServeResolver().resolve((peer, 1234), ALICE_RAW_HEADERS)
    assert str(caught.value) == (
        "identity mode 'serve' only accepts requests relayed by tailscale serve on loopback; "
        f"{peer} is not loopback"
    )


async def test_serve_resolver_accepts_loopback_peers() -> None:
    for peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        identity = await ServeResolver().resolve((peer, 40000), ALICE_RAW_HEADERS)
        assert identity.login_name == "alice@example.com"
    with pytest.raises(IdentityRefused, match="unknown peer is not loopback"):
        await ServeResolver().resolve(None, ALICE_RAW_HEADERS)


async def test_dev_resolver_refuses_non_loopback_peers() -> None:
    resolver = DevResolver("dev@localhost")
    with pytest.raises(IdentityRefused) as caught:
        await resolver.resolve(("100.64.0.5", 1234), [])
    assert str(caught.value) == (
        "identity mode 'dev' only accepts loopback clients; 100.64.0.5 is not "
        "(run with --identity tailscale or serve to share irisgate)"
    )
    identity = await resolver.resolve(("127.0.0.1", 5555), [])
    assert (identity.login_name, identity.display_name) == ("dev@localhost", "dev")


# -- dev mode ---------------------------------------------------------------------------------

DEV_GRANTS = [
    _grant("dev@localhost", {"role": "admin"}, {"models": "**"}),
    _grant("ada@example.com", {"role": "user"}, {"models": "anthropic/*"}),
]


def _dev_server(fake_llm: FakeLLM, data_dir: Path, *extra: str) -> IrisgateServer:
    return IrisgateServer(
        gateway_config(fake_llm.base_url, grants=DEV_GRANTS),
        data_dir=data_dir,
        identity="dev",
        extra_args=extra,
    )


def test_dev_mode_is_one_local_user(fake_llm: FakeLLM, tmp_path: Path) -> None:
    with _dev_server(fake_llm, tmp_path) as gw:
        for ip in ("127.0.0.1", ALICE_IP, BOB_IP):  # whoever connects locally is that user
            me = whoami(gw, ip).json()
            assert (me["login_name"], me["display_name"], me["role"], me["identity_mode"]) == (
                "dev@localhost",
                "dev",
                "admin",
                "dev",
            )
        assert chat(openai_client(gw, BOB_IP), "gpt-4o-mini").model == "gpt-4o-mini"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"


def test_dev_login_flag_names_the_user(fake_llm: FakeLLM, tmp_path: Path) -> None:
    with _dev_server(fake_llm, tmp_path, "--dev-login", "ada@example.com") as gw:
        me = whoami(gw, "127.0.0.1").json()
        assert (me["login_name"], me["display_name"], me["role"]) == (
            "ada@example.com",
            "ada",
            "user",
        )
        assert message(anthropic_client(gw, "127.0.0.1"), "claude-haiku-4-5").content
        with pytest.raises(openai.PermissionDeniedError) as caught:
            chat(openai_client(gw, "127.0.0.1"), "gpt-4o-mini")
    assert caught.value.body["message"] == (  # type: ignore[index]
        "access denied: model 'gpt-4o-mini' is not granted to you"
    )
