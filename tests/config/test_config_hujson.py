"""HuJSON parsing: values, comments, trailing commas, positions, syntax errors, speed."""

from __future__ import annotations

import json
import time

import pytest

from irisgate.config.hujson import MAX_DEPTH, HuJSONSyntaxError, parse, render_path

TEXT = """\
// leading comment
{
  /* block
     comment */ "name": "iris", // trailing comment
  "list": [1, -2.5, 3e2, true, false, null,],
  "nested": {"deep": {"key": "v\\u00e9\\ud83d\\ude00\\n"},},
  "empty": {},
}
"""


def test_parses_values_with_comments_and_trailing_commas() -> None:
    doc = parse(TEXT)
    assert doc.value == {
        "name": "iris",
        "list": [1, -2.5, 300.0, True, False, None],
        "nested": {"deep": {"key": "v\u00e9\U0001f600\n"}},
        "empty": {},
    }
    assert list(doc.value) == ["name", "list", "nested", "empty"]  # file order kept
    assert isinstance(doc.value["list"][0], int)
    assert isinstance(doc.value["list"][2], float)


def test_line_of_gives_key_line_for_members_and_value_line_for_items() -> None:
    doc = parse(TEXT)
    assert doc.line_of(()) == 2
    assert doc.line_of(("name",)) == 4
    assert doc.line_of(("list",)) == 5
    assert doc.line_of(("list", 5)) == 5
    assert doc.line_of(("nested", "deep", "key")) == 6
    assert doc.line_of(("missing",)) is None
    assert doc.line_of(("list", 6)) is None


def test_line_of_list_items_on_separate_lines() -> None:
    doc = parse('{"a": [\n  "x",\n  // note\n  "y",\n]}')
    assert doc.line_of(("a", 0)) == 2
    assert doc.line_of(("a", 1)) == 4


def test_span_of_covers_exactly_the_value_token() -> None:
    doc = parse(TEXT)
    for path, token in [
        (("name",), '"iris"'),
        (("list", 1), "-2.5"),
        (("list", 5), "null"),
        (("nested", "deep", "key"), '"v\\u00e9\\ud83d\\ude00\\n"'),
        (("empty",), "{}"),
    ]:
        span = doc.span_of(path)
        assert span is not None
        assert TEXT[span[0] : span[1]] == token
    nested = doc.span_of(("nested",))
    assert nested is not None
    assert TEXT[nested[0]] == "{"
    assert TEXT[nested[1] - 1] == "}"
    assert doc.span_of(("nope",)) is None


def test_byte_order_mark_is_ignored() -> None:
    assert parse('\ufeff{"a": 1}').value == {"a": 1}


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('{\n  "a": "open\n}', 2, 8, "unterminated string"),
        ('{\n  "a": "x\\q"\n}', 2, 10, 'invalid escape "\\q"'),
        ('{\n  "a": "\\u12"\n}', 2, 9, "four hex digits"),
        ('{\n  "a" 1\n}', 2, 7, "expected ':' after key \"a\""),
        ('{\n  "a": 1,\n  "a": 2\n}', 3, 3, 'duplicate key "a"'),
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "missing ',' after the value of \"a\""),
        ("[1,\n,2]", 2, 1, "expected a value"),
        ('{\n  "a": [1, 2\n}', 3, 1, "unexpected character '}'; expected ',' or ']'"),
        ("[1 2]", 1, 4, "missing ',' after an array item"),
        ('{"a": 1', 1, 1, "unterminated object"),
        ("[1, 2", 1, 1, "unterminated array"),
        ("{\n  name: 1\n}", 2, 3, 'unquoted word "name"'),
        ("{\n  'a': 1\n}", 2, 3, "single quote"),
        ('{"a": 01}', 1, 7, 'invalid number "01"'),
        ('{"a": tru}', 1, 7, 'unquoted word "tru"'),
        ('{"a": 1}\n/* open', 2, 1, "unterminated /* comment"),
        ('{"a": 1} {"b": 2}', 1, 10, "unexpected content after the top-level value"),
        ("   // only a comment\n", 2, 1, "empty document"),
        ('{"a": "tab\there"}', 1, 11, "control character U+0009"),
        ('{"a": 1e999}', 1, 7, "out of range"),
    ],
)
def test_syntax_errors_report_line_column_and_cause(
    text: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(HuJSONSyntaxError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert message in caught.value.message
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


def test_nesting_limit_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(HuJSONSyntaxError, match="nesting deeper"):
        parse("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))


def test_moderate_nesting_parses() -> None:
    value = parse("[" * 100 + "]" * 100).value
    for _ in range(99):
        value = value[0]
    assert value == []


def test_agrees_with_json_module_on_plain_json() -> None:
    data = {
        "s": 'quote " backslash \\ slash / ctrl \b\f\n\r\t uni \u2603 astral \U0001f680',
        "n": [0, -0.5, 1.25e-3, 12345678901234567890],
        "o": {"": None, "k": [True, False]},
    }
    for text in (json.dumps(data), json.dumps(data, ensure_ascii=False, indent=2)):
        assert parse(text).value == json.loads(text)


def test_parses_a_one_megabyte_config_quickly() -> None:
    entries = []
    for i in range(4000):
        models = ", ".join(f'"model-{i}-{j}"' for j in range(8))
        entries.append(
            f'    "provider{i}": {{ // provider {i}\n'
            f'      "baseurl": "https://llm{i}.example.com/api",\n'
            f'      "apikey": "env:KEY_{i}", /* inline */ "preference": {i},\n'
            f'      "models": [{models},],\n'
            f'      "compatibility": {{"openai_chat": true, "anthropic_messages": false}},\n'
            f"    }},\n"
        )
    text = '{\n  "providers": {\n' + "".join(entries) + "  },\n}\n"
    assert len(text) > 1_000_000
    best = min(_timed_parse(text) for _ in range(3))
    assert best < 0.5, f"parsing {len(text)} chars took {best:.3f}s"


def _timed_parse(text: str) -> float:
    # CPU time of this thread, not wall time: on a shared machine the wall clock also counts
    # the time other processes had the CPU, which made this test fail under load
    start = time.thread_time()
    doc = parse(text)
    elapsed = time.thread_time() - start
    assert doc.value["providers"]["provider3999"]["preference"] == 3999
    return elapsed


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ((), ""),
        (("providers", "openai", "models", 2), "providers.openai.models[2]"),
        (("quotas", "daily:<user>", "rate"), 'quotas["daily:<user>"].rate'),
        (
            ("grants", 1, "app", "tailscale.com/cap/aperture", 0, "role"),
            'grants[1].app["tailscale.com/cap/aperture"][0].role',
        ),
        (("providers", "my-provider_2"), "providers.my-provider_2"),
    ],
)
def test_render_path(path: tuple[str | int, ...], rendered: str) -> None:
    assert render_path(path) == rendered
