"""A key acts as its owner, groups and tailnet capabilities included, as last seen (issue 19).

irisgate runs in identity mode `tailscale` against a fake LocalAPI of its own. Carol has a
role only through `group:eng`, Dave only through an aperture capability of the tailnet
policy (CapMap). Each makes a key on the tailnet; the key works off the tailnet (from an
address tailscaled does not know) with that role. Then tailscaled reports the person
without the group or the capability on their next request on the tailnet, and the key
loses the role at once. On two instances sharing PostgreSQL the other one follows within
the convergence bound. A tagged node's key never carries the node's tags, and a service
key never takes the groups of a tailnet login that looks like its service identity.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from conftest import STRANGER_IP, client_from, gateway_config
from sqlalchemy.engine import make_url
from test_e2e_postgres import ADMIN_URL, _admin

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer

APERTURE = "tailscale.com/cap/aperture"
CAROL_IP, CAROL_LATER_IP = "127.0.0.41", "127.0.0.42"
DAVE_IP, DAVE_LATER_IP = "127.0.0.43", "127.0.0.44"
ERIN_IP, ERIN_LATER_IP = "127.0.0.45", "127.0.0.46"
TAGGED_IP = "127.0.0.47"
ADMIN_IP = "127.0.0.48"
#: a tailnet login that looks like a service identity (its keys must not take its groups)
LOOKALIKE_IP = "127.0.0.49"
DAVES_CAP = {APERTURE: [{"role": "user", "models": "openai/**"}]}


@pytest.fixture(scope="module")
def tailnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLocalAPI]:
    fake = FakeLocalAPI()
    fake.add_user(CAROL_IP, "carol@example.com", "Carol", groups=("group:eng",))
    fake.add_user(DAVE_IP, "dave@example.com", "Dave", capmap=DAVES_CAP)
    fake.add_user(ERIN_IP, "erin@example.com", "Erin", groups=("group:eng",))
    fake.add_tagged(TAGGED_IP, ["tag:build"], capmap=DAVES_CAP)
    fake.add_user(ADMIN_IP, "alice@example.com", "Alice")
    fake.add_user(LOOKALIKE_IP, "ci-bot@service", "CI", groups=("group:eng",))
    fake.start(str(tmp_path_factory.mktemp("ts") / "tailscaled.sock"))
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, tailnet: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessIrisgate]:
    assert tailnet.socket_path
    with InProcessIrisgate(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("key-owners"),
        identity="tailscale",
        tailscaled_socket=tailnet.socket_path,
    ) as gateway:
        yield gateway


def make_key(gw: InProcessIrisgate | IrisgateServer, ip: str, name: str) -> str:
    made = client_from(ip, gw).post("/api/keys", json={"name": name})
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


def whoami(gw: InProcessIrisgate | IrisgateServer, ip: str, key: str | None = None) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    answer = client_from(ip, gw).get("/api/whoami", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def claude(gw: InProcessIrisgate | IrisgateServer, key: str) -> None:
    client = anthropic.Anthropic(
        base_url=gw.url, api_key=key, http_client=client_from(STRANGER_IP, gw), max_retries=0
    )
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )


def gpt(gw: InProcessIrisgate | IrisgateServer, key: str) -> None:
    client = openai.OpenAI(
        base_url=gw.url + "/v1",
        api_key=key,
        http_client=client_from(STRANGER_IP, gw),
        max_retries=0,
    )
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )


def test_a_key_has_its_owners_group_until_the_owner_is_seen_without_it(
    gw: InProcessIrisgate, tailnet: FakeLocalAPI
) -> None:
    key = make_key(gw, CAROL_IP, "laptop")
    off_tailnet = whoami(gw, STRANGER_IP, key)
    assert off_tailnet["login_name"] == "carol@example.com"
    assert (off_tailnet["groups"], off_tailnet["role"]) == (["group:eng"], "user")
    claude(gw, key)  # the group's grant: anthropic/**, off the tailnet

    # tailscaled now reports Carol without the group (her other device, same user)
    tailnet.add_user(CAROL_LATER_IP, "carol@example.com", "Carol")
    assert whoami(gw, CAROL_LATER_IP)["role"] is None  # one request on the tailnet
    assert whoami(gw, STRANGER_IP, key)["groups"] == []
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(gw, key)
    assert whoami(gw, STRANGER_IP, key)["role"] is None

    # the latest sighting wins either way: back in the group, the key has the role again
    whoami(gw, CAROL_IP)
    claude(gw, key)


def test_a_key_has_its_owners_tailnet_capability_until_it_is_gone(
    gw: InProcessIrisgate, tailnet: FakeLocalAPI
) -> None:
    key = make_key(gw, DAVE_IP, "ci")
    assert whoami(gw, STRANGER_IP, key)["role"] == "user"
    gpt(gw, key)  # granted by the capability only: openai/**
    with pytest.raises(anthropic.PermissionDeniedError):
        claude(gw, key)  # never more than the owner

    tailnet.add_user(DAVE_LATER_IP, "dave@example.com", "Dave")  # the policy dropped it
    whoami(gw, DAVE_LATER_IP)
    with pytest.raises(openai.PermissionDeniedError):
        gpt(gw, key)


def test_a_tagged_nodes_key_carries_no_tags(gw: InProcessIrisgate) -> None:
    node = whoami(gw, TAGGED_IP)
    assert node["tagged"] and node["role"] == "user"
    key = make_key(gw, TAGGED_IP, "build")
    with_key = whoami(gw, STRANGER_IP, key)
    assert (with_key["tags"], with_key["groups"], with_key["role"]) == ([], [], None)


def test_a_service_key_keeps_its_service_identity(gw: InProcessIrisgate) -> None:
    made = client_from(ADMIN_IP, gw).post(
        "/api/keys", json={"name": "ci", "owner": "ci-bot@service"}
    )
    assert made.status_code == 201, made.text
    assert whoami(gw, LOOKALIKE_IP)["groups"] == ["group:eng"]  # seen on the tailnet
    service = whoami(gw, STRANGER_IP, made.json()["secret"])
    assert (service["login_name"], service["groups"], service["role"]) == (
        "ci-bot@service",
        [],
        None,
    )


def test_attributes_older_than_the_max_age_are_not_used(
    fake_llm: FakeLLM, tailnet: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`--key-owner-max-age 1s`: a second after Erin was last seen, her key has her login
    only and no role (the test waits for that, as a condition)."""
    assert tailnet.socket_path
    with InProcessIrisgate(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("key-owners-stale"),
        identity="tailscale",
        tailscaled_socket=tailnet.socket_path,
        env={"IRISGATE_KEY_OWNER_MAX_AGE": "1s"},
    ) as short:
        key = make_key(short, ERIN_IP, "laptop")
        deadline = time.monotonic() + 60
        while whoami(short, STRANGER_IP, key)["groups"]:
            assert time.monotonic() < deadline, "stale attributes are still used"
            time.sleep(0.05)
        assert whoami(short, STRANGER_IP, key)["role"] is None


# -- two instances on PostgreSQL -------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0":
        pytest.skip("IRISGATE_TEST_POSTGRES=0")
    name = f"irisgate_owners_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_two_instances_follow_the_latest_sighting(
    pg_url: str,
    fake_llm: FakeLLM,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    fake = FakeLocalAPI()
    fake.add_user(CAROL_IP, "carol@example.com", "Carol", groups=("group:eng",))
    fake.start(str(tmp_path_factory.mktemp("ts-pg") / "tailscaled.sock"))
    assert fake.socket_path
    servers = [
        IrisgateServer(
            gateway_config(fake_llm.base_url),
            data_dir=tmp_path_factory.mktemp(f"owners-pg-{i}"),
            identity="tailscale",
            database=pg_url,
            tailscaled_socket=fake.socket_path,
        )
        for i in range(2)
    ]
    try:
        with servers[0] as first, servers[1] as second:
            key = make_key(first, CAROL_IP, "laptop")
            deadline = time.monotonic() + 30  # the bound is 2 s; a loaded machine may take longer
            while whoami(second, STRANGER_IP, key)["role"] != "user":
                assert time.monotonic() < deadline, "the other instance never saw Carol's group"
                time.sleep(0.05)
            claude(second, key)

            fake.add_user(CAROL_LATER_IP, "carol@example.com", "Carol")
            assert whoami(first, CAROL_LATER_IP)["groups"] == []  # seen on the first
            assert whoami(first, STRANGER_IP, key)["role"] is None  # at once there
            deadline = time.monotonic() + 30
            while whoami(second, STRANGER_IP, key)["role"] is not None:
                assert time.monotonic() < deadline, "the other instance kept the old group"
                time.sleep(0.05)
            with pytest.raises(anthropic.PermissionDeniedError):
                claude(second, key)
    finally:
        fake.stop()
