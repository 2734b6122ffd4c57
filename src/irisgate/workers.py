"""`irisgate serve --workers N`: N processes serving one port and one database.

The parent does what must happen once, then supervises:

1. brings the database schema to the newest revision (so workers never race migrating; with
   `--migrate false` it refuses a schema that is not current instead) and
   makes sure the connector key file exists (so no worker reads it half-written);
2. binds the listening socket itself (`--listen`; port 0 picks a free port, logged as
   "irisgate listening") and forks the workers, which inherit it. One socket shared by
   inheritance rather than one socket per worker with SO_REUSEPORT: it works with port 0,
   the kernel hands each connection to a worker that is waiting in accept() (a busy worker
   takes none), and connections queued when a worker dies stay in the shared queue for the
   others; with SO_REUSEPORT a connection is hashed to one worker's queue and is lost with it;
3. forks each worker after that, before any event loop or thread exists in the parent. A
   worker is a whole irisgate instance (server.py): its own event loop, database pool, quota
   leases under its own instance id, config polling, capture writer and shutdown grace;
   instances converge through the database exactly as separate machines do;
4. supervises: SIGTERM or SIGINT is passed on to every worker (a second one too, which ends
   their grace at once) and the parent exits when all have exited, with 0 when all stopped
   cleanly. A worker that dies otherwise is logged and replaced; one that keeps dying within
   `QUICK_DEATH_S` of its start is restarted after a growing pause, and after
   `MAX_QUICK_DEATHS` such deaths in a row the parent stops all and exits 1. A worker that
   exits with `UNUSABLE` (settings no worker can run with) stops them all at once.

Workers run in their own process group so a terminal's Ctrl-C reaches them once, through
the parent; a worker whose parent disappears (kill -9) shuts down gracefully on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from types import FrameType

import structlog

from irisgate.connectors.secretbox import load_key
from irisgate.portfile import write_port_file
from irisgate.settings import Settings
from irisgate.store.database import open_database, require_current
from irisgate.telemetry.tracing import TracingUnavailable

log = structlog.get_logger("irisgate.workers")

#: a worker that dies sooner than this after it started counts as failing to start
QUICK_DEATH_S = 10.0
#: quick deaths in a row after which the parent gives up
MAX_QUICK_DEATHS = 5
#: listen backlog of the shared socket
BACKLOG = 2048
_FORWARDED = (signal.SIGTERM, signal.SIGINT)
#: a worker's exit status meaning that no worker can run with these settings
UNUSABLE = 2


def supervise(settings: Settings) -> int:
    """Run `settings.workers` workers until a signal stops them; the exit status."""
    try:
        asyncio.run(_prepare(settings))
    except Exception as exc:  # reported like a single process reports it, then exit 1
        log.error("cannot prepare the database", error=f"{type(exc).__name__}: {exc}")
        return 1
    load_key(settings)
    sock = _listen(settings)
    host, port = sock.getsockname()[:2]
    log.info("irisgate listening", host=host, port=port, workers=settings.workers)
    if settings.port_file is not None:
        try:
            write_port_file(settings.port_file, int(port))
        except OSError as exc:
            log.error("cannot write --port-file", path=str(settings.port_file), error=str(exc))
            sock.close()
            return 1
    return Supervisor(settings, sock).run()


async def _prepare(settings: Settings) -> None:
    """Migrate once, holding the lock (or, with `--migrate false`, refuse a schema that is
    not current before any worker starts)."""
    db = await open_database(settings.resolved_database_url, migrate=settings.migrate)
    try:
        if not settings.migrate:
            await require_current(db)
    finally:
        await db.close()


def _listen(settings: Settings) -> socket.socket:
    host = settings.listen_host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, settings.listen_port), family=family, backlog=BACKLOG)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.children: dict[int, float] = {}  # pid -> monotonic start time
        self.stopping = False
        self.failed = False
        self.quick_deaths = 0

    def run(self) -> int:
        for sig in _FORWARDED:
            signal.signal(sig, self._forward)
        for _ in range(self.settings.workers):
            self._fork()
        status = 0
        announced = False
        while self.children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:  # none left (cannot happen while children is not empty)
                break
            if self.stopping and not announced:
                log.info("stopping workers", workers=len(self.children))
                announced = True
            started = self.children.pop(pid, None)
            if started is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if self.stopping:
                log.info("worker stopped", pid=pid, status=code)
                # killed by the signal itself: it was still starting, nothing was lost
                status = status or (0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else 1)
                continue
            self._replace(pid, code, started)
        self.sock.close()
        return 1 if self.failed else status

    def _replace(self, pid: int, code: int, started: float) -> None:
        """A worker died without being asked to: log it and start another."""
        lived = time.monotonic() - started
        if code == UNUSABLE:
            log.error("a worker cannot run with these settings: stopping", pid=pid)
            self.failed = True
            self._forward(signal.SIGTERM, None)
            return
        log.error("worker died; starting another", pid=pid, status=code, lived_s=round(lived, 1))
        self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
        if self.quick_deaths >= MAX_QUICK_DEATHS:
            log.error("workers keep dying at start: stopping", deaths=self.quick_deaths)
            self.failed = True
            self._forward(signal.SIGTERM, None)
            return
        if self.quick_deaths:  # a pause that a stop signal ends
            resume = time.monotonic() + min(2.0 ** (self.quick_deaths - 1), 30.0)
            while not self.stopping and time.monotonic() < resume:
                time.sleep(0.1)
            if self.stopping:
                return
        self._fork()

    def _forward(self, sig: int, frame: FrameType | None) -> None:
        """The parent's signal handler: every worker gets the signal. It logs nothing: the
        interrupted code may be writing a log line itself."""
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):  # exited; os.wait collects it
                os.kill(pid, sig)

    def _fork(self) -> None:
        parent = os.getpid()
        # signals wait until the new worker is known (parent) or has its own handlers (worker)
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        _flush()  # or the worker would write the parent's buffered output a second time
        pid = os.fork()
        if pid == 0:  # the worker
            os._exit(_worker(self.settings, self.sock, parent))
        self.children[pid] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        log.info("worker started", pid=pid)


def _worker(settings: Settings, sock: socket.socket, parent: int) -> int:
    """A forked worker's whole life; never returns into the parent's code."""
    try:
        os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only, which passes it on
        for sig in _FORWARDED:  # until the server takes them: stopping now loses nothing
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        from irisgate.server import run

        return run(settings, sock, parent)
    except TracingUnavailable as exc:  # --otel 1 without the otel extra
        log.error(str(exc))
        return UNUSABLE
    except BaseException:  # a worker must end here, whatever happened
        log.exception("worker failed")
        return 1
    finally:
        _flush()  # os._exit follows: nothing else would


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
