"""Request bodies, read under a size limit: the one reader for every path that takes a body.

A body is refused from its `Content-Length` alone when that is over the limit, before a byte
of it is read; a body without one (chunked) is counted as it arrives and refused as soon as
it crosses the limit. Such a body is held in memory only up to `SPILL_AT`; past that it goes
to an anonymous temporary file (unlinked at once, mode 0600) until it has ended within the
limit, so a chunked body the limit refuses never costs its size in memory, however many
arrive at once. Callers check the
caller's identity and role before they read (see docs/security.md). `close_unread` makes
any answer given before the body was read to its end close the connection, so the rest of
a refused body is never read.

The limits are settings (`--max-request-body`, `--max-connector-body`, `--max-api-body`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import IO, Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: the header that makes the server close the connection after the answer
CLOSE = (b"connection", b"close")
#: bytes of a body without `Content-Length` held in memory before the rest goes to a file
SPILL_AT = 1 << 20


class BodyTooLarge(Exception):
    """The body is larger than the limit; the message names the limit and its setting."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(f"request body larger than {limit} bytes (the limit set by {setting})")
        self.limit = limit


class ClientGone(Exception):
    """The client disconnected before its request body ended."""


def check_declared(headers: Iterable[tuple[bytes, bytes]], limit: int, setting: str) -> bool:
    """Refuse a body whose `Content-Length` is over `limit`, from the header alone; whether
    the body has a `Content-Length` (within the limit, then)."""
    for name, value in headers:
        declared = value.strip()
        if name.lower() == b"content-length" and declared.isdigit():
            if int(declared) > limit:
                raise BodyTooLarge(limit, setting)
            return True
    return False


async def read_body(
    receive: Receive, headers: Iterable[tuple[bytes, bytes]], limit: int, setting: str
) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to be over `limit`."""
    declared = check_declared(headers, limit, setting)
    chunks: list[bytes] = []
    size = 0
    spill: IO[bytes] | None = None
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit, setting)
            if spill is not None:
                spill.write(chunk)
            elif chunk:
                chunks.append(chunk)
                if not declared and size > SPILL_AT:
                    spill = tempfile.TemporaryFile()  # noqa: SIM115  # closed below
                    spill.writelines(chunks)
                    chunks = []
            if not message.get("more_body", False):
                break
        if spill is not None:
            spill.seek(0)
            return spill.read()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        if spill is not None:
            spill.close()


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands an app the body already read, then waits on the real one (for
    the client's disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def close_unread(scope: dict[str, Any], receive: Receive, send: Send) -> tuple[Receive, Send]:
    """`receive` and `send` for an app that may answer before reading the whole body (a
    refusal, a 413): such an answer carries `Connection: close`, so the server closes the
    connection instead of reading (and discarding) the rest. Requests without a body pass
    through untouched."""
    if not _has_body(scope["headers"]):
        return receive, send
    done = False

    async def watched_receive() -> Message:
        nonlocal done
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    async def closing_send(message: Message) -> None:
        if message["type"] == "http.response.start" and not done:
            headers = list(message.get("headers", ()))
            if not any((name.lower(), value.lower()) == CLOSE for name, value in headers):
                message = {**message, "headers": [*headers, CLOSE]}
        await send(message)

    return watched_receive, closing_send


def _has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False
