"""A fake HTTP API for HTTP connector tests: records every request, echoes it back as JSON.

- any path: `{"method", "path", "query", "body"}` of the request, status 200
  (`/status/<code>` answers with that status instead);
- `/page.html`: an HTML page with an inline script, sent with headers that would let it
  run inline (`PAGE`, `PAGE_HEADERS`; `?type=` replaces its Content-Type);
- `/stream`: a server-sent event stream whose second event waits for `release()`, so a test
  can prove the first event reached the client before the stream ended.

    with FakeHttpApi() as api:
        ... connector url: api.base_url ...
        api.requests[-1].headers["authorization"]
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
from aiohttp import web

from irisgate.testing.fake_server import RecordedRequest, ServerThread
from irisgate.testing.lifecycle import StartStop

#: what `/page.html` answers: a page whose script would act as its viewer on the page's origin
PAGE = (
    b"<!doctype html><title>connector page</title><p id=status>static</p>"
    b"<script>document.getElementById('status').textContent = 'script ran';"
    b"fetch('/api/whoami').then(r => r.text()).then(t => fetch('/stolen?who=' + t));</script>"
)
#: and the headers it sends to let that page run inline, as loosely as a server can
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src * 'unsafe-inline'; script-src * 'unsafe-inline'",
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "sniff",
}


class FakeHttpApi(StartStop):
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._server = ServerThread("fake-http-api")
        self._release = threading.Event()

    def release(self) -> None:
        """Let a waiting `/stream` send its last event."""
        self._release.set()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/stream", self._stream)
        app.router.add_route("GET", "/page.html", self._page)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        return app

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=request.headers,
            body=body,
            json=parsed,
            raw_path=request.raw_path.partition("?")[0],
        )
        self.requests.append(recorded)
        return recorded

    async def _echo(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        status = 200
        if recorded.path.startswith("/status/"):
            status = int(recorded.path.rsplit("/", 1)[1])
        payload = {
            "method": recorded.method,
            "path": recorded.path,
            "query": recorded.query,
            "body": recorded.body.decode("utf-8", "replace"),
        }
        return web.json_response(payload, status=status)

    async def _page(self, request: web.Request) -> web.Response:
        await self._record(request)
        headers = dict(PAGE_HEADERS)
        if "type" in request.query:
            headers["Content-Type"] = request.query["type"]
        return web.Response(body=PAGE, headers=headers)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        self._release.clear()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        # the release comes from the test's thread: wait for it off the loop
        await asyncio.to_thread(self._release.wait)
        await response.write(b"data: last\n\n")
        await response.write_eof()
        return response

    def start(self, host: str = "127.0.0.1") -> str:
        address = self._server.start(self.make_app(), lambda r: web.TCPSite(r, host, 0))
        self.base_url = f"http://{host}:{address[1]}"
        return self.base_url

    def stop(self) -> None:
        self._release.set()
        self._server.stop()
