"""A sans-io reader of `multipart/form-data` bodies (RFC 7578), fed bytes as they arrive.

Uploads (`/v1/audio/transcriptions`, `/v1/files`) pass through irisgate as they arrive; this
reader only watches them: it yields each part's head (`PartStart`: name, filename, content
type), its bytes (`PartData`, in pieces as fed) and its end (`PartEnd`), holding back at most
one delimiter's length of a part's bytes. Limits are checked as bytes are fed: a part head
longer than `max_head`, more than `max_parts` parts, or junk where a delimiter must be is a
`MultipartError` naming what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

#: RFC 2046: a boundary is 1 to 70 characters
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
MAX_HEAD = 16 * 1024
MAX_PARTS = 64


class MultipartError(ValueError):
    """The body is not multipart/form-data this reader accepts; the message says why."""


@dataclass(frozen=True, slots=True)
class PartStart:
    name: str
    filename: str | None
    content_type: str


@dataclass(frozen=True, slots=True)
class PartData:
    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data` content type, or MultipartError."""
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        raise MultipartError("the request body must be multipart/form-data")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("the multipart/form-data content type has no boundary")
    raw = boundary.encode("latin-1", "replace")
    if _BOUNDARY.fullmatch(raw) is None:
        raise MultipartError("the multipart boundary is not a valid boundary (RFC 2046)")
    return raw


class MultipartReader:
    """Feed it the body's bytes in order; `feed` returns the events they complete."""

    def __init__(self, boundary: bytes, *, max_head: int = MAX_HEAD, max_parts: int = MAX_PARTS):
        self._first = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._max_head = max_head
        self._max_parts = max_parts
        self._buffer = b""
        self._state = "preamble"  # preamble | after | head | body | done
        self.parts = 0

    @property
    def finished(self) -> bool:
        """The closing delimiter was read."""
        return self._state == "done"

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        if self._state == "done":
            return events  # an epilogue: ignored
        buffer = self._buffer + data if self._buffer else data
        step = self._steps()
        while True:
            buffer, progressed = step[self._state](buffer, events)
            if not progressed or self._state == "done":
                break
        self._buffer = b"" if self._state == "done" else buffer
        return events

    def _steps(self) -> dict[str, Callable[[bytes, list[Event]], tuple[bytes, bool]]]:
        return {
            "preamble": self._preamble,
            "after": self._after,
            "head": self._head,
            "body": self._body,
        }

    # each step consumes what it can of `buffer`: (the rest, whether to go on with the
    # next state's step; False when more bytes are needed)

    def _preamble(self, buffer: bytes, events: list[Event]) -> tuple[bytes, bool]:
        if not buffer.startswith(self._first[: len(buffer)]):
            raise MultipartError("the multipart body does not start with its boundary")
        if len(buffer) < len(self._first):
            return buffer, False
        self._state = "after"
        return buffer[len(self._first) :], True

    def _after(self, buffer: bytes, events: list[Event]) -> tuple[bytes, bool]:
        if len(buffer) < 2:
            return buffer, False
        if buffer.startswith(b"--"):
            self._state = "done"
            return b"", False
        if not buffer.startswith(b"\r\n"):
            raise MultipartError("junk after a multipart boundary")
        self._state = "head"
        return buffer[2:], True

    def _head(self, buffer: bytes, events: list[Event]) -> tuple[bytes, bool]:
        end = buffer.find(b"\r\n\r\n")
        if (end < 0 and len(buffer) > self._max_head) or end > self._max_head:
            raise MultipartError(f"a multipart part head is over {self._max_head} bytes")
        if end < 0:
            return buffer, False
        self.parts += 1
        if self.parts > self._max_parts:
            raise MultipartError(f"more than {self._max_parts} multipart parts")
        events.append(_part_start(buffer[:end]))
        self._state = "body"
        return buffer[end + 4 :], True

    def _body(self, buffer: bytes, events: list[Event]) -> tuple[bytes, bool]:
        at = buffer.find(self._delimiter)
        if at >= 0:
            if at:
                events.append(PartData(buffer[:at]))
            events.append(PartEnd())
            self._state = "after"
            return buffer[at + len(self._delimiter) :], True
        keep = len(self._delimiter) - 1
        if len(buffer) > keep:
            events.append(PartData(buffer[: len(buffer) - keep]))
            return buffer[len(buffer) - keep :], False
        return buffer, False


def _part_start(head: bytes) -> PartStart:
    message = Message()
    for line in head.decode("utf-8", "replace").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise MultipartError("a multipart part head line has no ':'")
        message[name.strip()] = value.strip()
    if message.get_content_disposition() != "form-data":
        raise MultipartError("a multipart part is not form-data")
    field = message.get_param("name", header="content-disposition")
    if not isinstance(field, str):
        raise MultipartError("a multipart part has no name")
    filename = message.get_filename()
    return PartStart(field, filename, message.get("content-type", "text/plain"))
