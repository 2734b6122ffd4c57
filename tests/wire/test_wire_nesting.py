"""`nesting.loads`: one depth limit for JSON from outside, counted in containers only."""

from __future__ import annotations

import orjson
import pytest

from irisgate.wire import nesting
from irisgate.wire.nesting import MAX_DEPTH, TooDeep


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("document", [arrays(MAX_DEPTH), objects(MAX_DEPTH), b"1", b'"[[[["'])
def test_up_to_the_limit_parses_as_orjson_does(document: bytes | str) -> None:
    assert nesting.loads(document) == orjson.loads(document)


@pytest.mark.parametrize("document", [arrays(MAX_DEPTH + 1), objects(MAX_DEPTH + 1), arrays(1024)])
def test_deeper_is_refused_as_a_decode_error_saying_why(document: bytes | str) -> None:
    with pytest.raises(orjson.JSONDecodeError) as caught:
        nesting.loads(document)
    assert isinstance(caught.value, TooDeep)
    assert str(caught.value) == f"nested deeper than {MAX_DEPTH} levels"


def test_brackets_inside_strings_and_wide_documents_do_not_count() -> None:
    wide = orjson.dumps({"messages": [{"content": "[" * 5000} for _ in range(1000)]})
    assert len(nesting.loads(wide)["messages"]) == 1000


def test_orjsons_own_limit_still_applies() -> None:
    with pytest.raises(orjson.JSONDecodeError, match="depth limit exceeded"):
        nesting.loads(arrays(2000))
