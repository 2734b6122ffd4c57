"""`FakeWebhook`: a webhook receiver that records what is posted to it, and can fail.

    with FakeWebhook() as hook:
        hook.fail_next(2, status=503)  # the next two posts are answered 503
        url = hook.url("ops")          # POST /ops is recorded as ("ops", body)
        hook.wait_for(lambda: len(hook.received("ops")) == 1)

It answers 204 to everything else. `attempts` counts every post, failed ones included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from irisgate.testing.fake_server import WAIT_S, ServerThread, wait_until
from irisgate.testing.lifecycle import StartStop


class FakeWebhook(StartStop):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ServerThread("FakeWebhook")
        self._failures: dict[str, list[int]] = {}
        self._posts: list[tuple[str, Any, bool]] = []  # (name, body, answered 2xx)
        self.base_url = ""

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def fail_next(self, count: int, *, status: int = 503, name: str | None = None) -> None:
        """The next `count` posts (to `name`, or to any path) are answered `status`."""
        with self._lock:
            self._failures.setdefault(name or "*", []).extend([status] * count)

    def received(self, name: str) -> list[Any]:
        """The bodies (parsed JSON) posted to `name` and answered 2xx, in order."""
        with self._lock:
            return [body for n, body, ok in self._posts if n == name and ok]

    def attempts(self, name: str) -> int:
        with self._lock:
            return sum(1 for n, _, _ in self._posts if n == name)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        return wait_until(predicate, timeout)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = orjson.loads(await request.read())
        with self._lock:
            queue = self._failures.get(name) or self._failures.get("*") or []
            status = queue.pop(0) if queue else 204
            self._posts.append((name, body, status < 300))
        if status >= 300:
            return web.Response(status=status, text=f"failing on purpose ({status})")
        return web.Response(status=status)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        address = self._server.start(self.make_app(), lambda r: web.TCPSite(r, host, port))
        self.base_url = f"http://{address[0]}:{address[1]}"
        return self.base_url

    def stop(self) -> None:
        self._server.stop()
