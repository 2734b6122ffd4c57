"""MCP upstream answers, read under a size limit (`--max-connector-answer`).

The `mcp` SDK's client reads a JSON answer whole (`response.aread()`), however long, and
bounds the events of an SSE answer by its `max_sse_event_size`. `LimitedTransport` wraps the
httpx2 transport of an upstream session so that a JSON answer (anything but
`text/event-stream`) longer than the limit fails as it is read: refused from its
`Content-Length` alone when it declares one, else as soon as the bytes read cross the limit,
so at most the limit plus one read is held. Sessions ask for uncompressed answers; a JSON
answer compressed anyway is refused unread, since the limit could not bound what it inflates
to. The failure is an `httpx2.StreamError`, which the
SDK turns into a JSON-RPC parse error for the call; irisgate reports it naming the connector
(`weather: Failed to parse JSON response: answer larger than …`). An SSE answer is limited
event by event: the bytes since its last blank line may not pass the limit (the Streamable
HTTP client of the SDK also gets the limit as its `max_sse_event_size`; its legacy SSE
client has no such bound, so this is the one for `transport: "sse"` connectors).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

SETTING = "--max-connector-answer"


class AnswerRefused(httpx2.StreamError):
    """An upstream answer irisgate will not read; the message says why."""


def _too_large(limit: int) -> AnswerRefused:
    return AnswerRefused(f"answer larger than {limit} bytes (the limit set by {SETTING})")


class _Counted(httpx2.AsyncByteStream):
    """The answer's body, failing once more than `limit` bytes came, or at once when
    `refusal` says why it is not read at all."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int, refusal: str | None) -> None:
        self._inner = inner
        self._limit = limit
        self._refusal = refusal

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._refusal is not None:
            raise AnswerRefused(self._refusal)
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise _too_large(self._limit)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _PerEvent(httpx2.AsyncByteStream):
    """An SSE stream, failing once one event (the bytes since the last blank line) grows
    past `limit`: the legacy SSE transport of the SDK reads events without a bound."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pending = 0  # bytes of the event under way
        tail = b""  # the last bytes seen, for a blank line split across chunks
        async for chunk in self._inner:
            window = tail + chunk
            end = max(_after(window, sep) for sep in _BLANK)
            pending = len(window) - end if end >= 0 else pending + len(chunk)
            if pending > self._limit:
                raise AnswerRefused(
                    f"event larger than {self._limit} bytes (the limit set by {SETTING})"
                )
            tail = window[-3:]
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


_BLANK = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _after(data: bytes, separator: bytes) -> int:
    """Where the last `separator` in `data` ends; -1 without one."""
    at = data.rfind(separator)
    return at + len(separator) if at >= 0 else -1


class LimitedTransport(httpx2.AsyncBaseTransport):
    """`inner`, with every answer limited to `limit` bytes (an SSE stream per event)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            response.stream = _PerEvent(response.stream, self._limit)
            return response
        response.stream = _Counted(response.stream, self._limit, self._refusal(response))
        return response

    def _refusal(self, response: httpx2.Response) -> str | None:
        """Why the answer is not read at all: too long by its `Content-Length`, or
        compressed although irisgate asked for none (its inflated size would be unbounded)."""
        length = response.headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > self._limit:
            return str(_too_large(self._limit))
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            return f"answer compressed ({encoding[:40]}) although irisgate asked for none"
        return None

    async def aclose(self) -> None:
        await self._inner.aclose()
