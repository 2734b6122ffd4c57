"""The client side of the HTTP server: uvicorn's httptools protocol with limits on time, size
and count, so that slow, incomplete or oversized requests cannot tie the gateway up.

uvicorn bounds the idle time of a keep-alive connection, but a connection that sends nothing,
or half a request head, or a body that stalls, stays open forever, and httptools accepts
headers of any size and number. `protocol_class` adds, per connection:

- **header timeout**: a request's line and headers must arrive within `--header-timeout`
  seconds (from the connection's start, or from the first byte of a later request on it);
- **body timeout**: a request body may stall (no byte arriving while irisgate is ready for
  one) at most `--body-timeout` seconds; time irisgate itself is not reading does not count;
- **send timeout**: an answer may stall (irisgate has bytes for the client, which accepts
  none of them) at most `--send-timeout` seconds; then the connection is cut (aborted: a
  plain close would wait for the client to take the buffered bytes). The app sees the
  client disconnect, so a relayed stream stops its upstream and is recorded as cancelled;
- **head size and count**: at most `--max-header-bytes` of request line plus headers and
  `--max-headers` header fields, else `431` and the connection closes;
- **connection cap**: at most `--max-connections` open connections. A new connection past
  the cap closes the *oldest idle* one (idle: no request being served, that is waiting
  between keep-alive requests or still sending its head), so half-sent requests give way to
  new clients, and requests being served are never cut. When every connection is serving a
  request, the new one gets `503` and is closed.

A timed-out connection is closed without an answer: its client is not reading one.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from irisgate.settings import Settings

log = structlog.get_logger("irisgate.listener")
#: file descriptors kept for everything but client connections (upstreams, database, files)
FD_RESERVE = 512


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


class Connections:
    """Open client connections, the idle ones in the order they became idle."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self._idle: OrderedDict[GuardedProtocol, None] = OrderedDict()

    def opened(self, conn: GuardedProtocol) -> bool:
        """Count a new connection, closing the oldest idle one past the cap; False when
        every other connection is serving a request (the new one must go)."""
        self.count += 1
        self._idle[conn] = None
        if self.count <= self.cap:
            return True
        victim = next(iter(self._idle))
        if victim is conn:
            return False
        del self._idle[victim]
        victim.evict()
        return True

    def busy(self, conn: GuardedProtocol) -> None:
        self._idle.pop(conn, None)

    def idle(self, conn: GuardedProtocol) -> None:
        self._idle[conn] = None
        self._idle.move_to_end(conn)

    def closed(self, conn: GuardedProtocol) -> None:
        self.count -= 1
        self._idle.pop(conn, None)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; `protocol_class` sets them."""

    header_timeout: float
    body_timeout: float
    send_timeout: float
    keepalive_timeout: float
    max_header_bytes: int
    max_headers: int
    table: Connections

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.keepalive_timeout  # type: ignore[assignment]  # float
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._body_at = 0.0  # loop time of the last body byte (or of being ready for one)
        self._refusal = b""
        self._counted = False
        self._send_timer: asyncio.TimerHandle | None = None
        self._unsent = 0  # bytes the transport held when the send timer was last armed

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._counted = True
        if not self.table.opened(self):
            self._answer(503, "too many connections (--max-connections); try again later")
            return
        self._arm(self.header_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_send_timer()
        if self._counted:
            self._counted = False
            self.table.closed(self)
        super().connection_lost(exc)

    def evict(self) -> None:
        """Closed to make room for a new connection (see `Connections`)."""
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes:
            self._answer(
                431, f"request head larger than {self.max_header_bytes} bytes (--max-header-bytes)"
            )

    def send_400_response(self, msg: str) -> None:
        if self._refusal:  # a limit stopped the parser, not a malformed request
            self.transport.write(self._refusal)
            self.transport.close()
            return
        super().send_400_response(msg)

    # --- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._timer is None:  # a later request on a kept-alive connection
            self._arm(self.header_timeout, self._head_expired)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = _raw_answer(
                431, f"more than {self.max_headers} header fields (--max-headers)"
            )
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        self.table.busy(self)
        super().on_headers_complete()
        self._body_at = self.loop.time()
        self._arm(self.body_timeout, self._body_stalled)

    def on_body(self, body: bytes) -> None:
        self._body_at = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts a pipelined request, if one waits
        if not self.transport.is_closing() and self.cycle.response_complete:
            self.table.idle(self)

    # --- writing ---------------------------------------------------------------------------

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark for the client."""
        super().pause_writing()
        self._arm_send_timer()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_send_timer()

    def _arm_send_timer(self) -> None:
        self._stop_send_timer()
        self._unsent = self.transport.get_write_buffer_size()
        self._send_timer = self.loop.call_later(self.send_timeout, self._send_stalled)

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_stalled(self) -> None:
        self._send_timer = None
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() < self._unsent:  # the client took some
            self._arm_send_timer()
            return
        log.info("cut a connection whose client stopped reading its answer", client=self.client)
        self.transport.abort()

    # --- timers ----------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_expired(self) -> None:
        self._timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()

    def _body_stalled(self) -> None:
        self._timer = None
        if self._in_head or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:  # irisgate is not reading: the client is not the slow one
            self._body_at = now
        due = self._body_at + self.body_timeout
        if now < due:
            self._arm(due - now, self._body_stalled)
            return
        log.info("closed a connection whose request body stalled", client=self.client)
        self.transport.close()

    def _answer(self, status: int, message: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(_raw_answer(status, message))
            self.transport.close()


def _raw_answer(status: int, message: str) -> bytes:
    """An answer written below the app (no request reached it): plain text, then close."""
    reason = {431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    body = f"{message}\n".encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def protocol_class(settings: Settings) -> type[GuardedProtocol]:
    """The protocol for one server, with the settings' limits and its own connection table
    (its cap lowered to what the process's file-descriptor limit allows)."""
    cap = min(settings.max_connections, usable_descriptors() - FD_RESERVE)
    if cap < settings.max_connections:
        log.warning(
            "fewer client connections than --max-connections: raise the open-files limit",
            max_connections=settings.max_connections,
            usable=cap,
        )
    table = Connections(max(cap, 1))

    class ServerProtocol(GuardedProtocol):
        pass

    ServerProtocol.header_timeout = settings.header_timeout
    ServerProtocol.body_timeout = settings.body_timeout
    ServerProtocol.send_timeout = settings.send_timeout
    ServerProtocol.keepalive_timeout = settings.keepalive_timeout
    ServerProtocol.max_header_bytes = settings.max_header_bytes
    ServerProtocol.max_headers = settings.max_headers
    ServerProtocol.table = table
    return ServerProtocol


def usable_descriptors() -> int:
    """The open-files limit, after raising the soft limit as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.warning("could not raise the open-files limit", soft=soft, hard=hard)
    return soft
