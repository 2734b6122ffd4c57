"""While PostgreSQL refuses connections, the management API answers 503 in its own envelope
(as its OpenAPI document says), names no database detail, and serves again once it is back."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx2
import pytest
from sqlalchemy.engine import make_url

from irisgate.testing.server import IrisgateServer

ADMIN_URL = os.environ.get(
    "IRISGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ADMIN = {"Tailscale-User-Login": "alice@example.com"}
READS = (
    "/api/requests",
    "/api/usage/summary",
    "/api/config/versions",
    "/api/quotas",
    "/api/chat/conversations",
)

pytestmark = pytest.mark.skipif(
    os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0", reason="IRISGATE_TEST_POSTGRES=0"
)


def admin_sql(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"irisgate_outage_{secrets.token_hex(6)}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def gateway(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    url = make_url(ADMIN_URL).set(database=database).render_as_string(hide_password=False)
    grant = {"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "admin"}]}}
    server = IrisgateServer(
        json.dumps({"providers": {}, "grants": [grant]}),
        data_dir=Path(tmp_path_factory.mktemp("outage")),
        identity="serve",
        database=url,
    )
    with server:
        yield server


def test_the_api_answers_503_while_the_database_is_away(
    gateway: IrisgateServer, database: str
) -> None:
    with httpx2.Client(base_url=gateway.url, headers=ADMIN, timeout=60) as client:
        assert [client.get(p).status_code for p in READS] == [200] * len(READS)
        admin_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}'"
            )
            away = [client.get(p) for p in READS]
            whoami = client.get("/api/whoami")  # needs no database
        finally:
            admin_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        back = [client.get(p).status_code for p in READS]
        document = client.get("/api/openapi.json").json()
    for response in away:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error.startswith("the database is unavailable"), error
        assert database not in error and "SELECT" not in error
    assert whoami.status_code == 200
    assert back == [200] * len(READS)
    for path in READS:
        assert "503" in document["paths"][path]["get"]["responses"], path
    assert "503" not in document["paths"]["/api/whoami"]["get"]["responses"]
    assert gateway.logs().count("is unavailable:") == 1  # said once, not per request
