"""`FakeHook`: a guardrail webhook server speaking Aperture's hook protocol (reference §9).

Every path is a hook endpoint: ``POST /<name>`` records the `HookCallData` it received and
answers with what the test configured for that name, by default ``{"action": "allow"}``::

    with FakeHook() as hooks:
        hooks.answer("scrub", {"action": "modify", "request_body": {...}})
        hooks.answer("deny", {"action": "block", "status_code": 451, "message": "no"})
        hooks.delay["slow"] = 2.0           # answer after 2 s
        hooks.gate["audit"] = threading.Event()  # hold answers until the event is set
        hooks.answer("broken", status=500)  # a hook that fails
        hooks.answer_bytes("garbled", b"{not json")  # any body, as it is
        url = hooks.url("scrub")

An answer may also be a function of the received payload returning the answer. Received
calls are in ``calls`` (name, headers, payload), in arrival order. As a process
(``python -m irisgate.testing.fake_hook --port 9200``) every hook allows: a fast hook for
benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from irisgate.testing.fake_server import WAIT_S, ServerThread, start_runner, wait_until
from irisgate.testing.lifecycle import StartStop

Answer = dict[str, Any] | Callable[[Any], dict[str, Any]]
ALLOW = orjson.dumps({"action": "allow"})


@dataclass(frozen=True, slots=True)
class HookCallReceived:
    name: str
    headers: CIMultiDictProxy[str]
    payload: Any


class FakeHook(StartStop):
    def __init__(self, *, record: bool = True) -> None:
        self._lock = threading.Lock()
        self._server = ServerThread("FakeHook")
        self._answers: dict[str, tuple[int, Answer | None]] = {}
        self._bytes: dict[str, bytes] = {}
        self.delay: dict[str, float] = {}
        self.gate: dict[str, threading.Event] = {}
        self.calls: list[HookCallReceived] = []
        self.record = record
        self.base_url = ""

    def answer(self, name: str, answer: Answer | None = None, *, status: int = 200) -> None:
        """What `POST /<name>` answers from now on (`status` other than 2xx: an empty body)."""
        with self._lock:
            self._answers[name] = (status, answer)

    def answer_bytes(self, name: str, body: bytes) -> None:
        """`POST /<name>` answers 200 with exactly `body` (as `application/json`) from now on."""
        with self._lock:
            self._bytes[name] = body

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def calls_to(self, name: str) -> list[HookCallReceived]:
        with self._lock:
            return [c for c in self.calls if c.name == name]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        """Poll `predicate` until it holds or `timeout` seconds pass; returns its last value."""
        return wait_until(predicate, timeout)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{name}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        if self.record or name in self._answers or name in self._bytes:
            payload = orjson.loads(body) if body else None
            with self._lock:
                self.calls.append(HookCallReceived(name, request.headers, payload))
        else:
            payload = None
        delay = self.delay.get(name, 0.0)
        if delay:
            await asyncio.sleep(delay)
        gate = self.gate.get(name)
        if gate is not None:  # a threading.Event set by the test's thread: wait off-loop
            await asyncio.to_thread(gate.wait, 60)
        with self._lock:
            status, answer = self._answers.get(name, (200, None))
            raw = self._bytes.get(name)
        if raw is not None:
            return web.Response(body=raw, content_type="application/json")
        if status >= 300:
            return web.Response(status=status)
        if answer is None:
            return web.Response(body=ALLOW, content_type="application/json")
        data = answer(payload) if callable(answer) else answer
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        address = self._server.start(self.make_app(), lambda r: web.TCPSite(r, host, port))
        self.base_url = f"http://{address[0]}:{address[1]}"
        return self.base_url

    def stop(self) -> None:
        self._server.stop()


async def _serve(host: str, port: int) -> None:
    hook = FakeHook(record=False)
    await start_runner(hook.make_app(), lambda r: web.TCPSite(r, host, port))
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A guardrail hook that allows everything.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
