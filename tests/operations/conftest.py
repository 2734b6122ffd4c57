"""Fixtures for the operator commands: a real `irisgate` command line, and an empty database
on each backend (SQLite file, throwaway PostgreSQL database; see tests/store/store_postgres.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# the PostgreSQL helpers the store tests use (tests/ is not a package)
sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from store_postgres import BACKENDS, create_pg_database, drop_pg_database


def irisgate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `irisgate ARGS...` as an operator does; never raises on a nonzero exit."""
    return subprocess.run(
        [sys.executable, "-m", "irisgate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


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
