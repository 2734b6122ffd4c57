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
Where the fields do come first and uploads are large (OpenAI audio and files: up to
`--max-request-body`), `StreamedUpload` relays the body as it arrives instead.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import IO, Any

from irisgate.wire.bodylimit import (
    SPILL_AT,
    BodyTooLarge,
    ClientGone,
    Message,
    Receive,
    check_declared,
)
from irisgate.wire.multipart import FormError, FormReader, boundary_of

#: bytes per piece handed to the upstream connection
PIECE = 256 * 1024
#: bytes a `StreamedUpload` reads before the first file part at most
LOOKAHEAD = 64 * 1024


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


class StreamedUpload:
    """An upload relayed to the upstream as it arrives (`BodyStream`, wire/http1.py), for
    APIs whose clients send their text fields before the file (the OpenAI SDKs do):
    `read_fields` reads ahead only until the first file part begins, at most `LOOKAHEAD`
    bytes, so routing, grants and quotas can use the fields; iterating then gives the bytes
    read ahead and the rest of the body as the client sends it, each piece counted against
    the limit and fed to the `FormReader` (which measures the files for the record and may
    hand a file's bytes to `on_file_data` as they pass). Nothing is kept: an upload of any
    size costs a piece of memory at a time. It can be sent once (no failover)."""

    def __init__(
        self,
        receive: Receive,
        headers: Iterable[tuple[bytes, bytes]],
        limit: int,
        setting: str,
    ) -> None:
        raw = list(headers)
        check_declared(raw, limit, setting)
        self.length: int | None = None
        content_type = ""
        for name, value in raw:
            lowered = name.lower()
            if lowered == b"content-length" and value.strip().isdigit():
                self.length = int(value.strip())
            elif lowered == b"content-type":
                content_type = value.decode("latin-1")
        self.reader = FormReader(boundary_of(content_type), on_file_data=self._file_data)
        #: set after `read_fields` to read the file parts' bytes as they pass (it is given
        #: the bytes read ahead first)
        self.on_file_data: Callable[[bytes], None] | None = None
        #: called once the body is complete (before its last piece goes upstream)
        self.on_end: Callable[[], None] | None = None
        self._file_ahead: list[bytes] = []
        self._streaming = False
        self.size = 0  # bytes received so far
        self._receive = receive
        self._limit, self._setting = limit, setting
        self._ahead: list[bytes] = []
        self._ended = False
        self._done = asyncio.Event()  # the client's body has ended

    async def read_fields(self) -> dict[str, str]:
        """The text fields before the first file (all of them when there is none); FormError
        when they do not end within LOOKAHEAD bytes."""
        while not self.reader.in_file and not self._ended:
            if self.size > LOOKAHEAD:
                raise FormError(
                    f"the multipart text fields must come before the file, within the first "
                    f"{LOOKAHEAD} bytes of the body"
                )
            self._ahead.append(await self._next())
        return self.reader.form.fields

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        ahead, self._ahead = self._ahead, []
        file_ahead, self._file_ahead = self._file_ahead, []
        self._streaming = True
        if self.on_file_data is not None:
            for data in file_ahead:
                self.on_file_data(data)
        if self._ended:
            self._finish()
        for piece in ahead:
            yield piece
        while not self._ended:
            chunk = await self._next()
            if self._ended:
                self._finish()
            yield chunk

    def _finish(self) -> None:
        """The body is complete: checked whole before its last piece goes upstream, so a
        bad end is refused without the upstream ever having the whole body."""
        self.reader.close()
        if self.on_end is not None:
            self.on_end()

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self._limit:
            raise BodyTooLarge(self._limit, self._setting)
        if not message.get("more_body", False):
            self._ended = True
            self._done.set()
        if chunk:
            self.reader.feed(chunk)
        return chunk

    def _file_data(self, data: bytes) -> None:
        if not self._streaming:  # read ahead (at most LOOKAHEAD and a piece)
            self._file_ahead.append(data)
        elif self.on_file_data is not None:
            self.on_file_data(data)

    def described(self) -> dict[str, Any]:
        """The body as capture stores it (`Form.summary`: fields inline, files by name, size
        and type) with its size so far."""
        return {**self.reader.form.summary(), "irisgate_upload_bytes": self.size}

    def after_body(self, receive: Receive) -> Receive:
        """`receive` for whoever watches the client for a disconnect while the upload goes
        upstream: it reads nothing before the upload has read the whole body."""

        async def watch() -> Message:
            await self._done.wait()
            return await receive()

        return watch
