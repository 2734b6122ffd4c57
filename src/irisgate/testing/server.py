"""Run a real irisgate process for tests: your own tests, or irisgate's.

    with IrisgateServer(config_text, data_dir=tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="-")

The process is started exactly as a user starts it (`python -m irisgate serve ...`) on a free
loopback port; `stop()` sends SIGTERM and waits, like a service manager.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from irisgate.testing.lifecycle import StartStop


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class IrisgateServer(StartStop):
    def __init__(
        self,
        config_text: str | None,
        *,
        data_dir: Path,
        identity: str = "dev",
        database: str | None = None,
        tailscaled_socket: str | None = None,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        port: int | None = None,
        program: tuple[str, ...] = (sys.executable, "-m", "irisgate"),
        cwd: Path | None = None,
    ) -> None:
        """`program`: how irisgate is started (e.g. another virtualenv's `irisgate` script,
        to test an installed package); `cwd`: the folder it starts in (default: the caller's)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path: Path | None = None
        data_dir.mkdir(parents=True, exist_ok=True)
        if config_text is not None:
            self.config_path = data_dir / "config.hujson"
            self.config_path.write_text(config_text, encoding="utf-8")
        self.log_path = data_dir / f"irisgate-{self.port}.log"
        self.cwd = cwd
        args = [*program, "serve", "--listen", f"127.0.0.1:{self.port}"]
        args += ["--identity", identity, "--data-dir", str(data_dir)]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        if database:
            args += ["--database", database]
        if tailscaled_socket:
            args += ["--tailscaled-socket", tailscaled_socket]
        self.args = [*args, *extra_args]
        self.env = {**os.environ, "IRISGATE_LOG_FORMAT": "json", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> IrisgateServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=log, cwd=self.cwd
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"irisgate exited with {self.process.returncode}:\n{self.logs()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"irisgate did not become healthy in {timeout}s:\n{self.logs()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def logs(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
