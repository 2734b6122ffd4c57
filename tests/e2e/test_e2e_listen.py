"""`--listen HOST:0` and `--port-file`: irisgate picks a free port itself and says which, so
nothing has to guess a free port and race others for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from irisgate.testing.server import IrisgateServer


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "irisgate", "serve", "--identity", "dev"]
    command += ["--data-dir", str(tmp_path / "data"), *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "IRISGATE_LOG_FORMAT": "json", **(env or {})},
    )


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 60  # only a stuck start fails here
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text(encoding="ascii")


def test_port_0_serves_on_the_port_written_to_the_port_file(tmp_path: Path) -> None:
    port_file = tmp_path / "irisgate.port"
    process = serve(tmp_path, "--listen", "127.0.0.1:0", "--port-file", str(port_file))
    try:
        text = wait_for_file(port_file, process)
        assert text.endswith("\n") and text.strip().isdigit()
        port = int(text)
        assert port > 0
        assert httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0


def test_the_port_file_and_port_0_also_come_from_the_environment(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {"IRISGATE_LISTEN": "127.0.0.1:0", "IRISGATE_PORT_FILE": str(port_file)}
    process = serve(tmp_path, env=env)
    try:
        port = int(wait_for_file(port_file, process))
        assert httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def test_a_port_file_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    port_file = tmp_path / "missing-folder" / "port"
    process = serve(tmp_path, "--listen", "127.0.0.1:0", "--port-file", str(port_file))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "cannot write --port-file" in stderr
    assert str(port_file) in stderr
    assert "No such file or directory" in stderr


def test_a_restarted_test_server_serves_on_the_same_port(tmp_path: Path) -> None:
    server = IrisgateServer(None, data_dir=tmp_path)
    with server:
        first = server.url
        assert httpx2.get(first + "/healthz", timeout=30).status_code == 200
        assert server.stop() == 0
        server.start()
        assert server.url == first
        assert httpx2.get(first + "/healthz", timeout=30).status_code == 200
