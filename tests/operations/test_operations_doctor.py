"""`irisgate doctor` against a good setup and broken ones: the lines an operator reads.

Real command line, real databases, the fake tailscaled (LocalAPI on a unix socket) and the
fake LLM vendor for `--probe`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_cli import irisgate

from irisgate.store.database import SCHEMA_HEAD
from irisgate.testing import FakeLLM, FakeLocalAPI

KEY = "sk-doctor-secret-key-1234"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def tailscaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLocalAPI]:
    fake = FakeLocalAPI()
    fake.start(str(tmp_path_factory.mktemp("ts") / "tailscaled.sock"))
    yield fake
    fake.stop()


def _config(tmp_path: Path, upstream: str) -> Path:
    path = tmp_path / "config.hujson"
    config = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": "env:DOCTOR_OPENAI_KEY",
                "models": ["gpt-4o-mini"],
            },
            "anthropic": {
                "baseurl": upstream,
                "apikey": "env:DOCTOR_ANTHROPIC_KEY",
                "authorization": "x-api-key",
                "models": ["claude-haiku-4-5"],
                "compatibility": {"anthropic_messages": True},
            },
        },
        "grants": [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "admin"}]}}],
    }
    path.write_text("// doctor test\n" + json.dumps(config), encoding="utf-8")
    return path


def _lines(output: str) -> list[str]:
    return output.splitlines()


def test_a_good_setup_passes_with_probes(
    tmp_path: Path, fake_llm: FakeLLM, tailscaled: FakeLocalAPI
) -> None:
    fake_llm.reset()
    fake_llm.api_key = KEY
    assert irisgate("db", "upgrade", "--data-dir", str(tmp_path)).returncode == 0
    run = irisgate(
        "doctor",
        "--probe",
        "--data-dir",
        str(tmp_path),
        "--config",
        str(_config(tmp_path, fake_llm.base_url)),
        "--identity",
        "tailscale",
        "--tailscaled-socket",
        str(tailscaled.socket_path),
        env={"DOCTOR_OPENAI_KEY": KEY, "DOCTOR_ANTHROPIC_KEY": KEY},
    )
    lines = _lines(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert lines[0].startswith("ok   database: sqlite+aiosqlite:///") and lines[0].endswith(
        f"schema {SCHEMA_HEAD}, current"
    )
    assert f"ok   config: {tmp_path}/config.hujson is valid" in lines
    assert f"ok   tailscaled: {tailscaled.socket_path}: this node is ai.example.ts.net" in lines
    assert "ok   tailscaled: WhoIs answers" in lines
    assert "ok   provider openai: key resolves (env:DOCTOR_OPENAI_KEY)" in lines
    assert "ok   provider anthropic: key resolves (env:DOCTOR_ANTHROPIC_KEY)" in lines
    probes = sorted(line.split(" in ")[0] for line in lines if line.startswith("ok   probe"))
    assert probes == [
        "ok   probe anthropic: claude-haiku-4-5 answered HTTP 200",
        "ok   probe openai: gpt-4o-mini answered HTTP 200",
    ]
    assert lines[-1] == "everything checked is fine"
    assert {r.path for r in fake_llm.requests} == {"/v1/chat/completions", "/v1/messages"}
    assert KEY not in run.stdout + run.stderr


def test_a_broken_setup_says_what_to_fix(tmp_path: Path, fake_llm: FakeLLM) -> None:
    fake_llm.reset()
    fake_llm.api_key = KEY
    run = irisgate(
        "doctor",
        "--probe",
        "--database",
        "postgresql://irisgate:pg-password@127.0.0.1:1/irisgate",
        "--config",
        str(_config(tmp_path, fake_llm.base_url)),
        "--identity",
        "tailscale",
        "--tailscaled-socket",
        str(tmp_path / "missing.sock"),
        env={"DOCTOR_OPENAI_KEY": "sk-wrong-key"},
    )
    lines = _lines(run.stdout)
    assert run.returncode == 1
    assert lines[0].startswith("FIX  database: cannot reach the database: ")
    assert lines[0].endswith(": check --database / IRISGATE_DATABASE")
    assert (
        f"FIX  tailscaled: cannot reach tailscaled at {tmp_path}/missing.sock (no such socket):"
        " start tailscaled, or set --tailscaled-socket / IRISGATE_TAILSCALED_SOCKET to its socket"
    ) in lines
    assert (
        "FIX  provider anthropic: apikey env:DOCTOR_ANTHROPIC_KEY is not set: set it where"
        " irisgate runs, or disable the provider"
    ) in lines
    assert "ok   provider openai: key resolves (env:DOCTOR_OPENAI_KEY)" in lines
    assert [line for line in lines if "probe" in line] == [
        "FIX  probe openai: gpt-4o-mini answered HTTP 401: Incorrect API key provided."
    ]
    assert lines[-1] == "4 problem(s) to fix"
    output = run.stdout + run.stderr
    assert "pg-password" not in output and "sk-wrong-key" not in output


def test_whois_refused_to_irisgates_user_names_the_fix(
    tmp_path: Path, tailscaled: FakeLocalAPI
) -> None:
    tailscaled.deny_whois = True
    try:
        run = irisgate(
            "doctor",
            "--data-dir",
            str(tmp_path),
            "--identity",
            "tailscale",
            "--tailscaled-socket",
            str(tailscaled.socket_path),
            env={"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY},
        )
    finally:
        tailscaled.deny_whois = False
    assert run.returncode == 1
    assert (
        "FIX  tailscaled: WhoIs answered HTTP 403 whois access denied: run irisgate as root or"
        " as tailscaled's operator (tailscale set --operator=USER)"
    ) in _lines(run.stdout)


def test_serve_mode_without_known_host_names(tmp_path: Path) -> None:
    common = (
        "doctor",
        "--data-dir",
        str(tmp_path),
        "--identity",
        "serve",
        "--listen",
        "0.0.0.0:8080",
    )
    common += ("--tailscaled-socket", str(tmp_path / "none.sock"))
    env = {"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY}
    run = irisgate(*common, env=env)
    lines = _lines(run.stdout)
    assert run.returncode == 1
    assert (
        "warn identity: mode serve accepts loopback clients only, but irisgate listens on"
        " 0.0.0.0:8080: others are refused (use --listen 127.0.0.1:PORT)"
    ) in lines
    assert any(
        line.startswith("FIX  hosts: mode serve, and no host name is known") for line in lines
    )

    fixed = irisgate(*common, "--allowed-hosts", "ai.example.ts.net", env=env)
    assert fixed.returncode == 0, fixed.stdout
    assert "ok   hosts: browsers may use ai.example.ts.net (and IPs, localhost)" in _lines(
        fixed.stdout
    )


def test_serve_mode_checks_that_tailscale_serve_proxies_to_irisgate(
    tmp_path: Path, tailscaled: FakeLocalAPI
) -> None:
    args = ("doctor", "--data-dir", str(tmp_path), "--identity", "serve")
    args += ("--listen", "127.0.0.1:8123", "--tailscaled-socket", str(tailscaled.socket_path))
    env = {"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY}
    try:
        tailscaled.serve_config = {}
        unset = irisgate(*args, env=env)
        tailscaled.set_serve("http://127.0.0.1:9999")  # another service's port
        elsewhere = irisgate(*args, env=env)
        tailscaled.set_serve("http://127.0.0.1:8123")
        proxied = irisgate(*args, env=env)
    finally:
        tailscaled.serve_config = {}
    fix = (
        "FIX  tailscale serve: nothing is proxied to irisgate (127.0.0.1:8123):"
        " run `tailscale serve --bg http://127.0.0.1:8123`"
    )
    assert unset.returncode == elsewhere.returncode == 1
    assert fix in _lines(unset.stdout) and fix in _lines(elsewhere.stdout)
    assert proxied.returncode == 0, proxied.stdout
    lines = _lines(proxied.stdout)
    assert (
        "ok   tailscale serve: https://ai.example.ts.net/ is proxied to http://127.0.0.1:8123"
    ) in lines
    assert "ok   hosts: browsers may use ai, ai.example.ts.net (and IPs, localhost)" in lines
