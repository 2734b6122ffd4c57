"""Fixtures for the operator commands: an empty database on each backend (SQLite file,
throwaway PostgreSQL database; see tests/store/store_postgres.py). The command line itself:
operator_cli.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from operator_cli import BACKENDS, create_pg_database, drop_pg_database


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database (nothing migrated yet) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/data/irisgate.db"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)
