"""A private PostgreSQL server for tests and benchmarks that stop and start it (database
outages).

The machine's shared server must never be stopped by a test, so `PostgresCluster` makes
its own: `initdb` into a fresh folder, `pg_ctl start` on a free loopback port, unix socket
in the same folder. The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the
newest version found) unless `bin_dir` names them. initdb refuses to run as root, so as root
every command runs as the `postgres` user (`runuser -u postgres`), in a folder it owns.

    with PostgresCluster() as pg:
        url = pg.url          # postgresql://postgres@127.0.0.1:<port>/postgres
        pg.stop()             # an outage: connections are cut, new ones refused
        pg.start()            # back, same data

irisgate's own tests get one per module from the `postgres_cluster` fixture
(tests/e2e/conftest.py); `bench/outage.py` uses one too.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from irisgate.testing.server import free_port


def postgres_bin() -> Path | None:
    """The folder of Debian's newest initdb/pg_ctl, or None when none is installed."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    newest = max(found, key=lambda p: int(Path(p).parent.parent.name.split(".")[0]))
    return Path(newest).parent


class PostgresCluster:
    """A throwaway PostgreSQL server (see the module doc)."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        bin_dir = bin_dir or postgres_bin()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL's server binaries were not found (/usr/lib/postgresql/*/bin): "
                "install postgresql or pass bin_dir"
            )
        self._bin = bin_dir
        self._as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="irisgate-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if self._as_root:
            shutil.chown(self.folder, "postgres", "postgres")

    def create(self) -> None:
        """initdb (trust authentication, no fsync: a test database)."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop the server now (`-m fast`: open connections are cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        status = self._command("pg_ctl", "-D", str(self.data), "status")
        return subprocess.run(status, capture_output=True, check=False).returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            self.create()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self._bin / program), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_root else command

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._command(program, *args), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
            )
