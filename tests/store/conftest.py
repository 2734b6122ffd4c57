"""Fixtures for the store tests: every test that takes `db_url` or `db` runs twice, against
SQLite (a file in the test's tmp_path) and against PostgreSQL (a fresh database created for
the test and dropped afterwards; see store_postgres.py for the server it needs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from store_postgres import BACKENDS, create_pg_database, drop_pg_database
from store_records import new_spool

from irisgate.store.database import Database, open_database
from irisgate.telemetry.spool import Spool


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """The URL of an empty database (nothing migrated yet) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/data/irisgate.db"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """An opened (migrated) database on each backend."""
    database = await open_database(db_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def spool(tmp_path: Any) -> Spool:
    """An opened record spool in the test's tmp_path (closed by the writer's drain)."""
    return new_spool(tmp_path / "spool")
