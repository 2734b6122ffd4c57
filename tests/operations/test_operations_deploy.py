"""The recipes of docs/deploy.md, run: the systemd unit as written verifies, and backups taken
with the documented commands restore into a fresh database that a new irisgate serves.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from operator_cli import create_pg_database, drop_pg_database
from sqlalchemy.engine import make_url

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
BINARY = "/opt/irisgate/venv/bin/irisgate"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def _block(language: str, containing: str) -> str:
    """The fenced `language` block of docs/deploy.md that contains `containing`."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", DEPLOY, re.MULTILINE | re.DOTALL)
    (found,) = [b for b in blocks if containing in b]
    return str(found)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = _block("ini", "[Service]")
    assert f"ExecStart={BINARY} serve " in unit
    # the unit as written, except that the binary is one that exists here
    stub = tmp_path / "irisgate"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    (tmp_path / "units").mkdir()
    path = tmp_path / "units" / "irisgate.service"
    path.write_text(unit.replace(BINARY, str(stub)))
    run = subprocess.run(
        ["systemd-analyze", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout + run.stderr == ""  # no unknown key, no bad value


def _config(upstream: str) -> str:
    provider = {"baseurl": upstream, "apikey": "sk-backup", "models": ["gpt-4o-mini"]}
    capabilities = [{"role": "admin"}, {"models": "**"}]
    grant = {"src": ["*"], "app": {"tailscale.com/cap/aperture": capabilities}}
    return json.dumps({"providers": {"openai": provider}, "grants": [grant]})


def _record_one_request(gw: IrisgateServer) -> str:
    with httpx2.Client(base_url=gw.url, timeout=30) as http:
        answer = http.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "back me up"}]},
        )
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-irisgate-request-id"]
        deadline = time.monotonic() + 30
        while http.get(f"/api/requests/{request_id}").status_code != 200:
            assert time.monotonic() < deadline, "the request was never recorded"
            time.sleep(0.05)
    return request_id


def _shell(command: str, **replace: str) -> None:
    for name, value in replace.items():
        command = command.replace(name, value)
    subprocess.run(["sh", "-ec", command], check=True, timeout=300, capture_output=True)


def _line(block: str, starting: str) -> str:
    (line,) = [line for line in block.splitlines() if line.startswith(starting)]
    return line


def _backup_sqlite(gw: IrisgateServer, tmp_path: Path) -> str:
    command = _line(_block("sh", ".backup"), "sqlite3 ")
    _shell(
        command,
        **{
            "/var/lib/irisgate/irisgate.db": str(gw.data_dir / "irisgate.db"),
            "/backup/irisgate.db": str(tmp_path / "backup.db"),
        },
    )
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copyfile(tmp_path / "backup.db", restored / "irisgate.db")
    return f"sqlite:///{restored / 'irisgate.db'}"


def _backup_postgres(url: str, tmp_path: Path) -> str:
    block = _block("sh", "pg_dump")
    fresh = asyncio.run(create_pg_database())
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = str(make_url(fresh).database)
    _shell(
        _line(block, "pg_dump "),
        **{'"$IRISGATE_DATABASE"': plain, "/backup/irisgate.dump": str(tmp_path / "pg.dump")},
    )
    _shell(
        _line(block, "pg_restore "),
        **{
            "--dbname=irisgate_restored": "--dbname="
            + make_url(fresh).set(drivername="postgresql").render_as_string(hide_password=False),
            "/backup/irisgate.dump": str(tmp_path / "pg.dump"),
        },
    )
    assert name.startswith("irisgate_test_")
    return fresh


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_backup_and_restore(backend: str, tmp_path: Path, fake_llm: FakeLLM) -> None:
    source = None if backend == "sqlite" else asyncio.run(create_pg_database())
    restored = None
    try:
        with IrisgateServer(
            _config(fake_llm.base_url), data_dir=tmp_path / "live", database=source
        ) as live:
            request_id = _record_one_request(live)
            # taken while serving, as documented
            if source is None:
                restored = _backup_sqlite(live, tmp_path)
            else:
                restored = _backup_postgres(source, tmp_path)
        with IrisgateServer(
            None,
            data_dir=tmp_path / "again",
            database=restored,
            env={"IRISGATE_MIGRATE": "false"},
        ) as again:
            record = httpx2.get(f"{again.url}/api/requests/{request_id}", timeout=30)
            assert record.status_code == 200, record.text
            assert record.json()["model"] == "gpt-4o-mini"
    finally:
        for url in (source, restored if backend == "postgresql" else None):
            if url:
                asyncio.run(drop_pg_database(url))
