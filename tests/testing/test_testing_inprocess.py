"""`InProcessIrisgate`: irisgate's app in the test's process answers an official SDK through
its client, with the identity and grants of a real start, and records what it relayed by the
end of its shutdown."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import openai

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate

APERTURE = "tailscale.com/cap/aperture"


def config(upstream: str) -> str:
    return json.dumps(
        {
            "providers": {
                "openai": {
                    "baseurl": upstream,
                    "models": ["gpt-4o-mini"],
                    "compatibility": {"openai_chat": True},
                }
            },
            "grants": [{"src": ["*"], "app": {APERTURE: [{"role": "user", "models": "**"}]}}],
        }
    )


def test_an_sdk_is_answered_in_process_and_the_request_recorded(
    fake: FakeLLM, tmp_path: Path
) -> None:
    fake.reply_text = "from the fake upstream"
    with InProcessIrisgate(config(fake.base_url), data_dir=tmp_path) as gw:
        sdk = openai.OpenAI(
            base_url=gw.url + "/v1", api_key="-", http_client=gw.client, max_retries=0
        )
        answer = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        me = gw.client.get("/api/whoami").json()
    assert answer.choices[0].message.content == "from the fake upstream"
    assert fake.last_request.json["model"] == "gpt-4o-mini"
    assert me["login_name"] == "dev@localhost"
    with sqlite3.connect(tmp_path / "irisgate.db") as db:
        models = [row[0] for row in db.execute("SELECT model FROM requests")]
    assert models == ["gpt-4o-mini"]


def test_clients_from_other_addresses_are_the_tailnet_users_of_those_addresses(
    fake: FakeLLM, tmp_path: Path
) -> None:
    localapi = FakeLocalAPI()
    localapi.add_user("127.0.0.2", "alice@example.com", "Alice")
    localapi.add_user("127.0.0.3", "bob@example.com", "Bob")
    localapi.start(str(tmp_path / "tailscaled.sock"))
    try:
        with InProcessIrisgate(
            config(fake.base_url),
            data_dir=tmp_path / "data",
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
        ) as gw:
            alice = gw.client_from("127.0.0.2").get("/api/whoami").json()
            bob = openai.OpenAI(
                base_url=gw.url + "/v1",
                api_key="-",
                http_client=gw.client_from("127.0.0.3"),
                max_retries=0,
            ).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            stranger = gw.client.get("/api/whoami")  # 127.0.0.1: not on the tailnet
    finally:
        localapi.stop()
    assert alice["login_name"] == "alice@example.com"
    assert stranger.status_code == 403
    with sqlite3.connect(tmp_path / "data" / "irisgate.db") as db:
        logins = [row[0] for row in db.execute("SELECT login_name FROM requests")]
    assert bob.http_response.status_code == 200
    assert logins == ["bob@example.com"]
