"""The PostgreSQL pool of each instance: its size is a setting, checked against the server's
`max_connections` at start, and its pressure is reported by `/readyz`."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator

import pytest
from conftest import BOB_IP, gateway_config, http_from
from sqlalchemy.engine import make_url
from test_e2e_postgres import ADMIN_URL, _admin, _fetch

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

WARNING = "PostgreSQL connections could run out"


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"irisgate_pool_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_instances_whose_pools_could_exceed_max_connections_are_warned_about(
    pg_url: str,
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    [row] = asyncio.run(_fetch(pg_url, "SELECT current_setting('max_connections')::int AS n"))
    half = row["n"] // 2 + 1  # two such pools are more than the server allows
    assert localapi.socket_path
    servers = [
        IrisgateServer(
            gateway_config(fake_llm.base_url),
            data_dir=tmp_path_factory.mktemp(f"pool-{n}"),
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
            database=pg_url,
            env={"IRISGATE_DB_POOL_SIZE": str(half)},
        )
        for n in range(2)
    ]
    first, second = servers
    with first:
        ready = http_from(BOB_IP, first.url).get("/readyz")
        assert ready.status_code == 200
        assert re.fullmatch(rf"ok: \d+/{half}", ready.json()["checks"]["database_pool"])
        with second:
            pass
    warnings = [
        json.loads(line)
        for line in second.logs().splitlines()
        if line.startswith("{") and WARNING in line
    ]
    assert len(warnings) == 1, second.logs()
    assert f"with --db-pool-size {half} may open" in warnings[0]["event"]
    assert warnings[0]["level"] == "warning"
    assert warnings[0]["irisgate_processes"] >= 2
