"""The spool's entry format: a record comes back exactly as written, and a file cut short
(a machine crash in the middle of a write) or damaged yields exactly its intact entries
before the damage, never an error or a wrong record."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import orjson
import pytest

from irisgate.telemetry.entries import HEADER, EntryError, decode, encode, read_frames
from irisgate.telemetry.record import RequestRecord
from irisgate.usage.tokens import Usage


def record(number: int, **overrides: object) -> RequestRecord:
    values: dict[str, object] = {
        "request_id": f"req_{number:028x}",
        "started_at": datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC),
        "login_name": "alice@example.com",
        "display_name": "Alice Ünïcode",
        "tags": ("tag:ci", "tag:prod"),
        "model": "gpt-4o-mini",
        "provider": "openai",
        "stream": True,
        "status": 200,
        "duration_ms": 12.5,
        "ttfb_ms": None,
        "usage": Usage(input_tokens=10 + number, output_tokens=3, reasoning_tokens=1),
        "cost_nanodollars": 1234 * number,
        "request_headers": {"content-type": "application/json", "x-odd": "a\x00b"},
        "request_body": b'{"model":"gpt-4o-mini"}' * number,
        "response_body": bytes(range(256)),  # not UTF-8
        "response_raw": b"data: [DONE]\n\n" if number % 2 else None,
        "response_raw_encoding": "gzip" if number % 2 else "",
    }
    values.update(overrides)
    return RequestRecord(**values)  # type: ignore[arg-type]


RECORDS = [
    record(1),
    record(2, indexed_headers=(("x-team", "red"), ("x-secret", ""))),
    record(3, cost_nanodollars=None, response_id="resp_1"),
]


def test_a_record_comes_back_exactly_as_written() -> None:
    for original in RECORDS:
        frames = read_frames(encode(original))
        [(offset, payload)] = frames.items
        assert offset == 0
        assert decode(payload) == original


def test_a_frame_written_before_indexed_headers_still_reads() -> None:
    """A spool left by the version before `indexed_headers` (its meta three fields shorter:
    `indexed_headers` and the API key's `key_id`, `key_name` came after it) is replayed
    after the upgrade, the record without indexed headers or key."""
    original = record(4)
    [(_, payload)] = read_frames(encode(original)).items
    id_size = int.from_bytes(payload[:2], "little")
    start = 2 + id_size
    meta_size = int.from_bytes(payload[start : start + 4], "little")
    meta = orjson.loads(bytes(payload[start + 4 : start + 4 + meta_size]))
    older = orjson.dumps([*meta[:-6], *meta[-3:]])  # without indexed_headers and the key
    assert len(older) < meta_size
    old_payload = (
        bytes(payload[:start])
        + len(older).to_bytes(4, "little")
        + older
        + bytes(payload[start + 4 + meta_size :])
    )
    [(_, again)] = read_frames(
        HEADER.pack(b"IGR1", len(old_payload), zlib.crc32(old_payload)) + old_payload
    ).items
    assert decode(again) == original


def test_a_buffer_cut_anywhere_yields_exactly_the_entries_before_the_cut() -> None:
    encoded = [encode(r) for r in RECORDS]
    data = b"".join(encoded)
    ends = [sum(len(e) for e in encoded[: n + 1]) for n in range(len(encoded))]
    for cut in range(len(data) + 1):
        frames = read_frames(data[:cut])
        complete = sum(1 for end in ends if end <= cut)
        assert [decode(p) for _, p in frames.items] == RECORDS[:complete]
        assert frames.end == (ends[complete - 1] if complete else 0)


def test_a_damaged_entry_ends_the_reading_there() -> None:
    encoded = [encode(r) for r in RECORDS]
    data = bytearray(b"".join(encoded))
    second = len(encoded[0])
    for position in (second, second + 5, second + HEADER.size + 3, second + len(encoded[1]) - 1):
        damaged = bytearray(data)
        damaged[position] ^= 0x40
        frames = read_frames(bytes(damaged))
        assert [decode(p) for _, p in frames.items] == RECORDS[:1]
        assert frames.end == second


def test_a_length_beyond_the_buffer_is_damage_not_a_huge_read() -> None:
    header = HEADER.pack(b"IGR1", 2**31, 0)
    assert read_frames(encode(RECORDS[0]) + header).items[0][0] == 0
    assert len(read_frames(encode(RECORDS[0]) + header + b"x" * 100).items) == 1


def test_a_checksummed_payload_that_is_no_record_is_refused_by_name() -> None:
    payload = b"\x03\x00abc\x02\x00\x00\x00[]"
    frame = HEADER.pack(b"IGR1", len(payload), zlib.crc32(payload)) + payload
    [(_, read)] = read_frames(frame).items
    with pytest.raises(EntryError, match="not a request record"):
        decode(read)


def test_a_record_that_cannot_be_encoded_is_refused_by_name() -> None:
    with pytest.raises(EntryError, match="cannot be written to the spool"):
        encode(record(1, cost_nanodollars=2**70))


def test_an_entry_spooled_before_records_named_their_key_is_still_read() -> None:
    """A spool written by the version before API keys (no `key_id`, `key_name` in the meta)
    is replayed after an upgrade: those fields come back empty."""
    original = record(4, key_id="key_0123456789abcdef", key_name="laptop")
    [(_, payload)] = read_frames(encode(original)).items
    data = bytes(payload)
    id_size = int.from_bytes(data[:2], "little")
    start = 2 + id_size
    meta_size = int.from_bytes(data[start : start + 4], "little")
    meta = orjson.loads(data[start + 4 : start + 4 + meta_size])
    older = orjson.dumps([*meta[:-11], *meta[-3:]])  # the key fields and all after them gone
    rest = data[start + 4 + meta_size :]
    old_payload = data[:start] + len(older).to_bytes(4, "little") + older + rest
    frame = HEADER.pack(b"IGR1", len(old_payload), zlib.crc32(old_payload)) + old_payload
    [(_, read)] = read_frames(frame).items
    assert decode(read) == record(4)
    assert decode(payload) == original


def test_a_translated_record_keeps_both_sides_bodies() -> None:
    original = record(
        5,
        request_body=b'{"caller": 1}',
        response_body=b'{"answer": 1}',
        response_raw=b"raw",
        upstream_format="anthropic_messages",
        upstream_request_body=b'{"provider": 1}',
        upstream_response_body=b'{"provider answer": 1}',
    )
    [(_, payload)] = read_frames(encode(original)).items
    assert decode(payload) == original


def test_a_record_of_another_kind_keeps_its_kind_and_units() -> None:
    original = record(7, kind="image", unit="image", units=2)
    [(_, payload)] = read_frames(encode(original)).items
    assert decode(payload) == original


def test_an_entry_spooled_before_translation_and_kinds_is_still_read() -> None:
    """A spool written before translation and request kinds (no `upstream_*`, `kind`,
    `unit`, `units` in the meta) comes back untranslated, as chat."""
    original = record(6, key_id="key_0123456789abcdef", key_name="laptop")
    [(_, payload)] = read_frames(encode(original)).items
    data = bytes(payload)
    id_size = int.from_bytes(data[:2], "little")
    start = 2 + id_size
    meta_size = int.from_bytes(data[start : start + 4], "little")
    meta = orjson.loads(data[start + 4 : start + 4 + meta_size])
    older = orjson.dumps([*meta[:-9], *meta[-3:]])  # the upstream and kind fields gone
    rest = data[start + 4 + meta_size :]
    old_payload = data[:start] + len(older).to_bytes(4, "little") + older + rest
    frame = HEADER.pack(b"IGR1", len(old_payload), zlib.crc32(old_payload)) + old_payload
    [(_, read)] = read_frames(frame).items
    assert decode(read) == original
