"""Two irisgate instances sharing one PostgreSQL database.

PostgreSQL is required by default (`IRISGATE_TEST_POSTGRES_URL`, default the local server's
maintenance database); `IRISGATE_TEST_POSTGRES=0` skips this module.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from conftest import (
    ALICE_IP,
    BOB_IP,
    OPENAI_KEY,
    anthropic_client,
    gateway_config,
    http_from,
    openai_client,
    wait_for_record,
)
from sqlalchemy.engine import make_url

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

ADMIN_URL = os.environ.get(
    "IRISGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

pytestmark = pytest.mark.skipif(
    os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0", reason="IRISGATE_TEST_POSTGRES=0"
)


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required for these tests and {ADMIN_URL} did not answer ({exc!r}); "
            "set IRISGATE_TEST_POSTGRES=0 to skip them.",
            pytrace=False,
        )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh, empty database, dropped afterwards."""
    name = f"irisgate_e2e_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def pair(
    pg_url: str,
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[IrisgateServer, IrisgateServer]]:
    """Instances A and B on the same database, started at the same time."""
    assert localapi.socket_path
    servers = [
        IrisgateServer(
            gateway_config(fake_llm.base_url),
            data_dir=tmp_path_factory.mktemp(f"pg-{name}"),
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
            database=pg_url,
        )
        for name in ("a", "b")
    ]
    errors: list[BaseException] = []

    def start(server: IrisgateServer) -> None:
        try:
            server.start()
        except BaseException as exc:  # reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not errors, errors
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def test_openai_and_anthropic_round_trip_on_postgres(
    pair: tuple[IrisgateServer, IrisgateServer], fake_llm: FakeLLM
) -> None:
    a, b = pair
    fake_llm.cached_tokens = 2
    raw = openai_client(a).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello postgres"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == " ".join(f"tok{i}" for i in range(20))
    # written by A, read back through B: one store
    record = wait_for_record(b, raw.headers["x-irisgate-request-id"])
    assert record["login_name"] == "alice@example.com"
    assert record["node_name"] == "alice-laptop"
    assert (record["model"], record["provider"], record["status"]) == ("gpt-4o-mini", "openai", 200)
    assert (record["input_tokens"], record["cache_read_tokens"], record["output_tokens"]) == (
        4,
        2,
        20,
    )
    assert record["cost_nanodollars"] > 0
    assert record["started_at"].endswith("Z")
    assert record["request_headers"]["authorization"] == "[redacted]"
    assert OPENAI_KEY not in json.dumps(record)
    assert record["response_body"] == raw.http_response.content.decode()

    with anthropic_client(b, BOB_IP).messages.stream(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "hello from bob"}],
        metadata={"user_id": "user_x_account_y_session_0b5e0000-1111-4222-8333-444455556666"},
    ) as stream:
        text = stream.get_final_text()
        request_id = stream.response.headers["x-irisgate-request-id"]
    record = wait_for_record(a, request_id)
    assert record["login_name"] == "bob@example.com"
    assert record["stream"] is True
    assert record["session_id"] == "0b5e0000-1111-4222-8333-444455556666"
    assert (record["input_tokens"], record["output_tokens"]) == (5, 20)  # 3 words + 2 cached
    assert record["cost_nanodollars"] > 0
    assert json.loads(record["response_body"])["content"][0]["text"] == text


def test_both_instances_record_everything_they_serve(
    pair: tuple[IrisgateServer, IrisgateServer], pg_url: str
) -> None:
    a, b = pair
    tag = uuid.uuid4().hex[:8]
    served = {"a": 0, "b": 0}
    last: dict[str, str] = {}
    for name, server, count in (("a", a, 12), ("b", b, 9)):
        client = openai_client(server)
        anth = anthropic_client(server)
        headers = {"x-session-id": f"{tag}-{name}"}
        for i in range(count):
            if i % 3 == 2:
                with anth.messages.stream(
                    model="claude-sonnet-4-5",
                    max_tokens=64,
                    messages=[{"role": "user", "content": f"turn {i}"}],
                    extra_headers=headers,
                ) as stream:
                    stream.get_final_text()
                    last[name] = stream.response.headers["x-irisgate-request-id"]
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"turn {i}"}],
                    stream=i % 3 == 1,
                    extra_headers=headers,
                )
                for _ in raw.parse() if i % 3 == 1 else ():
                    pass
                last[name] = raw.headers["x-irisgate-request-id"]
            served[name] += 1
    for name, server in (("a", a), ("b", b)):
        wait_for_record(server, last[name])

    deadline = time.monotonic() + 30  # only a stuck test waits this long
    while True:
        rows = asyncio.run(
            _fetch(
                pg_url,
                "SELECT session_id, count(*) AS n, count(c.request_id) AS captured "
                "FROM requests r LEFT JOIN captures c USING (request_id) "
                "WHERE session_id LIKE $1 GROUP BY session_id",
                f"{tag}-%",
            )
        )
        counts = {row["session_id"]: (row["n"], row["captured"]) for row in rows}
        if counts == {f"{tag}-a": (12, 12), f"{tag}-b": (9, 9)} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert counts == {f"{tag}-a": (12, 12), f"{tag}-b": (9, 9)}
    assert served == {"a": 12, "b": 9}

    # either instance lists all of them
    with http_from(ALICE_IP, a.url) as via_a, http_from(ALICE_IP, b.url) as via_b:
        for api in (via_a, via_b):
            for name, n in (("a", 12), ("b", 9)):
                listed = api.get("/api/requests", params={"session": f"{tag}-{name}"}).json()
                assert len(listed["requests"]) == n

    rollup = asyncio.run(
        _fetch(
            pg_url,
            "SELECT u.requests, u.total_tokens, s.n, s.tokens FROM usage_daily u JOIN ("
            "  SELECT (started_at AT TIME ZONE 'UTC')::date AS day, login_name, model, provider,"
            "         count(*) AS n, sum(total_tokens) AS tokens"
            "  FROM requests GROUP BY 1, 2, 3, 4) s USING (day, login_name, model, provider)",
        )
    )
    assert rollup
    assert all(
        (row["requests"], row["total_tokens"]) == (row["n"], row["tokens"]) for row in rollup
    )


def test_config_change_on_one_instance_reaches_the_other_within_2s(
    pair: tuple[IrisgateServer, IrisgateServer], fake_llm: FakeLLM
) -> None:
    a, b = pair
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "may I?"}]}
    with (
        http_from(ALICE_IP, a.url) as admin,
        http_from(BOB_IP, b.url) as bob_b,
        http_from(BOB_IP, a.url) as bob_a,
    ):
        refused = bob_b.post("/v1/chat/completions", json=request)
        assert refused.status_code == 403
        assert "not granted" in refused.json()["error"]["message"]

        current = admin.get("/api/config").json()
        config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])
        config["grants"].append(
            {
                "src": ["bob@example.com"],
                "app": {"tailscale.com/cap/aperture": [{"models": "openai/gpt-4o-mini"}]},
            }
        )
        put = admin.put(
            "/api/config", json={"config": json.dumps(config, indent=2), "hash": current["hash"]}
        )
        assert put.status_code == 200, put.text
        assert put.json()["version"] > current["version"]
        assert bob_a.post("/v1/chat/completions", json=request).status_code == 200

        # B polls for new versions: refused until it has applied this one, then served
        deadline = time.monotonic() + 30  # only a stuck test waits this long
        while (resp := bob_b.post("/v1/chat/completions", json=request)).status_code == 403:
            assert time.monotonic() < deadline, "instance B never applied the change"
            time.sleep(0.05)
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["content"].startswith("tok0")
        record = wait_for_record(b, resp.headers["x-irisgate-request-id"])
        assert record["config_version"] == put.json()["version"]
        assert b_version(b) == put.json()["version"]


def b_version(server: IrisgateServer) -> int:
    with http_from(ALICE_IP, server.url) as admin:
        version: int = admin.get("/api/config").json()["version"]
        return version
