"""The spool's entry format: one `RequestRecord` as one self-checking frame of bytes (sans-io).

A frame is a 12-byte header, `b"IGR1"`, the payload's length (u32, little-endian) and the
payload's CRC-32, then the payload:

    u16 id length | request id (UTF-8) | u32 meta length | meta (orjson) | bodies

The meta is a JSON array of the record's fields in `META_FIELDS` order (a translated
request's two upstream bodies as their lengths) followed by the lengths of the three bodies
(request, response, raw response; -1 for "no raw response"), and the bodies follow as raw
bytes, the upstream bodies last (no base64: they are most of a record's size). The id
comes first so that a reader can tell which frame is a record's last without decoding it.

`read_frames` walks a buffer and stops at the first frame that is incomplete or fails its
checksum (a write torn by a machine crash): what it yields is exactly the intact frames
before that point, and `Frames.end` says where it stopped.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson

from irisgate.telemetry.record import RequestRecord
from irisgate.usage.tokens import Usage

MAGIC = b"IGR1"
HEADER = struct.Struct("<4sII")  # magic, payload length, payload CRC-32
_ID_LEN = struct.Struct("<H")
_META_LEN = struct.Struct("<I")
#: no single frame is larger (a header claiming more is damage, not a record)
MAX_PAYLOAD = 1 << 31

_BODIES = ("request_body", "response_body", "response_raw")
META_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord) if f.name not in _BODIES)
_meta_of = attrgetter(*META_FIELDS)
_STARTED_AT = META_FIELDS.index("started_at")
_TAGS = META_FIELDS.index("tags")
_USAGE = META_FIELDS.index("usage")
_HEADERS = META_FIELDS.index("indexed_headers")
#: fields added at the end since the first spool format, with the defaults that frames
#: written before them get (in order: a frame lacks the last few)
_ADDED: tuple[tuple[str, Any], ...] = (
    ("indexed_headers", []),
    ("key_id", ""),
    ("key_name", ""),
    ("upstream_format", ""),
    ("upstream_request_body", 0),
    ("upstream_response_body", 0),
    ("kind", "chat"),
    ("unit", ""),
    ("units", 0),
)
#: the fields written as a length in the meta, their bytes after the three bodies
_UP_REQUEST = META_FIELDS.index("upstream_request_body")
_UP_RESPONSE = META_FIELDS.index("upstream_response_body")
if META_FIELDS[-len(_ADDED) :] != tuple(name for name, _ in _ADDED):
    raise RuntimeError("RequestRecord's last fields must be those of _ADDED, in order")


class EntryError(ValueError):
    """A record that cannot be encoded, or a frame's payload that passed its checksum but
    is not a record this version can read."""


def encode(record: RequestRecord) -> bytes:
    """The frame of `record` (header included); `EntryError` when a value cannot be
    written (a malformed record, which the writer skips and logs)."""
    try:
        raw = record.response_raw
        request_body, response_body = record.request_body, record.response_body
        up_request, up_response = record.upstream_request_body, record.upstream_response_body
        values = list(_meta_of(record))
        values[_UP_REQUEST], values[_UP_RESPONSE] = len(up_request), len(up_response)
        meta = orjson.dumps(
            (
                *values,
                len(request_body),
                len(response_body),
                -1 if raw is None else len(raw),
            )
        )
        rid = record.request_id.encode()
        payload = b"".join(
            (
                _ID_LEN.pack(len(rid)),
                rid,
                _META_LEN.pack(len(meta)),
                meta,
                request_body,
                response_body,
                raw or b"",
                up_request,
                up_response,
            )
        )
    except (TypeError, ValueError, AttributeError, struct.error, orjson.JSONEncodeError) as exc:
        raise EntryError(f"cannot be written to the spool: {exc}") from None
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def request_id_of(payload: bytes | memoryview) -> str:
    """The request id of a frame's payload, without decoding the rest."""
    (size,) = _ID_LEN.unpack_from(payload, 0)
    return bytes(payload[2 : 2 + size]).decode()


def decode(payload: bytes | memoryview) -> RequestRecord:
    """The record in a frame's payload; `EntryError` when it is not one."""
    try:
        (id_size,) = _ID_LEN.unpack_from(payload, 0)
        start = 2 + id_size
        (meta_size,) = _META_LEN.unpack_from(payload, start)
        start += 4
        values: list[Any] = orjson.loads(bytes(payload[start : start + meta_size]))
        start += meta_size
        raw_size = values.pop()
        response_size = values.pop()
        request_size = values.pop()
        missing = len(META_FIELDS) - len(values)
        if 0 < missing <= len(_ADDED):  # a frame written before the last fields existed
            values.extend(default for _, default in _ADDED[len(_ADDED) - missing :])
        elif missing:
            raise EntryError(f"{len(values)} fields, expected {len(META_FIELDS)}")
        values[_HEADERS] = tuple((str(k), str(v)) for k, v in values[_HEADERS])
        values[_STARTED_AT] = datetime.fromisoformat(values[_STARTED_AT])
        values[_TAGS] = tuple(values[_TAGS])
        values[_USAGE] = Usage(**values[_USAGE])
        up_request_size, up_response_size = values[_UP_REQUEST], values[_UP_RESPONSE]
        values[_UP_REQUEST] = values[_UP_RESPONSE] = b""
        record = RequestRecord(**dict(zip(META_FIELDS, values, strict=True)))
        body = bytes(payload[start:])
        sizes = (request_size, response_size, max(raw_size, 0), up_request_size, up_response_size)
        if len(body) != sum(sizes):
            raise EntryError("the bodies' lengths do not add up")
        bodies: list[bytes] = []
        at = 0
        for size in sizes:
            bodies.append(body[at : at + size])
            at += size
        record.request_body, record.response_body = bodies[0], bodies[1]
        if raw_size >= 0:
            record.response_raw = bodies[2]
        record.upstream_request_body, record.upstream_response_body = bodies[3], bodies[4]
    except (struct.error, orjson.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, EntryError):
            raise
        raise EntryError(f"not a request record: {exc}") from None
    return record


@dataclass(slots=True)
class Frames:
    """The intact frames at the start of a buffer: `(offset, payload)` pairs and where the
    intact part ends (`end < len(buffer)`: the rest is damaged and was not read)."""

    items: list[tuple[int, memoryview]]
    end: int


def read_frames(buffer: bytes) -> Frames:
    """Every intact frame from the start of `buffer`, up to the first damaged one."""
    items = list(_walk(memoryview(buffer), len(buffer)))
    end = items[-1][0] + HEADER.size + len(items[-1][1]) if items else 0
    return Frames(items, end)


def _walk(view: memoryview, size: int) -> Iterator[tuple[int, memoryview]]:
    offset = 0
    while offset + HEADER.size <= size:
        magic, length, crc = HEADER.unpack_from(view, offset)
        start = offset + HEADER.size
        if magic != MAGIC or length > MAX_PAYLOAD or start + length > size:
            return
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            return
        yield offset, payload
        offset = start + length
