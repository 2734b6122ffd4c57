"""SSEParser and split_events against the WHATWG event-stream rules, fed at every split."""

from __future__ import annotations

import pytest

from irisgate.wire.sse import SSEEvent, SSEParser, split_events

# One stream exercising most of the grammar: comments, named events, ids, retry, multi-line
# data, a field without colon, an event without data, a non-ASCII payload.
STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"type":"message_start"}\n'
    b"\n"
    b"id: 42\n"
    b"data: first line\n"
    b"data:second line\n"
    b"data:  leading space kept\n"
    b"\n"
    b"event: only-type-no-data\n"
    b"\n"
    b"retry: 3000\n"
    b"data\n"
    b"\n"
    b"data: caf\xc3\xa9 \xe2\x98\x95\n"
    b"unknown: field\n"
    b"\n"
)
EXPECTED = [
    SSEEvent("message_start", b'{"type":"message_start"}', ""),
    SSEEvent("message", b"first line\nsecond line\n leading space kept", "42"),
    SSEEvent("message", b"", "42"),
    SSEEvent("message", "caf\u00e9 \u2615".encode(), "42"),
]


def parse_all(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def two_way_splits(stream: bytes) -> list[list[bytes]]:
    return [[stream[:k], stream[k:]] for k in range(len(stream) + 1)]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_stream_parses_identically_at_every_split(ending: bytes) -> None:
    stream = STREAM.replace(b"\n", ending)
    assert parse_all([stream]) == EXPECTED
    for pieces in two_way_splits(stream):
        assert parse_all(pieces) == EXPECTED, pieces
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


def test_mixed_line_endings() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\nevent: x\rdata: d\r\r"
    expected = [SSEEvent("message", b"a\nb\nc"), SSEEvent("x", b"d")]
    assert parse_all([stream]) == expected
    for pieces in two_way_splits(stream):
        assert parse_all(pieces) == expected


def test_cr_then_lf_in_next_piece_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [SSEEvent("message", b"a")]
    assert parser.feed(b"\ndata: b\r\n") == []  # this LF closes the CR above: no empty line
    assert parser.feed(b"\r\n") == [SSEEvent("message", b"b")]


def test_retry_and_last_event_id_are_exposed() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 1500\nid: abc\ndata: x\n\nretry: soon\n\n")
    assert parser.retry == 1500
    assert parser.last_event_id == "abc"


def test_id_with_nul_is_ignored_and_id_persists() -> None:
    events = parse_all([b"id: 7\ndata: a\n\nid: bad\x00id\ndata: b\n\ndata: c\n\n"])
    assert [event.id for event in events] == ["7", "7", "7"]


def test_empty_id_resets_last_event_id() -> None:
    events = parse_all([b"id: 7\ndata: a\n\nid\ndata: b\n\n"])
    assert [event.id for event in events] == ["7", ""]


def test_event_type_resets_after_dispatch() -> None:
    events = parse_all([b"event: ping\ndata: {}\n\ndata: plain\n\n"])
    assert [event.event for event in events] == ["ping", "message"]


def test_unterminated_event_is_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"partial": tr') == []
    assert parser.feed(b"ue}\n") == []  # the line is complete, the event is not


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_bom_is_stripped_once_even_when_split(ending: bytes) -> None:
    stream = b"\xef\xbb\xbfdata: a" + ending + ending + b"\xef\xbb\xbfdata: b" + ending * 2
    expected = [SSEEvent("message", b"a"), SSEEvent("message", b"b")]
    assert parse_all([stream]) == [expected[0]]  # a BOM later is part of the field name
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == [expected[0]]
    bom_only_at_start = b"\xef\xbb\xbfdata: a\n\n"
    for pieces in two_way_splits(bom_only_at_start):
        assert parse_all(pieces) == [expected[0]]


def test_incomplete_bom_prefix_is_data() -> None:
    assert parse_all([b"\xef", b"\xbbdata: x\n\n"]) == []  # field name "\xef\xbbdata"
    assert parse_all([b"\xef", b"\n", b"data: y\n\n"]) == [SSEEvent("message", b"y")]


def test_empty_feed_is_harmless() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"data: x\n\n") == [SSEEvent("message", b"x")]


# --- split_events ---------------------------------------------------------------------------


def split_incrementally(pieces: list[bytes]) -> tuple[list[bytes], bytes]:
    blocks: list[bytes] = []
    rest = b""
    for piece in pieces:
        found, rest = split_events(rest + piece)
        blocks.extend(found)
    return blocks, rest


def test_split_events_returns_raw_blocks_unchanged() -> None:
    buffer = b'event: a\ndata: {"x":1}\n\n: comment\n\ndata: tail'
    blocks, rest = split_events(buffer)
    assert blocks == [b'event: a\ndata: {"x":1}\n\n', b": comment\n\n"]
    assert rest == b"data: tail"


def test_split_events_lone_empty_lines_are_their_own_blocks() -> None:
    blocks, rest = split_events(b"\ndata: a\n\n\n\ndata: b\n")
    assert blocks == [b"\n", b"data: a\n\n", b"\n", b"\n"]
    assert rest == b"data: b\n"


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_split_events_at_every_split(ending: bytes) -> None:
    stream = STREAM.replace(b"\n", ending)
    reference, rest = split_events(stream)
    # a final CR could still be followed by LF, so a CR-only stream keeps its last block back
    assert rest == (
        b"" if ending != b"\r" else b"data: caf\xc3\xa9 \xe2\x98\x95\runknown: field\r\r"
    )
    blocks = [*reference, rest] if rest else reference
    assert b"".join(blocks) == stream
    # fed block by block to one parser, the blocks give exactly the stream's events
    assert parse_all(blocks) == EXPECTED
    assert all(len(SSEParser().feed(block)) <= 1 for block in blocks)
    for pieces in two_way_splits(stream):
        assert split_incrementally(pieces) == (reference, rest)
    one_byte_each = [stream[i : i + 1] for i in range(len(stream))]
    assert split_incrementally(one_byte_each) == (reference, rest)


def test_split_events_holds_back_a_trailing_cr() -> None:
    blocks, rest = split_events(b"data: a\r\n\r")
    assert blocks == []
    assert rest == b"data: a\r\n\r"
    blocks, rest = split_events(rest + b"\ndata: b")
    assert blocks == [b"data: a\r\n\r\n"]
    assert rest == b"data: b"
    blocks, rest = split_events(b"data: a\r\rdata: b")
    assert blocks == [b"data: a\r\r"]


def test_split_events_mixed_endings() -> None:
    buffer = b"data: a\r\n\ndata: b\n\r\ndata: c\r\r\n"
    blocks, rest = split_events(buffer)
    assert blocks == [b"data: a\r\n\n", b"data: b\n\r\n", b"data: c\r\r\n"]
    assert rest == b""
