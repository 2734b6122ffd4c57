"""`Usage` helpers that spell out its fields: they must cover every one."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest

from irisgate.usage.tokens import FIELD_NAMES, Usage


def test_field_names_are_the_dataclass_fields() -> None:
    assert tuple(f.name for f in fields(Usage)) == FIELD_NAMES


def test_empty_only_when_every_count_is_zero() -> None:
    assert Usage().is_empty()
    for name in FIELD_NAMES:
        assert not Usage(**{name: 1}).is_empty(), name
        assert not Usage(**{name: -1}).is_empty(), name


@pytest.mark.parametrize("usage", [Usage(), Usage(input_tokens=3, web_search_count=1)])
def test_as_dict_is_dataclasses_asdict(usage: Usage) -> None:
    assert list(usage.as_dict().items()) == list(asdict(usage).items())
