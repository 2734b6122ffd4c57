"""`irisgate db upgrade` / `db check`, and `serve` against schemas it must not use.

Run as an operator runs them (the real command line, a real database on SQLite and
PostgreSQL); the exit codes are what deploy scripts act on.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from alembic import command
from operator_cli import irisgate
from sqlalchemy import text
from sqlalchemy.engine import Connection

from irisgate.store import configs
from irisgate.store.database import (
    SCHEMA_HEAD,
    _alembic_config,
    current_revision,
    open_database,
)
from irisgate.store.tables import requests
from irisgate.testing.server import IrisgateServer

CONFIG = '{"grants": [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "admin"}]}}]}'


async def _revision(url: str) -> str | None:
    db = await open_database(url, migrate=False)
    try:
        return await current_revision(db)
    finally:
        await db.close()


async def _old_database_with_data(url: str, revision: str) -> None:
    """A database an older irisgate left: its migrations up to `revision`, a config version
    and a recorded request."""
    db = await open_database(url, migrate=False)
    try:

        def upgrade(conn: Connection) -> None:
            command.upgrade(_alembic_config(conn), revision)

        async with db.begin() as conn:
            await conn.run_sync(upgrade)
        await configs.insert(db, CONFIG, "alice", "api", None)
        async with db.begin() as conn:
            await conn.execute(
                requests.insert().values(
                    request_id="req-from-the-old-release",
                    started_at=datetime.now(UTC),
                    login_name="alice@example.com",
                    provider="openai",
                    model="gpt-4o-mini",
                )
            )
    finally:
        await db.close()


async def _set_revision(url: str, revision: str) -> None:
    db = await open_database(url)
    try:
        async with db.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    finally:
        await db.close()


def test_check_then_upgrade_an_empty_database(db_url: str) -> None:
    check = irisgate("db", "check", "--database", db_url)
    assert check.returncode == 1, check.stderr
    if db_url.startswith("sqlite"):  # checking never creates the file
        path = db_url.removeprefix("sqlite:///")
        assert check.stderr.startswith(f"irisgate: no SQLite database at {path} yet: ")
        assert not Path(path).exists()
    else:
        assert "no schema yet (empty database): run `irisgate db upgrade`" in check.stdout

    upgrade = irisgate("db", "upgrade", "--database", db_url)
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.rstrip().endswith(f"schema upgraded from empty to {SCHEMA_HEAD}")

    again = irisgate("db", "upgrade", "--database", db_url)
    assert again.returncode == 0
    assert again.stdout.rstrip().endswith(f"schema {SCHEMA_HEAD}, already current")

    check = irisgate("db", "check", "--database", db_url)
    assert check.returncode == 0
    assert check.stdout.rstrip().endswith(f"schema {SCHEMA_HEAD}, current")


def test_upgrading_an_older_release_database_keeps_and_serves_its_records(
    db_url: str, tmp_path: Path
) -> None:
    asyncio.run(_old_database_with_data(db_url, "0006"))

    check = irisgate("db", "check", "--database", db_url)
    assert check.returncode == 1
    assert f"schema 0006, behind this irisgate's {SCHEMA_HEAD}: run `irisgate db upgrade`" in (
        check.stdout
    )
    upgrade = irisgate("db", "upgrade", "--database", db_url)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"schema upgraded from 0006 to {SCHEMA_HEAD}" in upgrade.stdout

    # serving without migrating: the schema is now this version's
    with IrisgateServer(
        None, data_dir=tmp_path / "gw", database=db_url, env={"IRISGATE_MIGRATE": "false"}
    ) as gw:
        record = httpx2.get(gw.url + "/api/requests/req-from-the-old-release", timeout=30)
        assert record.status_code == 200, record.text
        assert record.json()["model"] == "gpt-4o-mini"
        config = httpx2.get(gw.url + "/api/config", timeout=30)
        assert config.json()["config"] == CONFIG


def test_instances_upgrading_together_all_succeed(db_url: str) -> None:
    async def upgrade_three() -> list[int]:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "irisgate",
                "db",
                "upgrade",
                "--database",
                db_url,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        return [await proc.wait() for proc in procs]

    assert asyncio.run(upgrade_three()) == [0, 0, 0]
    assert asyncio.run(_revision(db_url)) == SCHEMA_HEAD


def test_a_schema_newer_than_this_irisgate_is_refused_and_left_alone(
    db_url: str, tmp_path: Path
) -> None:
    asyncio.run(_set_revision(db_url, "0042"))

    check = irisgate("db", "check", "--database", db_url)
    assert check.returncode == 3
    assert f"schema 0042, newer than this irisgate knows ({SCHEMA_HEAD})" in check.stdout
    upgrade = irisgate("db", "upgrade", "--database", db_url)
    assert upgrade.returncode == 3
    assert "newer than this irisgate knows" in upgrade.stderr

    server = IrisgateServer(None, data_dir=tmp_path / "gw", database=db_url)
    with pytest.raises(RuntimeError, match="irisgate exited") as failed:
        server.start()
    assert (
        "the database schema is at revision 0042, newer than this irisgate knows"
        f" (its newest is {SCHEMA_HEAD})"
    ) in str(failed.value)
    assert asyncio.run(_revision(db_url)) == "0042"


def test_serve_without_migrating_refuses_an_old_schema(db_url: str, tmp_path: Path) -> None:
    asyncio.run(_old_database_with_data(db_url, "0006"))
    server = IrisgateServer(
        None, data_dir=tmp_path / "gw", database=db_url, extra_args=("--migrate", "false")
    )
    with pytest.raises(RuntimeError, match="irisgate exited") as failed:
        server.start()
    assert (
        f"the database schema is at 0006 and this irisgate needs {SCHEMA_HEAD}:"
        " run `irisgate db upgrade` first"
    ) in str(failed.value)
    assert asyncio.run(_revision(db_url)) == "0006"


def test_an_unreachable_database_is_named_with_exit_2(tmp_path: Path) -> None:
    check = irisgate("db", "check", "--database", "postgresql://irisgate:s3cret@127.0.0.1:1/gw")
    assert check.returncode == 2
    assert check.stderr.startswith("irisgate: cannot reach the database: ")
    assert "Connect call failed" in check.stderr
    assert "s3cret" not in check.stderr + check.stdout
