"""HuJSON (JWCC) parsing with source positions.

HuJSON is JSON plus `//` line comments, `/* */` block comments and trailing commas in objects
and arrays; it is the format of Aperture's `config.hujson`. `parse` returns a `Document`: the
plain Python value (objects as dicts in file order) and, for every value, where it sits in the
text. Positions serve two callers: validation reports the line of a bad key, and secret masking
rewrites a value in place while keeping the comments and layout around it.

A key path is a tuple of object keys (str) and list indexes (int): `("providers", "openai",
"models", 0)`. The empty tuple is the top-level value.

The parser is a recursive descent over regular-expression tokens, so the inner loops run in
the `re` engine: a 1 MB file parses in well under half a second.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from typing import Any

KeyPath = tuple[str | int, ...]

#: Deeper nesting than this is refused rather than risking Python's recursion limit.
MAX_DEPTH = 256

_SKIP = re.compile(r"(?:[ \t\n\r]+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SIMPLE_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_PLAIN_CHARS = re.compile(r'[^"\\\x00-\x1f]*')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NEWLINE = re.compile(r"\n")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_LITERALS: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))
_LITERAL_WORDS = ("true", "false", "null")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class HuJSONSyntaxError(Exception):
    """Malformed HuJSON. `line` and `column` are 1-based; `offset` is the 0-based char index."""

    def __init__(self, message: str, line: int, column: int, offset: int) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.offset = offset
        super().__init__(f"line {line}, column {column}: {message}")


class _LineIndex:
    """Maps character offsets of one text to 1-based (line, column)."""

    def __init__(self, text: str) -> None:
        self._newlines = [m.start() for m in _NEWLINE.finditer(text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._newlines, offset) + 1

    def line_column(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_left(self._newlines, offset)
        line_start = self._newlines[index - 1] + 1 if index > 0 else 0
        return index + 1, offset - line_start + 1


class Document:
    """A parsed HuJSON text: `value` plus the position of every value and key in `text`."""

    def __init__(
        self,
        text: str,
        value: Any,
        spans: dict[KeyPath, tuple[int, int]],
        key_starts: dict[KeyPath, int],
        lines: _LineIndex,
    ) -> None:
        self.text = text
        self.value = value
        self._spans = spans
        self._key_starts = key_starts
        self._lines = lines

    def span_of(self, path: KeyPath) -> tuple[int, int] | None:
        """Character offsets [start, end) of the value token at `path`; None if absent.

        For objects and lists the span runs from the opening to the closing bracket.
        """
        return self._spans.get(tuple(path))

    def start_of(self, path: KeyPath) -> int | None:
        """Offset where the element at `path` begins: an object member's key, a list item's
        value; None if absent."""
        path = tuple(path)
        key_start = self._key_starts.get(path)
        if key_start is not None:
            return key_start
        span = self._spans.get(path)
        return None if span is None else span[0]

    def line_of(self, path: KeyPath) -> int | None:
        """1-based line where `path` starts: the key's line for object members, else the value's.

        None when the document has no value at `path`.
        """
        path = tuple(path)
        key_start = self._key_starts.get(path)
        if key_start is not None:
            return self._lines.line(key_start)
        span = self._spans.get(path)
        return None if span is None else self._lines.line(span[0])


def parse(text: str) -> Document:
    """Parse HuJSON `text` into a `Document`; raise `HuJSONSyntaxError` if it is malformed.

    Duplicate keys in one object are an error (naming the key), as in Tailscale's own HuJSON
    handling of policy files. Integers stay `int`; numbers with a fraction or exponent become
    `float`. A leading byte-order mark is ignored.
    """
    return _Parser(text).document()


def render_path(path: Sequence[str | int]) -> str:
    """Render a key path for people: `providers.openai.models[2]`, `quotas["daily:<user>"]`.

    Keys made only of letters, digits, `-` and `_` are joined with dots; any other key is
    written as a JSON string in brackets; list indexes as `[i]`. The top level renders as "".
    """
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


class _Parser:
    """One parse of one text. Positions are recorded as values are read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.end = len(text)
        self.spans: dict[KeyPath, tuple[int, int]] = {}
        self.key_starts: dict[KeyPath, int] = {}
        self.lines = _LineIndex(text)

    def document(self) -> Document:
        start = 1 if self.text.startswith("\ufeff") else 0
        pos = self.skip(start)
        if pos >= self.end:
            raise self.error(pos, "empty document: expected a JSON value")
        value, pos = self.value(pos, (), 0)
        pos = self.skip(pos)
        if pos < self.end:
            raise self.error(pos, "unexpected content after the top-level value")
        return Document(self.text, value, self.spans, self.key_starts, self.lines)

    def error(self, offset: int, message: str) -> HuJSONSyntaxError:
        line, column = self.lines.line_column(offset)
        return HuJSONSyntaxError(message, line, column, offset)

    def skip(self, pos: int) -> int:
        """Skip whitespace and comments from `pos`; refuse an unterminated block comment."""
        if pos < self.end and self.text[pos] not in " \t\n\r/":
            return pos  # the common case: a token follows directly
        match = _WHITESPACE.match(self.text, pos)
        pos = match.end() if match else pos
        if not self.text.startswith("/", pos):
            return pos
        match = _SKIP.match(self.text, pos)
        pos = match.end() if match else pos
        if self.text.startswith("/*", pos):
            raise self.error(pos, "unterminated /* comment")
        return pos

    def value(self, pos: int, path: KeyPath, depth: int) -> tuple[Any, int]:
        if pos >= self.end:
            raise self.error(pos, "unexpected end of input: expected a value")
        char = self.text[pos]
        value: Any
        if char == "{":
            value, end = self.object(pos, path, depth)
        elif char == "[":
            value, end = self.array(pos, path, depth)
        elif char == '"':
            value, end = self.string(pos)
        else:
            value, end = self.scalar(pos)
        self.spans[path] = (pos, end)
        return value, end

    def enter(self, pos: int, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise self.error(pos, f"nesting deeper than {MAX_DEPTH} levels")

    def object(self, start: int, path: KeyPath, depth: int) -> tuple[dict[str, Any], int]:
        self.enter(start, depth)
        result: dict[str, Any] = {}
        pos = self.skip(start + 1)
        while True:
            if pos >= self.end:
                raise self.error(start, "unterminated object: missing '}'")
            if self.text[pos] == "}":
                return result, pos + 1
            if self.text[pos] != '"':
                raise self.unexpected(pos, "a double-quoted key or '}'")
            key, pos = self.member(pos, path, depth, result)
            pos = self.skip(pos)
            if pos < self.end and self.text[pos] == ",":
                pos = self.skip(pos + 1)
            elif pos < self.end and self.text[pos] == "}":
                return result, pos + 1
            elif pos >= self.end:
                raise self.error(start, "unterminated object: missing '}'")
            else:
                raise self.missing_comma(pos, "}", f'after the value of "{key}"')

    def member(
        self, key_start: int, path: KeyPath, depth: int, into: dict[str, Any]
    ) -> tuple[str, int]:
        """Read `"key": value` at `key_start` into `into`; return the key and the end offset."""
        key, pos = self.string(key_start)
        if key in into:
            raise self.error(key_start, f'duplicate key "{key}"')
        pos = self.skip(pos)
        if pos >= self.end or self.text[pos] != ":":
            raise self.error(pos, f"expected ':' after key \"{key}\"")
        child = (*path, key)
        self.key_starts[child] = key_start
        into[key], pos = self.value(self.skip(pos + 1), child, depth + 1)
        return key, pos

    def array(self, start: int, path: KeyPath, depth: int) -> tuple[list[Any], int]:
        self.enter(start, depth)
        result: list[Any] = []
        pos = self.skip(start + 1)
        while True:
            if pos >= self.end:
                raise self.error(start, "unterminated array: missing ']'")
            if self.text[pos] == "]":
                return result, pos + 1
            item, pos = self.value(pos, (*path, len(result)), depth + 1)
            result.append(item)
            pos = self.skip(pos)
            if pos < self.end and self.text[pos] == ",":
                pos = self.skip(pos + 1)
            elif pos < self.end and self.text[pos] == "]":
                return result, pos + 1
            elif pos >= self.end:
                raise self.error(start, "unterminated array: missing ']'")
            else:
                raise self.missing_comma(pos, "]", "after an array item")

    def string(self, start: int) -> tuple[str, int]:
        """Read the JSON string whose opening quote is at `start`."""
        simple = _SIMPLE_STRING.match(self.text, start)
        if simple is not None:
            return simple.group(1), simple.end()
        text = self.text
        pos = start + 1
        plain_end = self.plain_end(pos)
        if plain_end < self.end and text[plain_end] == '"':
            return text[pos:plain_end], plain_end + 1
        parts = [text[pos:plain_end]]
        pos = plain_end
        while True:
            if pos >= self.end:
                raise self.error(start, "unterminated string")
            char = text[pos]
            if char == '"':
                return "".join(parts), pos + 1
            if char == "\\":
                decoded, pos = self.escape(pos)
                parts.append(decoded)
            elif char in "\r\n":
                raise self.error(start, "unterminated string (a string cannot span lines)")
            else:
                raise self.error(pos, f"control character U+{ord(char):04X} in a string")
            plain_end = self.plain_end(pos)
            parts.append(text[pos:plain_end])
            pos = plain_end

    def plain_end(self, pos: int) -> int:
        """End of the run of characters from `pos` that a string holds unescaped."""
        match = _PLAIN_CHARS.match(self.text, pos)
        return match.end() if match else pos

    def escape(self, pos: int) -> tuple[str, int]:
        """Decode the escape sequence whose backslash is at `pos`."""
        letter = self.text[pos + 1 : pos + 2]
        simple = _SIMPLE_ESCAPES.get(letter)
        if simple is not None:
            return simple, pos + 2
        if letter != "u":
            shown = "\\" + letter if letter else "\\"
            raise self.error(pos, f'invalid escape "{shown}" in a string')
        unit = self.hex4(pos)
        if 0xD800 <= unit < 0xDC00 and self.text.startswith("\\u", pos + 6):
            low = self.hex4(pos + 6)
            if 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)), pos + 12
        if 0xD800 <= unit < 0xE000:
            return "\ufffd", pos + 6  # a lone surrogate, decoded as Go's encoding/json does
        return chr(unit), pos + 6

    def hex4(self, pos: int) -> int:
        digits = _HEX4.match(self.text, pos + 2)
        if digits is None:
            raise self.error(pos, r'invalid escape: "\u" needs four hex digits')
        return int(digits.group(), 16)

    def scalar(self, pos: int) -> tuple[Any, int]:
        """Read a number or one of true/false/null."""
        number = _NUMBER.match(self.text, pos)
        if number is not None:
            return self.number(number)
        for word, value in _LITERALS:
            if self.text.startswith(word, pos) and not self.word_continues(pos + len(word)):
                return value, pos + len(word)
        raise self.unexpected(pos, "a value")

    def number(self, match: re.Match[str]) -> tuple[int | float, int]:
        end = match.end()
        if end < self.end and (self.text[end].isalnum() or self.text[end] in "._"):
            raise self.error(match.start(), f'invalid number "{match.group()}{self.text[end]}"')
        if match.group(1) is None and match.group(2) is None:
            return int(match.group()), end
        value = float(match.group())
        if value in (float("inf"), float("-inf")):
            raise self.error(match.start(), f"number {match.group()} is out of range")
        return value, end

    def word_continues(self, pos: int) -> bool:
        return pos < self.end and (self.text[pos].isalnum() or self.text[pos] in "_$")

    def missing_comma(self, pos: int, closer: str, after: str) -> HuJSONSyntaxError:
        """The error where ',' or `closer` should follow a value; a new value means no comma."""
        if self.text[pos] in '"{[-0123456789' or self.text.startswith(_LITERAL_WORDS, pos):
            return self.error(pos, f"missing ',' {after}")
        return self.unexpected(pos, f"',' or '{closer}' {after}")

    def unexpected(self, pos: int, expected: str) -> HuJSONSyntaxError:
        """An error for an unexpected token at `pos`, naming what was expected instead."""
        if pos >= self.end:
            return self.error(pos, f"unexpected end of input: expected {expected}")
        char = self.text[pos]
        word = _WORD.match(self.text, pos)
        if word is not None:
            found = f'unquoted word "{word.group()}" (strings and keys need double quotes)'
        elif char == "'":
            found = "single quote (strings and keys need double quotes)"
        elif char == "/":
            found = "'/' that does not start a comment"
        else:
            found = f"unexpected character {char!r}"
        return self.error(pos, f"{found}; expected {expected}")
