"""Relay: send the upstream request and stream the answer back to the client as it arrives.

Status, headers (minus hop-by-hop) and body bytes pass through unchanged; each chunk is
forwarded as soon as it is read and also kept, within bounds (the tee, tee.py), for usage
parsing and capture after the answer ends. Only when the gateway itself asked for stream
usage on the client's behalf does a filter sit between upstream and client, removing exactly
what was added.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from irisgate.gateway.formats.base import ChunkFilter
from irisgate.gateway.tee import Tee
from irisgate.gateway.timing import NAME as SERVER_TIMING
from irisgate.gateway.timing import server_timing
from irisgate.wire.errors import GatewayError
from irisgate.wire.http1 import Http1Client, Response, UpstreamError
from irisgate.wire.upstream import HOP_BY_HOP, UpstreamRequest

Send = Callable[[dict[str, Any]], Awaitable[None]]
_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)
#: set by the ASGI server itself on every response (uvicorn prepends its own `date`); the
#: upstream's copy is captured but not forwarded, or the client would get two Date headers
_SERVER_SET = frozenset({b"date"})


@dataclass(slots=True)
class RelayResult:
    tee: Tee  # upstream body bytes, unfiltered, within the capture limit
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    first_byte_at: float | None = None  # perf_counter when the first body byte went out
    upstream_done_at: float | None = None
    error: str = ""  # set when the upstream broke off after the answer had started

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


async def relay(
    client: Http1Client,
    request: UpstreamRequest,
    send: Send,
    result: RelayResult,
    *,
    extra_headers: list[tuple[bytes, bytes]],
    chunk_filter: ChunkFilter | None = None,
    request_started: float | None = None,
    before_end: Callable[[], None] | None = None,
) -> None:
    """Fill `result` while streaming. Raises GatewayError before the answer starts only;
    once the client has the status line, a failure sets `result.error` and leaves the body
    unfinished: returning without the final body message makes the ASGI server close the
    connection, so the client sees the answer broken off (as the upstream's own client would)
    instead of a clean end of a truncated answer.

    With `request_started` (perf_counter when the gateway began on the request) the answer
    carries a `Server-Timing` header (see timing.py). `before_end` is called once the
    upstream's answer is complete, just before the message that completes the client's
    (the gateway journals the request's record there)."""
    upstream_started = time.perf_counter()
    try:
        upstream = await client.request(request.method, request.url, request.headers, request.body)
    except TimeoutError as exc:
        result.upstream_done_at = time.perf_counter()
        raise GatewayError("timeout", f"{request.name} did not answer in time") from exc
    except UpstreamError as exc:
        result.upstream_done_at = time.perf_counter()
        raise GatewayError(
            "upstream", f"upstream unreachable: {_describe(exc)}", code="upstream_error"
        ) from exc
    try:
        result.status = upstream.status
        headers = result.headers
        out_headers: list[tuple[bytes, bytes]] = []
        length = b""
        for name, value in upstream.raw_headers:
            lowered = name.lower()
            if lowered in _HOP_BYTES:
                if lowered == b"content-length":
                    length = value
                continue
            headers[lowered.decode("latin-1")] = value.decode("latin-1")
            if lowered not in _SERVER_SET:
                out_headers.append((name, value))
        if chunk_filter is None and length:
            out_headers.append((b"content-length", length))
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
    except UpstreamError as exc:
        result.error = f"upstream connection broke mid-answer: {_describe(exc)}"
    finally:
        upstream.close()
        if result.upstream_done_at is None:
            result.upstream_done_at = time.perf_counter()


#: a complete (non-stream) answer up to this size goes out in one write instead of two
_ONE_WRITE = 1 << 20


async def _pump(
    upstream: Response,
    send: Send,
    result: RelayResult,
    chunk_filter: ChunkFilter | None,
    before_end: Callable[[], None] | None,
) -> None:
    tee = result.tee
    length = upstream.content_length
    if chunk_filter is None and length is not None and length <= _ONE_WRITE:
        body = await upstream.read()
        tee.add(body)
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
            await send({"type": "http.response.body", "body": out, "more_body": True})


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
