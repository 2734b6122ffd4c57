"""API keys across two instances on one PostgreSQL, in identity mode `keys` (issue 19).

Nobody is known by the network: the first key is made with `irisgate keys create` on the
database, as an operator would. A key made on one instance works on the other at once; a key
revoked on one is refused there at once and on the other within the config convergence
bound (2 s: the key generation is polled with the config, every second), which the test
waits for as a condition. A browser signed in with a key is known on both instances, and
revoking the key ends its session on both the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest
from sqlalchemy.engine import make_url
from test_e2e_postgres import ADMIN_URL, _admin

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

pytestmark = pytest.mark.skipif(
    os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0", reason="IRISGATE_TEST_POSTGRES=0"
)
ADMIN = "admin@example.com"


def _config(upstream: str) -> str:
    aperture = "tailscale.com/cap/aperture"
    return json.dumps(
        {
            "providers": {
                "openai": {
                    "baseurl": upstream,
                    "apikey": "sk-upstream",
                    "models": ["gpt-4o-mini"],
                    "compatibility": {"openai_chat": True},
                }
            },
            "grants": [
                {"src": [ADMIN], "app": {aperture: [{"role": "admin"}, {"models": "**"}]}},
                {"src": ["*"], "app": {aperture: [{"role": "user"}, {"models": "**"}]}},
            ],
        }
    )


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    name = f"irisgate_keys_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def pair(
    pg_url: str, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[IrisgateServer, IrisgateServer]]:
    servers = [
        IrisgateServer(
            _config(fake_llm.base_url),
            data_dir=tmp_path_factory.mktemp(f"keys-pg-{i}"),
            identity="keys",
            database=pg_url,
        )
        for i in range(2)
    ]
    with servers[0], servers[1]:
        yield servers[0], servers[1]


@pytest.fixture(scope="module")
def admin_key(pair: tuple[IrisgateServer, IrisgateServer], pg_url: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "irisgate", "keys", "create", ADMIN, "--name", "bootstrap"],
        env={**os.environ, "IRISGATE_DATABASE": pg_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    secret = made.stdout.strip()
    assert secret.startswith("irisgate_")
    return secret


def client(gw: IrisgateServer, key: str | None = None) -> httpx2.Client:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.Client(base_url=gw.url, headers=headers, timeout=30)


def chat(gw: IrisgateServer, key: str) -> None:
    llm = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_without_a_key_nobody_is_known(pair: tuple[IrisgateServer, IrisgateServer]) -> None:
    first, _ = pair
    answer = client(first).get("/api/whoami")
    assert answer.status_code == 401
    assert "API key is required" in answer.json()["error"]
    with pytest.raises(openai.AuthenticationError):
        chat(first, "-")


def test_a_key_made_on_one_instance_is_revoked_on_both(
    pair: tuple[IrisgateServer, IrisgateServer], admin_key: str
) -> None:
    first, second = pair
    assert client(second, admin_key).get("/api/whoami").json()["login_name"] == ADMIN
    made = client(first, admin_key).post(
        "/api/keys", json={"name": "ci", "owner": "ci-bot@service"}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    chat(second, key["secret"])  # made on the first, used on the second at once
    chat(first, key["secret"])  # and the second now holds it in memory too
    assert client(first, admin_key).delete(f"/api/keys/{key['id']}").status_code == 200
    with pytest.raises(openai.AuthenticationError):  # at once where it was revoked
        chat(first, key["secret"])
    deadline = time.monotonic() + 30  # the bound is 2 s; a loaded machine may take longer
    while client(second, key["secret"]).get("/api/whoami").status_code != 401:
        assert time.monotonic() < deadline, "the other instance still accepts a revoked key"
        time.sleep(0.05)
    listed = client(second, admin_key).get("/api/keys", params={"all": "1"}).json()
    revoked = next(k for k in listed if k["id"] == key["id"])
    assert revoked["revoked_at"] and revoked["owner"] == "ci-bot@service"


def test_a_browser_signed_in_with_a_key_is_known_on_both_until_the_key_is_revoked(
    pair: tuple[IrisgateServer, IrisgateServer], admin_key: str
) -> None:
    """Mode keys' sign-in: the session made on one instance works on the other (one
    sessions table), and revoking its key ends it on both within the convergence bound."""
    first, second = pair
    made = client(first, admin_key).post("/api/keys", json={"name": "browser"}).json()
    signed = httpx2.post(f"{first.url}/auth/login", data={"key": made["secret"]})
    assert signed.status_code == 303, signed.text
    session = {"irisgate_session": signed.cookies["irisgate_session"]}
    on_second = httpx2.get(f"{second.url}/api/whoami", cookies=session).json()
    assert (on_second["login_name"], on_second["key"]["id"]) == (ADMIN, made["id"])
    assert client(first, admin_key).delete(f"/api/keys/{made['id']}").status_code == 200
    assert httpx2.get(f"{first.url}/api/whoami", cookies=session).status_code == 401
    deadline = time.monotonic() + 30  # the bound is 2 s; a loaded machine may take longer
    while httpx2.get(f"{second.url}/api/whoami", cookies=session).status_code != 401:
        assert time.monotonic() < deadline, "the other instance kept the revoked key's session"
        time.sleep(0.05)
    page = httpx2.get(f"{second.url}/ui/dashboard", cookies=session)
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")
