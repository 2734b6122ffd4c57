"""Run a real irisgate process for tests: your own tests, or irisgate's.

    with IrisgateServer(config_text, data_dir=tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="-")

The process is started exactly as a user starts it (`python -m irisgate serve ...`). It binds
a free loopback port itself (`--listen 127.0.0.1:0`) and writes the port it got to a
`--port-file`, which `start()` reads: `url` and `port` are known once `start()` returns.
`stop()` sends SIGTERM and waits, like a service manager; `start()` again serves on the same
port, which stays reserved between the two (see `irisgate.testing.ports`).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from irisgate.testing.lifecycle import StartStop
from irisgate.testing.ports import Reservation, reserve_port

_SERIAL = itertools.count(1)


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing else gets while this process runs (`ports.reserve_port`): for
    a server that must be told its port, or a URL where nothing listens. A server that can
    bind port 0 and report its port needs none."""
    return reserve_port(0, host)


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
        """`port`: serve on this port (reserve it with `free_port()`); by default a free
        port irisgate picks on the first start. `program`: how irisgate is started (e.g.
        another virtualenv's `irisgate` script, to test an installed package); `cwd`: the
        folder it starts in (default: the caller's)."""
        self.data_dir = data_dir
        self._port = port or 0
        self._reservation: Reservation | None = None
        self.config_path: Path | None = None
        data_dir.mkdir(parents=True, exist_ok=True)
        if config_text is not None:
            self.config_path = data_dir / "config.hujson"
            self.config_path.write_text(config_text, encoding="utf-8")
        name = f"irisgate-{os.getpid()}-{next(_SERIAL)}"
        self.log_path = data_dir / f"{name}.log"
        self.port_file = data_dir / f"{name}.port"
        self.cwd = cwd
        args = [*program, "serve"]
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

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("irisgate has no port before start() returned")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> IrisgateServer:
        """Start irisgate and wait until /healthz answers 200; `timeout` only stops a start
        that is stuck (a loaded machine can make a start take many seconds)."""
        self.port_file.unlink(missing_ok=True)
        listen = ["--listen", f"127.0.0.1:{self._port}", "--port-file", str(self.port_file)]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.args, *listen], env=self.env, stdout=log, stderr=log, cwd=self.cwd
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"irisgate exited with {self.process.returncode}:\n{self.logs()}"
                )
            waiting_for = self._serving()
            if not waiting_for:
                if self._reservation is not None:  # listening there now: no longer needed
                    self._reservation.release()
                    self._reservation = None
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"irisgate did not become healthy in {timeout}s ({waiting_for}):\n{self.logs()}"
        )

    def _serving(self) -> str:
        """What the start still waits for ("" once /healthz answers 200 on the port that
        irisgate wrote to the port file)."""
        try:
            self._port = int(self.port_file.read_text(encoding="ascii"))
        except FileNotFoundError:
            return "no port file yet"
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=5) as resp:
                return "" if resp.status == 200 else f"/healthz answered {resp.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return f"/healthz: {exc}"

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
        self._hold_port()
        return process.returncode

    def _hold_port(self) -> None:
        """Keep the port for a restart: from the moment the process is gone, no outgoing
        connection or other server can take it."""
        if self._port and self._reservation is None:
            self._reservation = Reservation(self._port)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
