"""Shared checks of the translation adapters' stream decoders (sans-io)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pytest

from irisgate.translate import ir


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> list[ir.Event]: ...

    def finish(self) -> list[ir.Event]: ...


def decode(decoder: StreamDecoder, *pieces: bytes) -> list[ir.Event]:
    events: list[ir.Event] = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.finish()


def _joined(last: ir.Event | None, event: ir.Event) -> ir.Event | None:
    """`last` and `event` as one delta, when both add to the same block's text."""
    if isinstance(event, ir.TextDelta) and isinstance(last, ir.TextDelta):
        same = last.index == event.index
        return ir.TextDelta(last.index, last.text + event.text) if same else None
    if isinstance(event, ir.ToolArgsDelta) and isinstance(last, ir.ToolArgsDelta):
        same = last.index == event.index
        return ir.ToolArgsDelta(last.index, last.fragment + event.fragment) if same else None
    if (
        isinstance(event, ir.ReasoningDelta)
        and isinstance(last, ir.ReasoningDelta)
        and last.index == event.index
        and not (last.signature or last.redacted or event.signature or event.redacted)
    ):
        return ir.ReasoningDelta(last.index, last.text + event.text)
    return None


def merged(events: list[ir.Event]) -> list[ir.Event]:
    """Events (Start's id aside) with consecutive text, reasoning-text and argument deltas of
    one block joined: how a stream is split may change how its pieces arrive, never what they
    add up to."""
    out: list[ir.Event] = []
    for event in events:
        # a format without answer ids makes one per decode
        current = ir.Start("", event.model) if isinstance(event, ir.Start) else event
        joined = _joined(out[-1] if out else None, current)
        if joined is None:
            out.append(current)
        else:
            out[-1] = joined
    return out


@pytest.fixture
def at_every_split() -> Callable[[Callable[[], Any], bytes], list[ir.Event]]:
    """Decode `data` whole, then split in two at every byte offset and one byte at a time;
    every way gives the same events (the whole decode's, returned)."""

    def check(make: Callable[[], StreamDecoder], data: bytes) -> list[ir.Event]:
        whole = decode(make(), data)
        for cut in range(1, len(data)):
            assert merged(decode(make(), data[:cut], data[cut:])) == merged(whole), cut
        assert merged(decode(make(), *(data[i : i + 1] for i in range(len(data))))) == merged(whole)
        return whole

    return check
