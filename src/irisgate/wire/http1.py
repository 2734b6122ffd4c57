"""The request path's HTTP/1.1 client: keep-alive connections to LLM upstreams and hooks.

Why not aiohttp's `ClientSession` here (it still serves cloud token endpoints and the
connector proxy): per request it builds a `ClientRequest`, cookie jar filter, payload object,
`StreamReader`, timer handles and several futures, about a quarter of the instructions
irisgate spent on a plain proxied request (callgrind: 1.33 M before this client, 0.99 M
after). The relay needs a small part of what that machinery offers, and this module is that
part:

- a pool of idle keep-alive connections per (scheme, host, port), newest first, dropped after
  `keepalive` seconds idle or as soon as the server closes them;
- one write per request (head and body through `writelines`); the body is always complete
  bytes (the gateway has read it), so no chunked request bodies; an upload kept on disk
  (`BodySource`, wire/upload.py) is written a piece at a time, waiting while the transport's
  buffer is full; an upload relayed as it arrives (`BodyStream`, wire/upload.py
  `StreamedUpload`) likewise, with its `Content-Length` or else chunked;
- responses parsed by httptools (llhttp, the parser uvicorn already uses for requests):
  `Content-Length`, chunked, and read-until-close bodies; 1xx interim answers skipped;
- the body handed over as it arrives, all buffered pieces at once, with back-pressure:
  reading pauses while more than `_HIGH_WATER` bytes wait for a slow client;
- a connect timeout and a read timeout: the longest silence allowed while irisgate waits for
  the upstream (not while it waits for a slow client);
- TLS with the system's certificate store and hostname verification.

Not supported, on purpose: redirects (the relay passes them to the client), proxies, cookies,
decompression (bodies pass through as sent), HTTP/2, upgrades, HEAD. Errors are two kinds:
`TimeoutError`, and `UpstreamError` for everything else (refused, reset, TLS, bad response).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, cast, runtime_checkable
from urllib.parse import urlsplit

import httptools

#: body bytes buffered for a slow consumer before reading from the upstream pauses
_HIGH_WATER = 256 * 1024
#: response head size accepted from an upstream (status line and headers)
_MAX_HEAD = 64 * 1024
#: idle connections kept per upstream (scheme, host, port)
_MAX_IDLE = 256


class BodySource(Protocol):
    """A request body sent a piece at a time (an upload kept in a temporary file)."""

    @property
    def sent_size(self) -> int: ...

    def pieces(self) -> Iterator[bytes]: ...


@runtime_checkable
class BodyStream(Protocol):
    """A request body sent as it arrives from the client: its length when known (else it
    goes chunked); whatever its iteration raises ends the request."""

    @property
    def length(self) -> int | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class UpstreamError(Exception):
    """Could not talk HTTP/1.1 with the upstream: refused, reset, TLS, malformed answer."""


class AnswerTooLarge(Exception):
    """An answer read whole is longer than the reader's limit (known from its
    `Content-Length`, or as soon as the bytes read cross the limit)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[str, str, int]  # scheme, host, port: what a connection can be reused for
    host: str  # the Host header: the URL's authority as written
    path: str  # the request target: path and query, as written (already encoded)


@lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UpstreamError(f"unsupported URL scheme {scheme!r} in the upstream URL")
    if "@" in parts.netloc:
        raise UpstreamError("credentials in an upstream URL are not supported")
    try:
        port = parts.port
    except ValueError as exc:
        raise UpstreamError(f"bad port in the upstream URL: {exc}") from None
    host = parts.hostname
    if not host:
        raise UpstreamError("no host in the upstream URL")
    port = port or (443 if scheme == "https" else 80)
    authority = parts.netloc if parts.netloc.isascii() else parts.netloc.encode("idna").decode()
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in path):
        raise UpstreamError(f"space or control character in the upstream path {path!r}")
    return _Target((scheme, host, port), authority, path)


#: control characters other than CR, LF (counted separately) and tab (allowed in a field
#: value by RFC 9110): a NUL or an escape in a header is refused, whatever brought it
_HEAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _head(method: str, target: _Target, headers: dict[str, str], length: int | None) -> bytes:
    """The request line and headers, refusing any CR or LF inside a name or value (they
    would let one header smuggle in another, or a second request) and any other control
    character but tab (NUL, ESC, DEL: servers disagree on what they mean)."""
    lines = [f"{method} {target.path} HTTP/1.1\r\nhost: {target.host}\r\n"]
    lines.extend([f"{name}: {value}\r\n" for name, value in headers.items()])
    count = len(headers) + 3
    if length is not None:
        lines.append(f"content-length: {length}\r\n")
        count += 1
    lines.append("\r\n")
    text = "".join(lines)
    if text.count("\n") != count or text.count("\r") != count:
        raise UpstreamError("a header name or value contains a line break")
    if _HEAD_CONTROL.search(text) is not None:
        bad = next((n for n, v in headers.items() if _HEAD_CONTROL.search(f"{n}{v}")), "host")
        raise UpstreamError(f"header {bad[:100]!r} contains a control character")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a configured header beyond latin-1: send it as UTF-8
        return text.encode()


class Response:
    """One upstream answer: status and headers at once, the body as it arrives. `close()`
    must follow (the relay does it in `finally`): it returns the connection to the pool when
    the body was read to its end, and closes it otherwise."""

    __slots__ = ("_conn", "content_length", "raw_headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = conn.status
        self.raw_headers = conn.headers
        self.content_length = conn.content_length

    async def chunk(self) -> tuple[bytes, bool]:
        """Every body byte that arrived since the last call (waiting for at least one), and
        whether the body is complete with them. At the end: `(b"", True)`."""
        conn = self._conn
        while True:
            pieces = conn.pieces
            if pieces:
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces.clear()
                conn.buffered = 0
                if conn.paused:
                    conn.resume()
                return data, conn.complete
            if conn.complete:
                return b"", True
            await conn.wait()

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; with `limit`, AnswerTooLarge instead of a body longer than it,
        before reading any of it when `Content-Length` says so (else once the bytes read
        cross it: at most `limit` plus one read's worth is held)."""
        if limit is not None and self.content_length is not None and self.content_length > limit:
            raise AnswerTooLarge(limit)
        parts: list[bytes] = []
        size = 0
        while True:
            data, done = await self.chunk()
            size += len(data)
            if limit is not None and size > limit:
                raise AnswerTooLarge(limit)
            parts.append(data)
            if done:
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        self._conn.finish()


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, parsing what the upstream sends with httptools."""

    def __init__(self, pool: Http1Client, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.loop = pool.loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.busy = False  # a request is out (from send until finish)
        self.writable: asyncio.Future[None] | None = None  # set while writing is paused
        self.idle_since = 0.0
        self.last_read = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.head_done = False
        self.interim = False  # parsing a 1xx answer, which another answer follows
        self.content_length: int | None = None
        self.until_close = False  # the body ends when the connection does
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.complete = False
        self.keep_alive = False
        self.cut_body = False  # the request body was not sent whole
        self.error: BaseException | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:  # nothing asked: a confused upstream; never reuse
            self.keep_alive = False
            self._close()
            return
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(UpstreamError(f"invalid HTTP answer from the upstream: {exc}"))
            self._close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the request

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        writable, self.writable = self.writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.forget(self)
        self.resume_writing()  # a body being written stops at the closed transport
        if self.busy and not self.complete:
            if self.head_done and self.until_close and self.error is None:
                self.complete = True  # a body without length ends with its connection
                self.wake()
            else:
                reason = f": {exc}" if exc is not None else ""
                self.fail(UpstreamError(f"upstream closed the connection{reason}"))

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > _MAX_HEAD:
            error = UpstreamError(f"upstream answer headers larger than {_MAX_HEAD} bytes")
            self.fail(error)  # first: the parser reports only "callback error"
            raise error
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue and friends: the real answer follows
            self.interim = True
            return
        self.status = status
        chunked = False
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length" and value.isdigit():
                self.content_length = int(value)
            elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            self.content_length = None
        self.until_close = not chunked and self.content_length is None and status not in (204, 304)
        self.head_done = True
        self.wake()

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self.wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            self.headers = []
            self.head_size = 0
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        self.wake()

    # --- the request -----------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.busy = True
        self.last_read = self.loop.time()
        timeout = self.pool.read_timeout
        if timeout is not None:
            self.timer = self.loop.call_at(self.last_read + timeout, self._check_silence)
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)

    async def send_pieces(self, source: BodySource) -> None:
        """Write a body a piece at a time, waiting while the transport's buffer is full;
        stops early when the upstream has already answered or the connection is gone."""
        for piece in source.pieces():
            if self.transport is None or self.transport.is_closing():
                raise UpstreamError("upstream closed the connection while the body was sent")
            if self.head_done or self.error is not None:
                self.cut_body = True  # answered before the whole body: never reused
                return
            self.transport.write(piece)
            self.last_read = self.loop.time()  # the upload moving is not the upstream's silence
            if self.writable is not None:
                await self.writable

    async def stream(self, body: BodyStream) -> None:
        """Write `body` as it arrives (chunked when its length is not known), waiting while
        the transport's buffer is full."""
        chunked = body.length is None
        async for piece in body:
            if self.head_done or self.error is not None:
                self.cut_body = True  # answered before the whole body: never reused
                return
            if self.transport is None or self.transport.is_closing():
                raise UpstreamError("upstream closed the connection while the body was sent")
            if piece:
                framed = (b"%x\r\n" % len(piece), piece, b"\r\n") if chunked else (piece,)
                self.transport.writelines(framed)
            self.last_read = self.loop.time()  # the upload moving is not the upstream's silence
            if self.writable is not None:
                await self.writable
        if self.transport is None:
            raise UpstreamError("upstream closed the connection while the body was sent")
        if chunked:
            self.transport.write(b"0\r\n\r\n")

    async def response_head(self) -> None:
        while not self.head_done:
            await self.wait()

    async def wait(self) -> None:
        """Until the parser or the connection has news; raises what went wrong."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None
        if self.error is not None:
            raise self.error

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.wake()

    def resume(self) -> None:
        self.paused = False
        self.last_read = self.loop.time()  # time spent waiting for the client is not silence
        if self.transport is not None:
            self.transport.resume_reading()

    def _check_silence(self) -> None:
        """The read timeout: fires at most once per `read_timeout` of a request's life."""
        self.timer = None
        timeout = self.pool.read_timeout
        if not self.busy or self.complete or timeout is None:
            return
        due = self.last_read + timeout
        now = self.loop.time()
        if self.paused or now < due:  # data came meanwhile, or the client is the slow one
            self.timer = self.loop.call_at(max(due, now + timeout / 8), self._check_silence)
            return
        self.fail(TimeoutError(f"no data from the upstream for {timeout:g} s"))
        self._close()

    def finish(self) -> None:
        """The request is over: back to the pool if the answer ended cleanly, else closed."""
        if not self.busy:
            return
        self.busy = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        reusable = (
            self.complete
            and self.keep_alive
            and not self.cut_body
            and self.error is None
            and not self.paused
            and self.transport is not None
            and not self.transport.is_closing()
        )
        if reusable:
            self._reset()
            self.pool.put(self)
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Http1Client:
    """Pooled HTTP/1.1 requests to upstreams; one per runtime, used from its event loop."""

    def __init__(
        self,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        keepalive: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | BodySource | BodyStream
    ) -> Response:
        """Send one request and wait for the answer's status and headers."""
        if self._closed:
            raise UpstreamError("the upstream client is closed")
        target = _target(url)
        if isinstance(body, BodyStream):
            length = body.length
            if length is None:
                headers = {**headers, "transfer-encoding": "chunked"}
        else:
            length = body.sent_size if not isinstance(body, bytes) else len(body)
            length = length if length or method in ("POST", "PUT", "PATCH") else None
        head = _head(method, target, headers, length)
        conn = self._take(target.key)
        if conn is None:
            conn = await self._connect(target.key)
        conn.send(head, body if isinstance(body, bytes) else b"")
        try:
            if isinstance(body, BodyStream):
                await conn.stream(body)
            elif not isinstance(body, bytes):
                await conn.send_pieces(body)
            await conn.response_head()
        except BaseException:
            conn.finish()
            raise
        return Response(conn)

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_ok = self.loop.time() - self.keepalive
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if transport is not None and not transport.is_closing() and conn.idle_since > oldest_ok:
                return conn
            conn._close()
        return None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl
            if context is None:
                context = self._ssl = ssl.create_default_context()
                context.set_alpn_protocols(["http/1.1"])
        conn = _Connection(self, key)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self.loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise TimeoutError(f"connecting to {host}:{port} took too long") from None
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UpstreamError(f"cannot connect to {host}:{port}: {reason}") from exc
        return conn

    def put(self, conn: _Connection) -> None:
        if self._closed:
            conn._close()
            return
        conn.idle_since = self.loop.time()
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= _MAX_IDLE:
            idle.pop(0)._close()
        idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        """A connection closed: it must not be handed out again."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn._close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
