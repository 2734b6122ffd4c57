"""A real MCP server (the `mcp` SDK's MCPServer over Streamable HTTP) for connector tests.

It refuses every request whose credential is not the expected one (HTTP 401, as an MCP
server behind auth does), and its tools report what they saw, so a test can tell which
credential reached the upstream:

- `echo(text)` → `"<name>: <text>"`
- `credential()` → the credential value the request carried
- `fail()` → a tool error
- `sized(size)` → a text of `size` bytes, with `sized_tool=True` (for answer limits)
- `slow()` → never answers, with `slow_tool=True`: it sets `slow_started` once running and
  counts in `slow_cancelled` each call cancelled by its client (a Stop in the chat)

`legacy_sse=True` serves the legacy SSE transport (2024-11-05: GET /sse, an `endpoint`
event, POSTs to /messages/) instead of Streamable HTTP.
`json_response=True` answers calls with one JSON body instead of an SSE stream, and
`gzip_always=True` then compresses those bodies whatever the client asked for (a server
that ignores `Accept-Encoding`).
- resource `notes://readme` and template `notes://{name}`

    with McpToolServer("docs", header=("authorization", "Bearer s3cret")) as server:
        ... connector url: server.url ...

It binds a free port itself; `url` and `port` are known once `start()` returns. `stop()` and
`start()` again serve on the same port (reserved in between), to test an upstream going away.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from irisgate.testing.lifecycle import StartStop
from irisgate.testing.ports import Reservation

CredentialCheck = Callable[[dict[str, str], dict[str, str]], str | None]


class McpToolServer(StartStop):
    def __init__(
        self,
        name: str,
        *,
        header: tuple[str, str] | None = None,
        query: tuple[str, str] | None = None,
        check: CredentialCheck | None = None,
        json_response: bool = False,
        sized_tool: bool = False,
        gzip_always: bool = False,
        legacy_sse: bool = False,
        slow_tool: bool = False,
    ) -> None:
        """Expect `header` (name, exact value), or `query` (param, value), or let `check`
        return the credential it accepts from (headers, query) or None to refuse.
        `json_response`: answer calls with one JSON body instead of an SSE stream.
        `legacy_sse`: serve the legacy (2024-11-05) SSE transport at /sse instead."""
        self.legacy_sse = legacy_sse
        self.name = name
        self.json_response = json_response
        self.sized_tool = sized_tool
        self.slow_tool = slow_tool
        self.slow_started = threading.Event()
        self.slow_cancelled = 0
        self.gzip_always = gzip_always
        self.port = 0  # until start(): the port uvicorn bound
        self._reservation: Reservation | None = None
        self._check = check or _exact(header, query)
        self.refused = 0  # requests refused for a wrong or missing credential
        self.seen: list[str] = []  # accepted credentials, in order
        self.requests: list[tuple[str, str]] = []  # (method, path) of accepted requests
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"MCP test server {self.name} has no port before start()")
        return f"http://127.0.0.1:{self.port}/{'sse' if self.legacy_sse else 'mcp'}"

    def _mcp(self) -> MCPServer:
        mcp: MCPServer = MCPServer(self.name)
        name = self.name

        @mcp.tool()
        def echo(text: str) -> str:
            """Answer with the server's name and the text."""
            return f"{name}: {text}"

        @mcp.tool()
        def credential(ctx: Context) -> str:
            """The credential this request carried."""
            request = ctx.request_context.request
            assert request is not None
            return str(request.scope["irisgate.test.credential"])

        @mcp.tool()
        def fail() -> str:
            """Always fails."""
            raise ValueError("this tool always fails")

        if self.sized_tool:

            @mcp.tool()
            def sized(size: int) -> str:
                """A text of `size` bytes."""
                return "x" * size

        if self.slow_tool:

            @mcp.tool()
            async def slow() -> str:
                """Runs until its client cancels it."""
                self.slow_started.set()
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    self.slow_cancelled += 1
                    raise
                return "never"

        @mcp.resource("notes://readme", mime_type="text/plain")
        def readme() -> str:
            return f"readme of {name}"

        @mcp.resource("notes://{note}", mime_type="text/plain")
        def note(note: str) -> str:
            return f"note {note} of {name}"

        return mcp

    def _app(self) -> Any:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        if self.legacy_sse:
            inner = self._mcp().sse_app(transport_security=security)
        else:
            inner = self._mcp().streamable_http_app(
                stateless_http=True, json_response=self.json_response, transport_security=security
            )

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
            accepted = self._check(headers, query)
            if accepted is None:
                self.refused += 1
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"wrong credential"})
                return
            self.seen.append(accepted)
            self.requests.append((scope["method"], scope["path"]))
            scope["irisgate.test.credential"] = accepted
            await inner(scope, receive, _gzipping(send) if self.gzip_always else send)

        return app

    def start(self) -> McpToolServer:
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,  # a client's open connection must not hold a stop
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60  # only a stuck start takes this long
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"MCP test server {self.name} did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        if self._reservation is not None:  # listening there now
            self._reservation.release()
            self._reservation = None
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
            # the port stays this server's until it starts again
            self._reservation = Reservation(self.port)
        self._server = self._thread = None


def _gzipping(send: Any) -> Any:
    """`send` that gzips a JSON answer (held until its body is complete)."""
    start: dict[str, Any] = {}
    body = bytearray()

    async def gzipped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            types = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
            if not types or not types[0].startswith(b"application/json"):
                await send(message)
                return
            start.update(message)
            return
        if not start:
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body", False):
            return
        packed = gzip.compress(bytes(body))
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers += [(b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(packed))]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": packed})

    return gzipped


def _exact(header: tuple[str, str] | None, query: tuple[str, str] | None) -> CredentialCheck:
    def check(headers: dict[str, str], params: dict[str, str]) -> str | None:
        if header is not None:
            value = headers.get(header[0].lower())
            return value if value == header[1] else None
        if query is not None:
            value = params.get(query[0])
            return value if value == query[1] else None
        return "" if "authorization" not in headers else None

    return check
