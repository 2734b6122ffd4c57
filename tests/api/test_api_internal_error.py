"""An unexpected error in a management handler answers a JSON 500 that names a request id
and no internals (no exception text, no SQL), and is logged once with its traceback; the
connection is not reset.

The error is made real: the test renames a column of irisgate's `requests` table in a
private PostgreSQL database, so listing requests fails with a statement error (not an
outage, which answers 503)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
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
LOGIN = "Tailscale-User-Login: alice@example.com"

pytestmark = pytest.mark.skipif(
    os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0", reason="IRISGATE_TEST_POSTGRES=0"
)


def run_sql(url: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def exchange(sock: socket.socket, path: str) -> bytes:
    """One keep-alive GET on an open connection: its answer's head and body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{LOGIN}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-answer"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"irisgate_error_{secrets.token_hex(6)}"
    run_sql(ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        run_sql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def gateway(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    grant = {"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "admin"}]}}
    server = IrisgateServer(
        json.dumps({"providers": {}, "grants": [grant]}),
        data_dir=Path(tmp_path_factory.mktemp("internal-error")),
        identity="serve",
        database=database,
    )
    with server:
        yield server


def test_an_unexpected_error_answers_a_json_500_naming_no_internals(
    gateway: IrisgateServer, database: str
) -> None:
    with httpx2.Client(base_url=gateway.url, headers=ADMIN, timeout=60) as client:
        assert client.get("/api/requests").status_code == 200
        run_sql(database, "ALTER TABLE requests RENAME COLUMN model TO model_renamed")
        resp = client.get("/api/requests")
        assert resp.status_code == 500
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        assert list(body) == ["error"]
        match = re.fullmatch(r"internal error \(request id (req_\w+)\)", body["error"])
        assert match, body
        for internal in ("model", "SELECT", "column", "asyncpg", "postgres", "Traceback"):
            assert internal not in resp.text
    # the connection the 500 went over still serves: the error did not close (reset) it
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        first = exchange(sock, "/api/requests")
        assert first.startswith(b"HTTP/1.1 500 ") and b"connection: close" not in first.lower()
        assert exchange(sock, "/api/config/versions").startswith(b"HTTP/1.1 200 ")
    logs = gateway.logs()
    assert logs.count(match.group(1)) == 1, logs
    logged = next(line for line in logs.splitlines() if match.group(1) in line)
    assert "Traceback" in logged and "model_renamed" not in resp.text
    assert "Exception in ASGI application" not in logs
