"""The relay core: one way to pass an upstream's answer to a client, for LLM calls and connectors.

    watched(receive, relay(opening, send, result, ...), on_gone)

- `relay` awaits the upstream's answer (`opening`), forwards its status and headers (minus
  hop-by-hop and what the ASGI server sets itself) and pumps its body to the client as it
  arrives: one chunk in flight at a time, so a slow client slows the upstream read down
  (back-pressure) instead of piling the answer up in memory. Each chunk is also kept in a
  `Tee` (tee.py) for usage parsing and capture.
- An upstream that fails before its answer starts raises `Unanswered` (timed out, or not
  reached); each caller answers that in its own API's error format. Once the client has the
  status line, a failure only sets `RelayResult.error`: the body is left unfinished, so the
  ASGI server closes the connection and the client sees the answer broken off, as the
  upstream's own client would, instead of a clean end of a truncated answer.
- `watched` runs the relay while watching the client: a disconnect (or a write the server
  could no longer make) cancels the upstream read.

Request bodies are read under their limit by `irisgate.wire.bodylimit`, before the relay. What the
upstream client is stays outside: the LLM path passes its HTTP/1.1 client's answer (already
a `Source`), connectors an aiohttp answer wrapped in `AiohttpSource`; each names the
exceptions its client raises for a broken connection (`broken`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from irisgate.gateway.formats.base import ChunkFilter
from irisgate.gateway.tee import Tee
from irisgate.gateway.timing import NAME as SERVER_TIMING
from irisgate.gateway.timing import server_timing

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
Headers = list[tuple[bytes, bytes]]

#: a complete (non-stream) answer up to this size goes out in one write instead of two
ONE_WRITE = 1 << 20


class Source(Protocol):
    """An upstream's answer: status and headers at once, the body as it arrives."""

    @property
    def status(self) -> int: ...

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...

    @property
    def content_length(self) -> int | None: ...

    async def chunk(self) -> tuple[bytes, bool]:
        """Body bytes that arrived since the last call, and whether the body ended with them."""
        ...

    async def read(self) -> bytes:
        """The whole body (called only for a declared length up to `ONE_WRITE`)."""
        ...

    def close(self) -> None:
        """Done with the answer: the connection goes back to its pool or is closed."""
        ...


class Reframing(Protocol):
    """Turns an upstream's answer into another API's as it passes (gateway/translation.py):
    a filter for the body and the headers the client gets, both chosen by the status."""

    def open(self, status: int) -> ChunkFilter: ...

    def headers(self, status: int, forwarded: Headers) -> Headers: ...


class Unanswered(Exception):
    """The upstream failed before its answer started: it `timed_out`, or could not be
    reached (`cause` is the client's exception)."""

    def __init__(self, cause: BaseException, *, timed_out: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.timed_out = timed_out


@dataclass(slots=True)
class RelayResult:
    tee: Tee  # upstream body bytes, unfiltered, within the capture limit
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    first_byte_at: float | None = None  # perf_counter when the first body byte went out
    upstream_done_at: float | None = None
    error: str = ""  # set when the upstream broke off after the answer had started
    sent: int = 0  # body bytes given to the client (the last piece counted before it goes)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass(frozen=True, slots=True)
class Forwarding:
    """Which upstream headers reach the client, and how an upstream error is described."""

    hop_by_hop: frozenset[bytes]  # never forwarded nor kept (Content-Length is re-added)
    server_set: frozenset[bytes]  # kept in the result, not forwarded: the server sets its own
    broken: tuple[type[BaseException], ...]  # the client's errors for a broken connection
    describe: Callable[[BaseException], str]  # such an error, as records and answers say it
    #: rewrites the forwarded headers (connectors put their containment in)
    rewrite: Callable[[Headers], Headers] | None = None


async def relay(
    opening: Awaitable[Source],
    send: Send,
    result: RelayResult,
    forwarding: Forwarding,
    *,
    extra_headers: Headers,
    chunk_filter: ChunkFilter | None = None,
    request_started: float | None = None,
    before_end: Callable[[], None] | None = None,
    reframing: Reframing | None = None,
) -> None:
    """Fill `result` while streaming the answer `opening` yields. Raises `Unanswered` before
    the answer starts only.

    With `reframing` the answer is rewritten into another API's as it passes (translation);
    the tee keeps the upstream's bytes all the same.

    With `request_started` (perf_counter when the gateway began on the request) the answer
    carries a `Server-Timing` header (see timing.py). `before_end` is called once the
    upstream's answer is complete, just before the message that completes the client's."""
    upstream_started = time.perf_counter()
    try:
        upstream = await opening
    except TimeoutError as exc:
        result.upstream_done_at = time.perf_counter()
        raise Unanswered(exc, timed_out=True) from exc
    except forwarding.broken as exc:
        result.upstream_done_at = time.perf_counter()
        raise Unanswered(exc, timed_out=False) from exc
    try:
        result.status = upstream.status
        if reframing is not None:
            chunk_filter = reframing.open(upstream.status)
        out_headers = _headers(upstream, result, forwarding, chunk_filter is None)
        if reframing is not None:
            out_headers = reframing.headers(upstream.status, out_headers)
        out_headers.extend(extra_headers)
        if request_started is not None:
            gateway_s = upstream_started - request_started
            timing = server_timing(gateway_s, time.perf_counter() - upstream_started)
            out_headers.append((SERVER_TIMING, timing))
        await send(
            {"type": "http.response.start", "status": upstream.status, "headers": out_headers}
        )
        await _pump(upstream, send, result, chunk_filter, before_end)
    except TimeoutError:
        result.error = "upstream stopped sending before the answer was complete (timeout)"
    except forwarding.broken as exc:
        result.error = f"upstream connection broke mid-answer: {forwarding.describe(exc)}"
    finally:
        upstream.close()
        if result.upstream_done_at is None:
            result.upstream_done_at = time.perf_counter()


def _headers(
    upstream: Source, result: RelayResult, forwarding: Forwarding, with_length: bool
) -> Headers:
    """The headers the client gets; all but hop-by-hop ones are kept in `result.headers`."""
    hop_by_hop, server_set = forwarding.hop_by_hop, forwarding.server_set
    headers = result.headers
    out: Headers = []
    length = b""
    for name, value in upstream.raw_headers:
        lowered = name.lower()
        if lowered in hop_by_hop:
            if lowered == b"content-length":
                length = value
            continue
        headers[lowered.decode("latin-1")] = value.decode("latin-1")
        if lowered not in server_set:
            out.append((name, value))
    if forwarding.rewrite is not None:
        out = forwarding.rewrite(out)
    if with_length and length:
        out.append((b"content-length", length))
    return out


async def _pump(
    upstream: Source,
    send: Send,
    result: RelayResult,
    chunk_filter: ChunkFilter | None,
    before_end: Callable[[], None] | None,
) -> None:
    """Each piece goes out as it arrives; the next is read only once the client's server took
    this one (`send` returns), which is the back-pressure."""
    tee = result.tee
    length = upstream.content_length
    if chunk_filter is None and length is not None and length <= ONE_WRITE:
        body = await upstream.read()
        tee.add(body)
        result.sent = len(body)
        result.upstream_done_at = result.first_byte_at = time.perf_counter()
        if before_end is not None:
            before_end()
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    while True:
        chunk, done = await upstream.chunk()
        if chunk:
            tee.add(chunk)
        out = chunk_filter.feed(chunk) if chunk_filter is not None and chunk else chunk
        if done:
            result.upstream_done_at = time.perf_counter()
            if chunk_filter is not None:
                out += chunk_filter.flush()
            result.sent += len(out)
            if result.first_byte_at is None:
                result.first_byte_at = result.upstream_done_at
            if before_end is not None:
                before_end()
            # the upstream's last piece came with its end: one write, not two (the ASGI
            # server appends the end of the chunked body to this piece)
            await send({"type": "http.response.body", "body": out, "more_body": False})
            return
        if out:
            if result.first_byte_at is None:
                result.first_byte_at = time.perf_counter()
            result.sent += len(out)
            await send({"type": "http.response.body", "body": out, "more_body": True})


async def watched(
    receive: Receive,
    work: Coroutine[Any, Any, None],
    on_gone: Callable[[], None],
    is_gone: Callable[[], bool],
) -> None:
    """Run `work` (a relay) in this task while watching the client: when it disconnects before
    `work` is done, `on_gone()` marks the request cancelled and `work` is cancelled. A write
    the server could not make any more (OSError) counts as the client gone too. A
    cancellation ends quietly when `is_gone()` says the request was marked cancelled (by the
    watch, or by a shutdown that cuts requests the same way); any other goes on."""
    task = asyncio.current_task()
    assert task is not None
    done = False

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not done:
            on_gone()
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not is_gone():
            raise
        task.uncancel()
    except OSError:  # the server could not write to the client any more
        on_gone()
    finally:
        done = True
        watcher.cancel()


class AiohttpSource:
    """An aiohttp answer as a `Source` (for a session made with `auto_decompress=False`, so
    that the bytes counted are the bytes sent)."""

    __slots__ = ("_response", "content_length", "raw_headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.raw_headers = response.raw_headers
        self.content_length = response.content_length

    @classmethod
    async def of(cls, opening: Awaitable[aiohttp.ClientResponse]) -> AiohttpSource:
        return cls(await opening)

    async def chunk(self) -> tuple[bytes, bool]:
        content = self._response.content
        data = await content.readany()
        return data, not data or content.at_eof()

    async def read(self) -> bytes:
        return await self._response.read()

    def close(self) -> None:
        self._response.release()
