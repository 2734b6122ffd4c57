"""Run the real `irisgate` command line as an operator does, and the PostgreSQL helpers of
the store tests (imported by the tests here; tests/ is not a package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from store_postgres import BACKENDS, create_pg_database, drop_pg_database

__all__ = ["BACKENDS", "create_pg_database", "drop_pg_database", "irisgate"]


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
