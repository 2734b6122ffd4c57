"""A multipart upload on its way upstream, never held whole (`/v1/audio/transcriptions`,
`/v1/audio/translations`, `/v1/files`).

`Upload.read_fields` reads ahead only until the first file part starts (at most
`LOOKAHEAD` bytes): the text fields before it (`model`, `purpose`, `response_format` …) are
what routing, grants and records need. The OpenAI SDKs send their text fields first. The
upload is then a `BodyStream` (wire/http1.py): the bytes read ahead, then the rest as the
client sends them, each piece counted against `--max-request-body` and watched by the
multipart reader (wire/multipart.py), which describes the file parts for the record (name,
filename, content type, size: never their bytes) and, for a batch input file, reads its
JSONL lines for the models they name (`BatchLines`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from irisgate.wire import nesting
from irisgate.wire.bodylimit import ClientGone, check_declared
from irisgate.wire.errors import GatewayError
from irisgate.wire.multipart import (
    MultipartError,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
#: bytes read before the first file part at most: the text fields must come within them
LOOKAHEAD = 64 * 1024
#: the longest text field value kept
MAX_FIELD = 8 * 1024
#: the longest line of a batch input file (each is one request)
MAX_BATCH_LINE = 4 * 1024 * 1024
#: the most distinct models one batch input file may name
MAX_BATCH_MODELS = 16


class BatchLines:
    """Sans-io reader of a batch input file (JSONL, one request per line): the models its
    request bodies name. A line longer than `MAX_BATCH_LINE`, a line that is not a JSON
    object with a `body.model` string, or more than `MAX_BATCH_MODELS` models is an error."""

    def __init__(self) -> None:
        self.models: set[str] = set()
        self.lines = 0
        self._partial = b""

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_BATCH_LINE:
            raise _bad(f"line {self.lines + 1} of the batch file is over {MAX_BATCH_LINE} bytes")
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, line: bytes) -> None:
        self.lines += 1
        if not line.strip():
            return
        try:
            parsed = nesting.loads(line)
        except orjson.JSONDecodeError:
            raise _bad(f"line {self.lines} of the batch file is not JSON") from None
        body = parsed.get("body") if isinstance(parsed, dict) else None
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise _bad(f"line {self.lines} of the batch file has no body.model string")
        self.models.add(model)
        if len(self.models) > MAX_BATCH_MODELS:
            raise _bad(f"the batch file names more than {MAX_BATCH_MODELS} models")


def _bad(message: str) -> GatewayError:
    return GatewayError("invalid_request", message, param="file")


class Upload:
    """One multipart request body: read ahead for its fields, then streamed (module doc)."""

    def __init__(
        self,
        receive: Receive,
        headers: Iterable[tuple[bytes, bytes]],
        limit: int,
        setting: str,
    ) -> None:
        self._receive = receive
        self._limit, self._setting = limit, setting
        raw = list(headers)
        self.length: int | None = None
        content_type = ""
        for name, value in raw:
            lowered = name.lower()
            if lowered == b"content-length" and value.strip().isdigit():
                self.length = int(value.strip())
            elif lowered == b"content-type":
                content_type = value.decode("latin-1")
        check_declared(raw, limit, setting)
        try:
            self._reader = MultipartReader(boundary_of(content_type))
        except MultipartError as exc:
            raise GatewayError("invalid_request", str(exc)) from None
        self.fields: dict[str, str] = {}
        self.files: list[dict[str, Any]] = []
        self.size = 0  # bytes received so far
        self.batch: BatchLines | None = None  # set before streaming to read a batch file
        self._ahead: list[bytes] = []
        self._ended = False  # the client's body has ended
        self._field: tuple[str, list[bytes]] | None = None
        self._file: dict[str, Any] | None = None
        self._in_file = False
        self._streaming = False
        self._file_ahead: list[bytes] = []
        self._done = asyncio.Event()  # the client's body has ended

    async def read_fields(self) -> None:
        """Read until the first file part starts (or the body ends): `fields` is complete."""
        while not self._in_file and not self._ended:
            if self.size > LOOKAHEAD:
                raise GatewayError(
                    "invalid_request",
                    f"the multipart text fields must come before the file, within the "
                    f"first {LOOKAHEAD} bytes of the body",
                )
            self._ahead.append(await self._next())

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        ahead, self._ahead = self._ahead, []
        self._streaming = True
        if self.batch is not None:
            for piece in self._file_ahead:
                self.batch.feed(piece)
        self._file_ahead = []
        for piece in ahead:
            yield piece
        while not self._ended:
            yield await self._next()
        if not self._reader.finished:
            raise GatewayError(
                "invalid_request", "the multipart body ended before its last boundary"
            )
        if self.batch is not None:
            self.batch.close()

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self._limit:
            raise GatewayError(
                "too_large",
                f"request body larger than {self._limit} bytes (the limit set by {self._setting})",
            )
        if not message.get("more_body", False):
            self._ended = True
            self._done.set()
        try:
            events = self._reader.feed(chunk)
        except MultipartError as exc:
            raise GatewayError("invalid_request", str(exc)) from None
        for event in events:
            self._event(event)
        return chunk

    def _event(self, event: PartStart | PartData | PartEnd) -> None:
        if isinstance(event, PartStart):
            if event.filename is not None:
                self._in_file = True
                self._file = {
                    "field": event.name,
                    "filename": event.filename[:200],
                    "content_type": event.content_type[:100],
                    "bytes": 0,
                }
                self.files.append(self._file)
            else:
                self._field = (event.name, [])
        elif isinstance(event, PartData):
            if self._file is not None:
                self._file["bytes"] += len(event.data)
                if not self._streaming:  # read ahead: fed to `batch` once it is known
                    self._file_ahead.append(event.data)
                elif self.batch is not None:
                    self.batch.feed(event.data)
            elif self._field is not None:
                pieces = self._field[1]
                pieces.append(event.data)
                if sum(map(len, pieces)) > MAX_FIELD:
                    raise GatewayError(
                        "invalid_request",
                        f"multipart field '{self._field[0][:100]}' is over {MAX_FIELD} bytes",
                        param=self._field[0][:100],
                    )
        else:
            if self._field is not None:
                name, pieces = self._field
                self.fields.setdefault(name, b"".join(pieces).decode("utf-8", "replace"))
            self._field = None
            self._file = None

    def described(self) -> bytes:
        """What capture keeps of the body: its text fields and its files' names, types
        and sizes (never their bytes)."""
        return orjson.dumps({"fields": self.fields, "files": self.files, "bytes": self.size})

    def after_body(self, receive: Receive) -> Receive:
        """`receive` for the relay's watch of the client: it must not read the body."""

        async def watch() -> Message:
            await self._done.wait()
            return await receive()

        return watch
