"""Plumbing shared by the fakes: serving an aiohttp app from a thread, recording requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

#: how long `wait_until` waits by default: long enough that only a stuck test runs out of it,
#: even on a loaded machine (a condition that holds returns at once)
WAIT_S = 30.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(0.005)
    return True


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it, for assertions on what a gateway forwarded."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    """Case-insensitive: ``req.headers["authorization"]`` finds ``Authorization``."""
    body: bytes
    json: Any
    """The parsed body, or None when it is empty or not JSON."""
    raw_path: str = ""
    """The path exactly as it came on the request line (percent-escapes kept), where known."""


async def start_runner(
    app: web.Application, make_site: Callable[[web.AppRunner], web.BaseSite]
) -> web.AppRunner:
    """Set `app` up and start its site: no access log, handlers cancelled on disconnect."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await make_site(runner).start()
    return runner


class ServerThread:
    """Runs one aiohttp application on a private event loop in a daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(
        self, app: web.Application, make_site: Callable[[web.AppRunner], web.BaseSite]
    ) -> Any:
        """Start serving; returns the bound address (``(host, port)`` or a socket path).

        Raises RuntimeError (chained to the cause) when the site cannot start.
        """
        ready = threading.Event()
        outcome: list[Any] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(app, make_site, ready, outcome), name=self._name, daemon=True
        )
        self._thread.start()
        ready.wait(60)  # only a stuck start takes this long
        if not outcome or isinstance(outcome[0], BaseException):
            self._thread.join(5)
            self._thread = None
            cause = outcome[0] if outcome else None
            raise RuntimeError(f"{self._name} failed to start") from cause
        return outcome[0]

    def _run(
        self,
        app: web.Application,
        make_site: Callable[[web.AppRunner], web.BaseSite],
        ready: threading.Event,
        outcome: list[Any],
    ) -> None:
        loop = self._loop
        assert loop is not None
        try:
            runner = loop.run_until_complete(start_runner(app, make_site))
        except OSError as exc:
            outcome.append(exc)
            ready.set()
            loop.close()
            return
        outcome.append(runner.addresses[0])
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        """Stop the loop (in-flight requests are cut), clean up and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None
        self._loop = None
