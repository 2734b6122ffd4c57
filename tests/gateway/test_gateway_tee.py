"""The tee keeps the head and a rolling tail of an answer, never more than its bounds."""

from __future__ import annotations

import pytest

from irisgate.gateway.tee import Tee


def _fed(data: bytes, piece: int, limit: int = 100, tail: int = 10) -> Tee:
    tee = Tee(limit, tail_limit=tail)
    for at in range(0, len(data), piece):
        tee.add(data[at : at + piece])
    return tee


@pytest.mark.parametrize("piece", [1, 3, 7, 64, 1000])
def test_an_answer_within_the_limit_is_kept_whole(piece: int) -> None:
    data = bytes(range(100))
    tee = _fed(data, piece)
    assert not tee.truncated
    assert tee.head() == tee.stored() == data
    assert tee.tail() == b""


@pytest.mark.parametrize("piece", [1, 3, 7, 64, 1000, 5000])
def test_past_the_limit_the_head_and_a_bounded_tail_are_kept(piece: int) -> None:
    data = bytes(i % 251 for i in range(5000))
    tee = _fed(data, piece)
    assert tee.truncated and tee.size == 5000
    assert tee.head() == data[:100]
    tail = tee.tail()
    assert data.endswith(tail)
    assert 10 <= len(tail) <= max(2 * 10, piece)
    assert tee.stored().startswith(data[:100] + b"\n[irisgate: truncated; the body was 5000 bytes")


@pytest.mark.parametrize("piece", [1, 7, 64, 5000])
def test_without_a_tail_only_the_head_is_kept(piece: int) -> None:
    # how connectors capture an answer: its first bytes and its size, nothing from its end
    data = bytes(i % 251 for i in range(5000))
    tee = _fed(data, piece, tail=0)
    assert tee.truncated and tee.size == 5000
    assert tee.head() == data[:100]
    assert tee.tail() == b""
