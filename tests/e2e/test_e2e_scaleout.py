"""Four irisgate instances on one PostgreSQL, started together, under one burst of load.

After the instances stop (SIGTERM), every request is recorded exactly once and every quota
bucket, shared and per-user, has been debited exactly the recorded costs of the requests that
charged it. A config change made through one instance reaches all four. Nothing here waits
for a time: each step waits for a condition (health, a config version) or for the stops.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from conftest import ALICE_IP, BOB_IP, CI_IP, GROUP_IP, gateway_config, http_from
from sqlalchemy.engine import make_url
from test_e2e_postgres import ADMIN_URL, _admin, _fetch

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

INSTANCES = 4
PER_CLIENT = 30  # requests of each caller, spread over the instances
CALLERS = {
    ALICE_IP: "alice@example.com",
    BOB_IP: "bob@example.com",
    GROUP_IP: "carol@example.com",
    CI_IP: "tag:ci,tag:prod",
}
TEAM = 1_000_000_000  # "$1": never runs out here
PER_USER = 200_000  # "$0.0002": about a dozen answers of the fake, so users run out


def _config(upstream: str) -> str:
    config = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config["quotas"] = {
        "team": {"capacity": "$1", "rate": "$0/day"},
        "user-<user>": {"capacity": "$0.0002", "rate": "$0/day"},
    }
    quotas = [{"bucket": "team"}, {"bucket": "user-<user>"}]
    config["grants"] = [
        {
            "src": ["alice@example.com"],
            "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
        },
        {
            "src": ["*"],
            "app": {
                "tailscale.com/cap/aperture": [{"role": "user"}, {"models": "**", "quotas": quotas}]
            },
        },
    ]
    return json.dumps(config)


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"irisgate_scale_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fleet(
    pg_url: str,
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[IrisgateServer]]:
    """The instances, started at the same time on one new database."""
    assert localapi.socket_path
    config = _config(fake_llm.base_url)
    servers = [
        IrisgateServer(
            config,
            data_dir=tmp_path_factory.mktemp(f"scale-{n}"),
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
            database=pg_url,
        )
        for n in range(INSTANCES)
    ]
    errors: list[BaseException] = []

    def start(server: IrisgateServer) -> None:
        try:
            server.start(timeout=120)
        except BaseException as exc:  # reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors
        yield servers
    finally:
        for server in servers:
            server.stop()


async def _burst(urls: list[str]) -> dict[str, list[int]]:
    """Every caller's requests at once, round-robin over the instances; statuses by caller."""

    async def caller(ip: str) -> list[int]:
        transport = httpx2.AsyncHTTPTransport(local_address=ip)
        async with httpx2.AsyncClient(transport=transport, timeout=120) as http:
            clients = [
                openai.AsyncOpenAI(base_url=u + "/v1", api_key="-", http_client=http, max_retries=0)
                for u in urls
            ]

            async def one(i: int) -> int:
                try:
                    await clients[i % len(clients)].chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": f"request {i}"}],
                        max_tokens=20,
                    )
                except openai.RateLimitError:
                    return 429
                return 200

            return await asyncio.gather(*(one(i) for i in range(PER_CLIENT)))

    results = await asyncio.gather(*(caller(ip) for ip in CALLERS))
    return {CALLERS[ip]: statuses for ip, statuses in zip(CALLERS, results, strict=True)}


def _version(server: IrisgateServer) -> int:
    with http_from(ALICE_IP, server.url) as admin:
        version: int = admin.get("/api/config").json()["version"]
        return version


def _change_config(servers: list[IrisgateServer]) -> int:
    """A new config version through the first instance; waits until every instance has it."""
    with http_from(ALICE_IP, servers[0].url) as admin:
        current = admin.get("/api/config").json()
        config = json.loads(current["config"])
        config["quotas"]["team"]["capacity"] = "$2"
        put = admin.put("/api/config", json={"config": json.dumps(config), "hash": current["hash"]})
        assert put.status_code == 200, put.text
        version: int = put.json()["version"]
    for server in servers:
        while _version(server) != version:
            time.sleep(0.05)
    return version


def test_four_instances_record_once_debit_exactly_and_converge(
    fleet: list[IrisgateServer], pg_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.first_byte_delay = 0.01  # keep requests of all instances in flight together
    statuses = asyncio.run(_burst([s.url for s in fleet]))
    for login, got in statuses.items():
        assert sorted(set(got)) in ([200], [200, 429]), (login, got)
        assert 429 in got, f"{login}'s own bucket must run out"
    version = _change_config(fleet)
    for server in fleet:  # SIGTERM: leases back, spending reported, records written
        assert server.stop() == 0
    rows = asyncio.run(
        _fetch(
            pg_url,
            "SELECT login_name, count(*) AS n, count(DISTINCT request_id) AS ids, "
            "count(*) FILTER (WHERE status = 200) AS ok, "
            "COALESCE(SUM(cost_nanodollars), 0) AS cost FROM requests GROUP BY login_name",
        )
    )
    recorded: dict[str, Any] = {row["login_name"]: row for row in rows}
    assert set(recorded) == set(CALLERS.values())
    for login, got in statuses.items():
        row = recorded[login]
        assert row["n"] == row["ids"] == PER_CLIENT, "every request recorded exactly once"
        assert row["ok"] == got.count(200)
    buckets = {
        row["name"]: int(row["balance_nanodollars"])
        for row in asyncio.run(_fetch(pg_url, "SELECT * FROM quota_buckets"))
    }
    leases = asyncio.run(_fetch(pg_url, "SELECT * FROM quota_leases"))
    assert [dict(lease) for lease in leases] == [], "every lease was given back"
    debited = {name: (TEAM if name == "team" else PER_USER) - b for name, b in buckets.items()}
    expected = {f"user-{login}": int(recorded[login]["cost"]) for login in CALLERS.values()}
    expected["team"] = sum(int(row["cost"]) for row in rows)
    assert debited == expected
    [config_row] = asyncio.run(_fetch(pg_url, "SELECT max(id) AS id FROM config_versions"))
    assert config_row["id"] == version
