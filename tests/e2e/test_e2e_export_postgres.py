"""Export and readiness on PostgreSQL: two irisgate instances sharing one database export
every record exactly once between them; `/readyz` turns 503 while the database refuses
connections and 200 again when it is back, with requests still served.

PostgreSQL as in test_e2e_postgres.py (`IRISGATE_TEST_POSTGRES=0` skips this module).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Iterator

import asyncpg
import pytest
from conftest import ALICE_IP, BOB_IP, http_from
from sqlalchemy.engine import make_url
from test_e2e_export import (
    BUCKET,
    capture_ids,
    chat,
    export_config,
    process,
    wait_for_export,
    wait_until,
)

from irisgate.testing import FakeLLM, FakeLocalAPI, S3Server
from irisgate.testing.server import IrisgateServer

ADMIN_URL = os.environ.get(
    "IRISGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

pytestmark = pytest.mark.skipif(
    os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0", reason="IRISGATE_TEST_POSTGRES=0"
)


def admin(*statements: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=10)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """(database name, URL) of a fresh database, dropped afterwards."""
    name = f"irisgate_export_{secrets.token_hex(6)}"
    admin(f'CREATE DATABASE "{name}"')
    try:
        yield name, make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """The module's S3 server, empty but for the bucket (running, whatever the test before)."""
    s3_server.reset().create_bucket(BUCKET)
    return s3_server


def on_postgres(server: IrisgateServer, url: str) -> IrisgateServer:
    server.args += ["--database", url]
    return server


def test_two_instances_export_each_record_once(
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    s3: S3Server,
    pg: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = export_config(fake_llm.base_url, s3, limit=4)
    servers = [
        on_postgres(process(fake_llm, localapi, tmp_path_factory.mktemp(n), config), pg[1])
        for n in ("a", "b")
    ]
    for server in servers:
        server.start()
    try:
        ids: set[str] = set()

        def load(server: IrisgateServer) -> None:
            for n in range(6):
                ids.add(chat(server, f"instance load {n}"))

        threads = [threading.Thread(target=load, args=(s,)) for s in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(ids) == 12
        objects = wait_for_export(s3, ids)
    finally:
        for server in servers:
            server.stop()
    assert sorted(capture_ids(objects)) == sorted(ids)  # each exactly once


def test_readyz_follows_the_database(
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    s3: S3Server,
    pg: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    name, url = pg
    config = export_config(fake_llm.base_url, s3)
    server = on_postgres(process(fake_llm, localapi, tmp_path_factory.mktemp("r"), config), url)
    with server as gw:
        client = http_from(BOB_IP, gw.url)
        assert client.get("/readyz").status_code == 200

        admin(
            f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        try:
            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["status"] == "not ready"
            assert down.json()["checks"]["database"].startswith("unreachable")
            assert client.get("/healthz").status_code == 200  # the process is still up
            served = chat(gw, "served while the database is away")  # no db on this path
        finally:
            admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

        wait_until(lambda: client.get("/readyz").status_code == 200, "ready again")
        objects = wait_for_export(s3, {served})  # stored and exported once it is back
        assert http_from(ALICE_IP, gw.url).get(f"/api/requests/{served}").status_code == 200
    assert capture_ids(objects).count(served) == 1
