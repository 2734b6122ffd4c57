"""Sans-io `application/vnd.amazon.eventstream` framing (Bedrock's streaming responses).

A message is::

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers            | payload              | message CRC32 (u32)

all big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything before it.
A header is a 1-byte name length, the name, a 1-byte value type and the value (bool, byte,
short, int, long, bytes, string, timestamp, uuid). The relay forwards the bytes untouched;
`EventStreamDecoder` reads them on the side, fed in pieces split at any byte, and refuses a
frame whose CRC does not match. `encode_message` is the inverse (for fakes and fixtures);
`encode_frame` frames a payload with a header block encoded once by `encode_headers`.
`whole_frames` keeps the complete messages of a stream of which only the start and the end
were kept (a long answer, see gateway/tee.py).
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

__all__ = [
    "EventStreamDecoder",
    "EventStreamError",
    "Message",
    "encode_frame",
    "encode_headers",
    "encode_message",
    "whole_frames",
]

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_MAX_MESSAGE = 16 * 1024 * 1024 + 128 * 1024  # AWS: 16 MiB payload + 128 KiB headers
HeaderValue = bool | int | bytes | str


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad length or CRC, unknown header type)."""


class Message(NamedTuple):  # a tuple: built once per frame, cheaper than a dataclass
    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str:
        """A string header's value, "" when absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else ""


# value type -> fixed size in bytes (types 6 and 7 carry a 2-byte length instead)
_FIXED = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            size = data[pos]
            name = data[pos + 1 : pos + 1 + size].decode("utf-8")
            pos += 1 + size
            kind = data[pos]
            pos += 1
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, pos)
                raw = data[pos + 2 : pos + 2 + length]
                pos += 2 + length
                value = raw.decode("utf-8") if kind == 7 else raw
            elif kind in _FIXED:
                width = _FIXED[kind]
                raw = data[pos : pos + width]
                pos += width
                value = raw if kind == 9 else int.from_bytes(raw, "big", signed=True)
            else:
                raise EventStreamError(f"unknown header value type {kind} for {name!r}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed headers: {exc}") from None
    if pos != end:
        raise EventStreamError("headers overrun their declared length")
    return headers


#: header blocks repeat in every message of a stream: decode each distinct one once
_HEADER_CACHE: dict[bytes, dict[str, HeaderValue]] = {}


def _headers(raw: bytes) -> dict[str, HeaderValue]:
    headers = _HEADER_CACHE.get(raw)
    if headers is None:
        headers = _decode_headers(raw)
        if len(_HEADER_CACHE) < 512:
            _HEADER_CACHE[raw] = headers
    return headers


class EventStreamDecoder:
    """Incremental decoder: `feed(data)` returns the messages completed by `data`.

    After an `EventStreamError` the stream cannot be resynchronised; the decoder stays failed
    (`error` holds the reason) and returns no more messages. Treat `Message.headers` as
    read-only: equal header blocks share one dict.
    """

    __slots__ = ("_buffer", "error")

    def __init__(self) -> None:
        self._buffer = b""
        self.error: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        if self.error is not None:
            return []
        buffer = self._buffer + data if self._buffer else data
        view = memoryview(buffer)
        messages: list[Message] = []
        append = messages.append
        pos, size, crc32 = 0, len(buffer), zlib.crc32
        unpack, u32, cache = _PRELUDE.unpack_from, _U32.unpack_from, _HEADER_CACHE
        try:
            while size - pos >= 12:
                total, headers_len, prelude_crc = unpack(buffer, pos)
                prelude = crc32(view[pos : pos + 8])
                if prelude != prelude_crc:
                    raise EventStreamError("prelude CRC mismatch")
                if total < 16 + headers_len or total > _MAX_MESSAGE:
                    raise EventStreamError(f"impossible message length {total}")
                end = pos + total
                if end > size:
                    break
                # the message CRC covers the prelude too: continue from the prelude's CRC
                if crc32(view[pos + 8 : end - 4], prelude) != u32(buffer, end - 4)[0]:
                    raise EventStreamError("message CRC mismatch")
                start = pos + 12 + headers_len
                raw_headers = buffer[pos + 12 : start]
                headers = cache.get(raw_headers)
                if headers is None:
                    headers = _headers(raw_headers)
                append(Message(headers, buffer[start : end - 4]))
                pos = end
        except EventStreamError as exc:
            self.error = str(exc)
        self._buffer = buffer[pos:]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held back (non-zero at the end: a cut stream)."""
        return len(self._buffer)


#: how far back from its end a cut stream's tail is searched for a message boundary
_RESYNC_WINDOW = 64 * 1024


def whole_frames(head: bytes, tail: bytes) -> bytes:
    """The complete messages at the start of `head` followed by those that end `tail`, for a
    stream whose middle was not kept. The tail's first message boundary is found by its
    prelude CRC within its last `_RESYNC_WINDOW` bytes (a stream's closing messages, which
    carry the usage, are small), and must lead to a clean end."""
    decoder = EventStreamDecoder()
    decoder.feed(head)
    kept = b"" if decoder.error is not None else head[: len(head) - decoder.pending]
    unpack, crc32 = _PRELUDE.unpack_from, zlib.crc32
    for pos in range(max(0, len(tail) - _RESYNC_WINDOW), len(tail) - 12):
        total, _, prelude_crc = unpack(tail, pos)
        if crc32(tail[pos : pos + 8]) != prelude_crc or total > len(tail) - pos:
            continue
        rest = EventStreamDecoder()
        if rest.feed(tail[pos:]) and rest.error is None and rest.pending == 0:
            return kept + tail[pos:]
    return kept


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    out = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return out + bytes([0 if value else 1])
    if isinstance(value, int):
        return out + b"\x04" + struct.pack(">i", value)
    raw = value.encode() if isinstance(value, str) else value
    kind = 7 if isinstance(value, str) else 6
    return out + bytes([kind]) + struct.pack(">H", len(raw)) + raw


def encode_headers(headers: dict[str, HeaderValue]) -> bytes:
    """A message's header block (string, bytes, int32 and bool values), for `encode_frame`."""
    return b"".join(_encode_header(k, v) for k, v in headers.items())


def encode_message(headers: dict[str, HeaderValue], payload: bytes) -> bytes:
    """One framed message (string, bytes, int32 and bool header values)."""
    return encode_frame(encode_headers(headers), payload)


def encode_frame(raw_headers: bytes, payload: bytes) -> bytes:
    """One framed message around an already encoded header block."""
    total = 16 + len(raw_headers) + len(payload)
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))
