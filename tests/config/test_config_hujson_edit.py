"""`hujson_edit.edit`: a config text changed to a new value keeps its comments, order and
layout; properties checked over the Aperture example and the default config."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irisgate.config.defaults import DEFAULT_CONFIG_TEXT
from irisgate.config.hujson import KeyPath, parse
from irisgate.config.hujson_edit import MAX_WORK, TooManyChanges, edit

EXAMPLE = (Path(__file__).parent / "aperture_example.hujson").read_text(encoding="utf-8")
TEXTS = {"aperture_example": EXAMPLE, "default": DEFAULT_CONFIG_TEXT}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def comments(text: str) -> list[tuple[int, str]]:
    """Every comment of a HuJSON text with its offset (strings skipped)."""
    return [(m.start(), m.group()) for m in _TOKEN.finditer(text) if m.group()[0] == "/"]


def paths(value: Any, path: KeyPath = ()) -> list[tuple[KeyPath, Any]]:
    found = [(path, value)]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*path, index))
    return found


def at(value: Any, path: KeyPath) -> Any:
    for part in path:
        value = value[part]
    return value


scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=12),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def mutate(data: st.DataObject, text: str) -> tuple[Any, tuple[int, int] | None]:
    """One random change to the value of `text`, and the text span whose comments it may
    remove (a removed or replaced element through its line's end)."""
    document = parse(text)
    new = copy.deepcopy(document.value)
    path, node = data.draw(st.sampled_from(paths(new)))
    kind = data.draw(st.sampled_from(["set", "delete", "add"]))
    if kind == "add" and isinstance(node, dict):
        key = data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in node))
        node[key] = data.draw(values)
        return new, None
    if kind == "add" and isinstance(node, list):
        node.insert(data.draw(st.integers(0, len(node))), data.draw(values))
        return new, None
    if not path:
        return new, None
    parent = at(new, path[:-1])
    start = document.start_of(path)
    span = document.span_of(path)
    assert start is not None and span is not None
    line_end = text.find("\n", span[1])
    exempt = (start, len(text) if line_end < 0 else line_end)
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(values)
    return new, exempt


@pytest.mark.parametrize("name", sorted(TEXTS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_change_round_trips_and_keeps_comments(name: str, data: st.DataObject) -> None:
    text = TEXTS[name]
    new, exempt = mutate(data, text)
    out = edit(text, new)
    assert parse(out).value == new
    kept = [
        c for offset, c in comments(text) if exempt is None or not exempt[0] <= offset < exempt[1]
    ]
    found = [c for _, c in comments(out)]
    for comment in kept:
        assert comment in found
    assert edit(out, new) == out  # nothing left to change


@pytest.mark.parametrize("name", sorted(TEXTS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_many_value_changes_keep_every_comment(name: str, data: st.DataObject) -> None:
    text = TEXTS[name]
    new = copy.deepcopy(parse(text).value)
    leaves = [p for p, v in paths(new) if p and not isinstance(v, dict | list)]
    for path in data.draw(st.lists(st.sampled_from(leaves), max_size=6, unique=True)):
        at(new, path[:-1])[path[-1]] = data.draw(scalars)
    out = edit(text, new)
    assert parse(out).value == new
    assert [c for _, c in comments(out)] == [c for _, c in comments(text)]


def test_unchanged_value_is_the_same_text() -> None:
    for text in TEXTS.values():
        assert edit(text, parse(text).value) == text


def test_an_edit_touches_only_the_lines_it_changes() -> None:
    new = copy.deepcopy(parse(EXAMPLE).value)
    new["providers"]["openai"]["name"] = "OpenAI (prod)"
    new["providers"]["anthropic"]["preference"] = 5
    del new["providers"]["dgxspark"]
    new["grants"].pop(0)
    new["quotas"]["team-monthly"]["capacity"] = "$600.00"
    out = edit(EXAMPLE, new)
    before, after = EXAMPLE.splitlines(), out.splitlines()
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before]
    assert '      "name": "OpenAI (prod)",' in added
    assert '      "preference": 5,' in added  # after the last member, in the file's comma style
    assert any("dgxspark" in line for line in removed)
    assert any("alice@example.com" in line for line in removed)
    assert len(removed) == 5 and len(added) == 3
    assert "// Providers" in out and "// Access control" in out
    assert '"apikey": "keyid:anthropic-prod",            // [INF] secret reference form' in out


def test_new_members_follow_the_objects_style() -> None:
    text = '{\n\t"a": {"x": 1},\n\t"b": [\n\t\t1\n\t] // last\n}\n'
    new = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": {"d": [{"e": True}]}}
    out = edit(text, new)
    assert parse(out).value == new
    assert '"a": {"x": 1, "y": 2},' in out  # inline object grows inline
    assert "\t\t1,\n\t\t2\n" in out  # tab indentation kept
    assert "// last" in out
    assert '\t"c": {\n\t\t"d": [\n\t\t\t{"e": true}\n\t\t]\n\t}\n' in out


def test_removing_the_last_member_takes_its_comma() -> None:
    assert edit('{"a": 1, "b": 2}', {"a": 1}) == '{"a": 1}'
    assert edit("[1, 2, 3]", [1, 3]) == "[1, 3]"
    assert edit('{\n  "a": 1,\n  "b": 2 // b\n}', {"a": 1}) == '{\n  "a": 1\n}'
    assert edit('{"a": 1}', {}) == "{}"


def test_long_lists_are_paired_by_position() -> None:
    old = list(range(1000))
    text = json.dumps({"models": old})
    new = [*old[1:], -1]  # matching would find 999 equal items; pairing changes all 1000
    assert parse(edit(text, {"models": new})).value == {"models": new}


def test_work_is_bounded() -> None:
    big = {f"k{i}": i for i in range(2000)}
    text = json.dumps(big, indent=2) + " " * (MAX_WORK // 1000)
    with pytest.raises(TooManyChanges):
        edit(text, {k: -v for k, v in big.items()})
