"""One irisgate instance serving HTTP: uvicorn, with irisgate's shutdown.

SIGTERM or SIGINT starts the shutdown: the process keeps its listening socket open and
answers probes, but refuses new requests with 503 and reports not ready (drain.py)
while the requests in flight get `--shutdown-grace` seconds to finish; those still running
then are cut and recorded. Only then does uvicorn stop listening, close the connections and
run the lifespan shutdown, which writes every record and reports quota spending. A second
signal ends the grace at once (still recording everything); the process exits with 0.

A worker of `irisgate serve --workers N` (workers.py) runs the same server on the socket its
parent bound, and also stops when its parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import structlog
import uvicorn

from irisgate.app import build_app
from irisgate.drain import Drain
from irisgate.listener import protocol_class
from irisgate.portfile import write_port_file
from irisgate.settings import Settings

log = structlog.get_logger("irisgate.server")

#: what uvicorn still waits for after the cut (other requests: API, connectors), at least
_FINAL_WAIT_S = 1.0


class GracefulServer(uvicorn.Server):
    """uvicorn's server with irisgate's shutdown (module doc). A signal it handled ends the
    process with status 0 instead of being re-raised to kill it (status -15 / -2)."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: Drain,
        grace: float,
        parent: int | None = None,
        port_file: Path | None = None,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace = grace
        self.parent = parent  # the supervisor's pid, for a worker
        self.port_file = port_file  # a worker's parent writes it: None then
        self.cut_now = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.port_file is None or not self.started:
            return
        try:
            write_port_file(self.port_file, int(self.servers[0].sockets[0].getsockname()[1]))
        except OSError as exc:
            # as uvicorn does when it cannot bind: nobody could find the server
            log.error("cannot write --port-file", path=str(self.port_file), error=str(exc))
            await self.lifespan.shutdown()
            sys.exit(1)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # never uvicorn's force_exit: it skips the lifespan shutdown, which writes the records
        if self.should_exit:
            self.cut_now = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.parent is not None and counter % 10 == 0 and os.getppid() != self.parent:
            log.warning("the supervising process is gone: shutting down", parent=self.parent)
            self.should_exit = True
        return await super().on_tick(counter)

    async def main_loop(self) -> None:
        await super().main_loop()
        self.drain.begin()
        loop = asyncio.get_running_loop()
        started = loop.time()
        cut = await self.drain.settle(self.grace, lambda: self.cut_now)
        if cut:
            log.warning("requests cut at the end of the shutdown grace", cut=cut)
        left = self.grace - (loop.time() - started)
        self.config.timeout_graceful_shutdown = math.ceil(max(left, _FINAL_WAIT_S))


def run(settings: Settings, sock: socket.socket | None = None, parent: int | None = None) -> int:
    """Serve until a signal stops it; `sock`: a listening socket to serve on instead of
    binding `--listen`. Returns the exit status (0: a graceful stop)."""
    drain = Drain()  # requests in flight: the shutdown refuses new ones, then cuts
    app = build_app(settings, drain)
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        loop="uvloop",
        # httptools with time, size and connection limits (irisgate.listener)
        http=protocol_class(settings),
        ws="none",  # irisgate serves no WebSocket: an upgrade is an ordinary request
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace) + 1,  # set at the cut
        server_header=False,
        # never rewrite the peer address from X-Forwarded-For: identity depends on the real
        # TCP peer (tailscale mode) or on it being loopback (serve and dev modes)
        proxy_headers=False,
    )
    port_file = settings.port_file if parent is None else None
    server = GracefulServer(config, drain, settings.shutdown_grace, parent, port_file)
    server.run(sockets=None if sock is None else [sock])
    if not server.started:
        return 1
    return 1 if getattr(server.lifespan, "shutdown_failed", False) else 0
