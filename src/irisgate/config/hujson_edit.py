"""Change a HuJSON text to hold a new value, touching only what changed.

The dashboard's visual editors send the whole config as a JSON value; saving it as plain JSON
would drop the file's comments, order and layout. `edit(text, value)` instead compares the
value the text holds with the new one and rewrites only the tokens that differ:

* a changed scalar is replaced where it stands;
* objects are compared key by key: a removed member is cut out (with its comma and a comment
  on its own line's end), a new one is appended after the last member in the object's style
  (one per line, indented like its siblings, or inline for a one-line object); members keep
  the file's order;
* lists are matched item by item (`difflib` over the items' canonical JSON), so removing the
  second of five grants removes that grant's text, and the other four keep their comments;
  an item that changed is changed in place;
* anything else (a list that became an object, say) is written as JSON at its indentation.

Every change is applied to the text and the text parsed again before the next one, so each
change finds exact positions. The work is bounded: `MAX_WORK` characters parsed in all, past
which `TooManyChanges` asks for the raw editor instead.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from irisgate.config.hujson import Document, KeyPath, parse

#: Characters parsed in all by one edit (changes times text size); 64 M is a few seconds at worst.
MAX_WORK = 64_000_000
#: Lists longer than this (old length times new length) are paired by position, not matched.
MAX_MATCHED = 250_000

_INDENT = re.compile(r"^([ \t]+)\S", re.MULTILINE)
_BLANK = re.compile(r"[ \t]*")


class TooManyChanges(Exception):
    """The edit would parse more than MAX_WORK characters: too many changes for one save."""


@dataclass(frozen=True, slots=True)
class _Op:
    kind: str  # "replace" | "delete" | "insert"
    path: KeyPath  # the value replaced or deleted; for "insert" the container
    value: Any = None
    at: str | int | None = None  # "insert": the new key, or the list index to insert before


def edit(text: str, value: Any) -> str:
    """`text` (HuJSON) changed so that it parses to `value`, comments and layout kept.

    Raises `HuJSONSyntaxError` if `text` is malformed and `TooManyChanges` (see MAX_WORK).
    """
    document = parse(text)
    ops = list(_diff((), document.value, value))
    if len(ops) * max(len(text), 1) > MAX_WORK:
        raise TooManyChanges(f"{len(ops)} changes at once")
    unit = _indent_unit(text)
    for op in ops:
        document = parse(_Editor(document, unit).apply(op))
    return document.text


def same(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`, but `1` and `1.0` are the same number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _diff(path: KeyPath, old: Any, new: Any) -> Iterator[_Op]:
    """The changes that turn `old` (at `path`) into `new`, in an order that keeps every later
    change's path valid (lists are worked from their end)."""
    if same(old, new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                yield _Op("delete", (*path, key))
            else:
                yield from _diff((*path, key), old[key], new[key])
        for key in new:
            if key not in old:
                yield _Op("insert", path, new[key], key)
    elif isinstance(old, list) and isinstance(new, list):
        yield from _diff_list(path, old, new)
    else:
        yield _Op("replace", path, new)


def _diff_list(path: KeyPath, old: list[Any], new: list[Any]) -> Iterator[_Op]:
    opcodes: Sequence[tuple[str, int, int, int, int]]
    if len(old) * len(new) > MAX_MATCHED:  # matching is quadratic: pair by position instead
        opcodes = [("replace", 0, len(old), 0, len(new))]
    else:
        keys = [_canonical(v) for v in old], [_canonical(v) for v in new]
        opcodes = difflib.SequenceMatcher(None, *keys, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in reversed(opcodes):
        if tag == "equal":
            continue
        # items replaced by as many are changed in place (their comments stay); the rest of
        # the old ones are removed, the rest of the new ones inserted after them
        paired = min(i2 - i1, j2 - j1)
        for index in reversed(range(i1 + paired, i2)):
            yield _Op("delete", (*path, index))
        for item in reversed(new[j1 + paired : j2]):
            yield _Op("insert", path, item, i1 + paired)
        for offset in reversed(range(paired)):
            yield from _diff((*path, i1 + offset), old[i1 + offset], new[j1 + offset])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _indent_unit(text: str) -> str:
    """The file's indentation step: its smallest indentation, two spaces if it has none."""
    found = [m.group(1) for m in _INDENT.finditer(text)]
    if not found:
        return "  "
    return min(found, key=len)


class _Editor:
    """One change applied to one parsed document, answering the new text."""

    def __init__(self, document: Document, unit: str) -> None:
        self.doc = document
        self.text = document.text
        self.unit = unit

    def apply(self, op: _Op) -> str:
        if op.kind == "replace":
            return self.replace(op.path, op.value)
        if op.kind == "delete":
            return self.delete(op.path)
        return self.insert(op.path, op.at, op.value)

    # -- positions ---------------------------------------------------------------------

    def span(self, path: KeyPath) -> tuple[int, int]:
        span = self.doc.span_of(path)
        assert span is not None, path  # the diff only names paths the document has
        return span

    def start_of(self, path: KeyPath) -> int:
        """Where the member or item at `path` begins: its key, or its value in a list."""
        start = self.doc.start_of(path)
        assert start is not None, path
        return start

    def line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def indentation(self, pos: int) -> str:
        """The whitespace that starts the line holding `pos`."""
        start = self.line_start(pos)
        match = _BLANK.match(self.text, start)
        return match.group() if match else ""

    def first_on_line(self, pos: int) -> bool:
        return self.text[self.line_start(pos) : pos].strip(" \t") == ""

    def skip_blank(self, pos: int) -> int:
        match = _BLANK.match(self.text, pos)
        return match.end() if match else pos

    def after_comma(self, end: int) -> tuple[bool, int]:
        """Whether a comma follows the value ending at `end`, and the position after it."""
        pos = self.skip_blank(end)
        if self.text.startswith(",", pos):
            return True, pos + 1
        return False, end

    def line_end(self, pos: int) -> int | None:
        """The end of the line from `pos` if only blanks and a `//` comment are left on it."""
        pos = self.skip_blank(pos)
        if self.text.startswith("//", pos):
            newline = self.text.find("\n", pos)
            return len(self.text) if newline < 0 else newline
        if pos == len(self.text) or self.text[pos] in "\r\n":
            return pos
        return None

    # -- serialising ---------------------------------------------------------------------

    def dumps(self, value: Any, indent: str, inline: bool) -> str:
        """`value` as JSON: on one line, or one member per line under `indent`."""
        flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        if inline or not isinstance(value, dict | list) or not value:
            return flat
        items = value.values() if isinstance(value, dict) else value
        if len(flat) <= 72 and not any(isinstance(item, dict | list) for item in items):
            return flat  # short and flat stays on its line: `"models": ["a", "b"]`
        inner = indent + self.unit
        if isinstance(value, list):
            items = [self.dumps(item, inner, inline=False) for item in value]
            return "[\n" + ",\n".join(inner + item for item in items) + "\n" + indent + "]"
        members = [self.element(k, v, inner, inline=False) for k, v in value.items()]
        return "{\n" + ",\n".join(inner + m for m in members) + "\n" + indent + "}"

    def element(self, key: str | int | None, value: Any, indent: str, inline: bool) -> str:
        text = self.dumps(value, indent, inline)
        return f"{json.dumps(key, ensure_ascii=False)}: {text}" if isinstance(key, str) else text

    # -- the three changes -------------------------------------------------------------

    def replace(self, path: KeyPath, value: Any) -> str:
        start, end = self.span(path)
        inline = "\n" not in self.text[start:end] and (
            len(_canonical(value)) + start - self.line_start(start) <= 100
        )
        token = self.dumps(value, self.indentation(start), inline)
        return self.text[:start] + token + self.text[end:]

    def delete(self, path: KeyPath) -> str:
        start = self.start_of(path)
        end = self.span(path)[1]
        had_comma, end = self.after_comma(end)
        rest = self.line_end(end)
        if had_comma and rest is None:
            end = self.skip_blank(end)  # `"a": 1, "b": 2` loses `"a": 1, `
        if not had_comma:
            comma = self.separator_before(path)
            if comma is not None:  # the last element: the comma before it goes too
                if rest is not None and self.first_on_line(start):
                    end = rest  # with the rest of its line
                return self.text[:comma] + self.text[end:]
        if rest is not None and self.first_on_line(start):
            start = self.line_start(start)
            end = rest + 1 if rest < len(self.text) else rest
            if self.text.startswith("\r\n", rest):
                end = rest + 2
        return self.text[:start] + self.text[end:]

    def separator_before(self, path: KeyPath) -> int | None:
        """The offset of the comma after the previous sibling of `path`, when only blanks
        lie between it and `path`."""
        parent, last = path[:-1], path[-1]
        container = _lookup(self.doc.value, parent)
        if isinstance(last, int):
            previous: str | int | None = last - 1 if last > 0 else None
        else:
            keys = list(container)
            index = keys.index(last)
            previous = keys[index - 1] if index > 0 else None
        if previous is None:
            return None
        had_comma, pos = self.after_comma(self.span((*parent, previous))[1])
        if had_comma and self.text[pos : self.start_of(path)].strip() == "":
            return pos - 1
        return None

    def insert(self, path: KeyPath, at: str | int | None, value: Any) -> str:
        container = self.doc.value if not path else _lookup(self.doc.value, path)
        start, end = self.span(path)
        if isinstance(at, int) and at < len(container):
            return self.insert_before((*path, at), value)
        inline = "\n" not in self.text[start:end]
        last = _last_child(path, container)
        key = at if isinstance(at, str) else None
        if last is None:
            if inline or self.text[start + 1 : end - 1].strip() == "":
                grown = {at: value} if isinstance(at, str) else [value]
                return self.replace(path, grown)
            indent = self.indentation(start) + self.unit
            member = self.element(key, value, indent, inline=False)
            return self.text[: start + 1] + "\n" + indent + member + self.text[start + 1 :]
        value_end = self.span(last)[1]
        had_comma, pos = self.after_comma(value_end)
        if inline:
            member = self.element(key, value, "", inline=True)
            if had_comma:
                return self.text[:pos] + " " + member + "," + self.text[pos:]
            return self.text[:value_end] + ", " + member + self.text[value_end:]
        indent = self.indentation(self.start_of(last))
        member = self.element(key, value, indent, inline=False)
        line_end = self.line_end(pos)
        cut = line_end if line_end is not None else pos
        comma = "" if had_comma else ","
        tail = "," if had_comma else ""
        return (
            self.text[:value_end]
            + comma
            + self.text[value_end:cut]
            + "\n"
            + indent
            + member
            + tail
            + self.text[cut:]
        )

    def insert_before(self, path: KeyPath, value: Any) -> str:
        start = self.span(path)[0]
        if self.first_on_line(start):
            indent = self.indentation(start)
            line = self.line_start(start)
            item = self.dumps(value, indent, inline=False)
            return self.text[:line] + indent + item + ",\n" + self.text[line:]
        item = self.dumps(value, "", inline=True)
        return self.text[:start] + item + ", " + self.text[start:]


def _last_child(path: KeyPath, container: Any) -> KeyPath | None:
    if isinstance(container, dict) and container:
        return (*path, list(container)[-1])
    if isinstance(container, list) and container:
        return (*path, len(container) - 1)
    return None


def _lookup(value: Any, path: KeyPath) -> Any:
    for part in path:
        value = value[part]
    return value
