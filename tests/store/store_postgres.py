"""PostgreSQL for the store tests: the server to use, and throwaway databases on it.

PostgreSQL is required by default: the server at `IRISGATE_TEST_POSTGRES_URL` (default
`postgresql://postgres@127.0.0.1:5432/postgres`, the maintenance database used to create
and drop the per-test databases) must answer, or the PostgreSQL tests fail saying so.
`IRISGATE_TEST_POSTGRES=0` skips them instead.
"""

from __future__ import annotations

import os
import secrets

import asyncpg
import pytest
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get(
    "IRISGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_OFF = os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(POSTGRES_OFF, reason="IRISGATE_TEST_POSTGRES=0"),
    ),
]


async def admin_connect() -> asyncpg.Connection:
    """A plain asyncpg connection to the maintenance database; fails the test clearly."""
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required for these tests and {ADMIN_URL} did not answer ({exc!r}). "
            "Start it (scripts/ensure-postgres), point IRISGATE_TEST_POSTGRES_URL at one, or "
            "set IRISGATE_TEST_POSTGRES=0 to skip the PostgreSQL runs.",
            pytrace=False,
        )


async def create_pg_database() -> str:
    """Create an empty database `irisgate_test_<random>`; returns its URL."""
    name = f"irisgate_test_{secrets.token_hex(6)}"
    admin = await admin_connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = await admin_connect()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
