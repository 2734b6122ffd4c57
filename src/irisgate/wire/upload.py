"""An upload (a multipart/form-data body: an image to edit, audio to transcribe) read under
the body limit and kept for sending on, never whole in memory.

`read_upload` reads the body as it arrives, refuses it as soon as it crosses the limit (from
its `Content-Length` alone when that says so; `wire/bodylimit.py`), feeds every piece to a
sans-io parser (`wire/multipart.py`, which keeps the text fields and measures the files)
and keeps the bytes: in memory up to `SPILL_AT`, past that in an anonymous temporary file
(unlinked at once, mode 0600). `Upload.pieces` gives the body back in pieces for the
upstream request, as often as failover asks (wire/http1.py sends it with back-pressure), so
a 20 MB image costs a piece of memory at a time, however many arrive at once.

Why not relay the upload to the provider while it arrives: who the caller is, whether the
model is granted, the quota and the route all depend on the `model` field, which clients
may send after the file; and a body already sent cannot be sent again to the next provider.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from irisgate.wire.bodylimit import SPILL_AT, BodyTooLarge, ClientGone, Receive, check_declared
from irisgate.wire.multipart import FormReader

#: bytes per piece handed to the upstream connection
PIECE = 256 * 1024


class Upload:
    """A body read whole, held in memory or in a temporary file; `close` frees it."""

    def __init__(self) -> None:
        self.size = 0  # bytes as received
        self._memory: list[bytes] = []
        self._file: IO[bytes] | None = None
        #: (start, end, bytes): a value of the body replaced when it is sent on
        self._replacement: tuple[int, int, bytes] | None = None

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._file is not None:
            self._file.write(chunk)
            return
        self._memory.append(chunk)
        if self.size > SPILL_AT:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115  # closed by `close`
            self._file.writelines(self._memory)
            self._memory = []

    @property
    def sent_size(self) -> int:
        """The size of the body as `pieces` gives it (after the replacement)."""
        if self._replacement is None:
            return self.size
        start, end, value = self._replacement
        return self.size - (end - start) + len(value)

    def replace(self, span: tuple[int, int], old: bytes, new: bytes) -> bool:
        """Send `new` in place of the bytes at `span`, which must be `old`; False (nothing
        replaced) when they are not."""
        start, end = span
        if self._read(start, end - start) != old:
            return False
        self._replacement = (start, end, new)
        return True

    def pieces(self) -> Iterator[bytes]:
        """The body from its start, in pieces of at most PIECE bytes."""
        if self._replacement is None:
            yield from self._range(0, self.size)
            return
        start, end, value = self._replacement
        yield from self._range(0, start)
        yield value
        yield from self._range(end, self.size)

    def head(self, limit: int) -> bytes:
        """The first `limit` bytes."""
        return self._read(0, min(limit, self.size))

    def close(self) -> None:
        self._memory = []
        if self._file is not None:
            self._file.close()
            self._file = None

    def _range(self, start: int, end: int) -> Iterator[bytes]:
        at = start
        while at < end:
            piece = self._read(at, min(PIECE, end - at))
            if not piece:
                return
            yield piece
            at += len(piece)

    def _read(self, start: int, length: int) -> bytes:
        if self._file is not None:
            # a temporary file irisgate just wrote: in the page cache, a short blocking read
            self._file.seek(start)
            return self._file.read(length)
        body = self._memory[0] if len(self._memory) == 1 else b"".join(self._memory)
        self._memory = [body]
        return body[start : start + length]


async def read_upload(
    receive: Receive,
    headers: Iterable[tuple[bytes, bytes]],
    limit: int,
    setting: str,
    reader: FormReader,
) -> Upload:
    """The whole body, fed to `reader` as it arrives; BodyTooLarge as soon as it is known to
    be over `limit`, FormError (from the reader) as soon as it is known to be malformed."""
    check_declared(headers, limit, setting)
    upload = Upload()
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if upload.size + len(chunk) > limit:
                raise BodyTooLarge(limit, setting)
            if chunk:
                reader.feed(chunk)
                upload.add(chunk)
            if not message.get("more_body", False):
                return upload
    except BaseException:
        upload.close()
        raise
