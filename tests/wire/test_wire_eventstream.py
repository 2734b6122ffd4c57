"""Bedrock's event stream framing, decoded from byte fixtures fed in every possible split."""

from __future__ import annotations

import struct
import zlib

import pytest

from irisgate.wire.eventstream import EventStreamDecoder, Message, encode_message


def frame(raw_headers: bytes, payload: bytes) -> bytes:
    """A message built by hand from the spec (not by the encoder under test)."""
    total = 16 + len(raw_headers) + len(payload)
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def string_header(name: str, value: str) -> bytes:
    return (
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
    )


CHUNK = frame(
    string_header(":event-type", "chunk")
    + string_header(":content-type", "application/json")
    + string_header(":message-type", "event"),
    b'{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=","p":"abc"}',
)

# the first 12 bytes of CHUNK, checked by hand: total length, headers length, prelude CRC
PRELUDE = struct.pack(">II", 16 + 75 + 54, 75)


def test_fixture_layout_is_what_the_spec_says() -> None:
    assert CHUNK[:8] == PRELUDE
    assert CHUNK[8:12] == struct.pack(">I", zlib.crc32(PRELUDE))
    assert len(CHUNK) == 16 + 75 + 54


def test_one_message_decodes() -> None:
    (message,) = EventStreamDecoder().feed(CHUNK)
    assert message.header(":event-type") == "chunk"
    assert message.header(":message-type") == "event"
    assert message.payload.startswith(b'{"bytes":')


def test_any_split_gives_the_same_messages() -> None:
    stream = CHUNK + frame(string_header(":event-type", "metadata"), b"{}") + CHUNK
    for cut in range(1, len(stream)):
        decoder = EventStreamDecoder()
        messages = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [m.header(":event-type") for m in messages] == ["chunk", "metadata", "chunk"]
        assert decoder.pending == 0 and decoder.error is None


def test_byte_by_byte() -> None:
    decoder = EventStreamDecoder()
    messages: list[Message] = []
    for i in range(len(CHUNK)):
        messages += decoder.feed(CHUNK[i : i + 1])
    assert len(messages) == 1


def test_header_value_types() -> None:
    raw = (
        b"\x01t\x00"  # bool true
        + b"\x01f\x01"  # bool false
        + b"\x01b\x02\xff"  # byte -1
        + b"\x01s\x03\x01\x00"  # short 256
        + b"\x01i\x04\x00\x00\x01\x00"  # int 256
        + b"\x01l\x05"
        + (2**40).to_bytes(8, "big")  # long
        + b"\x01y\x06\x00\x02\x00\xff"  # bytes
        + b"\x01d\x08"
        + (1700000000000).to_bytes(8, "big")  # timestamp (ms)
        + b"\x01u\x09"
        + bytes(range(16))  # uuid
    )
    (message,) = EventStreamDecoder().feed(frame(raw, b""))
    assert message.headers == {
        "t": True,
        "f": False,
        "b": -1,
        "s": 256,
        "i": 256,
        "l": 2**40,
        "y": b"\x00\xff",
        "d": 1700000000000,
        "u": bytes(range(16)),
    }


@pytest.mark.parametrize(
    ("position", "reason"),
    [(2, "prelude CRC mismatch"), (60, "message CRC mismatch"), (-1, "message CRC mismatch")],
)
def test_corruption_is_refused(position: int, reason: str) -> None:
    broken = bytearray(CHUNK)
    broken[position] ^= 0x01
    decoder = EventStreamDecoder()
    assert decoder.feed(bytes(broken) + CHUNK) == []
    assert decoder.error == reason
    assert decoder.feed(CHUNK) == [], "a failed stream stays failed"


def test_cut_stream_leaves_bytes_pending() -> None:
    decoder = EventStreamDecoder()
    assert len(decoder.feed(CHUNK + CHUNK[:20])) == 1
    assert decoder.pending == 20


def test_encoder_matches_the_hand_built_frame() -> None:
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    payload = b'{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=","p":"abc"}'
    assert encode_message(headers, payload) == CHUNK  # type: ignore[arg-type]
