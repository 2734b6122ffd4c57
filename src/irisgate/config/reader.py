"""Typed reading of raw config JSON, with every problem logged at its key path and line.

Validation never stops at the first problem: a `Reader` hands out `Section`s (one JSON object
and its key path) whose getters check a field's type and return a usable default when it is
wrong, logging an issue instead of raising. `IssueLog` collects errors and warnings with the
line of the offending key, or of its nearest ancestor present in the file when the key is
missing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from irisgate.config.hujson import Document, KeyPath, render_path
from irisgate.config.model import ConfigIssue, Secret
from irisgate.config.secrets import resolve_secret

T = TypeVar("T")

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Headers a config may not set: they describe the message framing, which the relay owns.
FORBIDDEN_HEADERS: frozenset[str] = frozenset({"host", "content-length", "transfer-encoding"})

_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "a number"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "an object"),
)


def type_name(value: object) -> str:
    """How a JSON value's type is named in messages: "a string", "an object", "null"."""
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def not_one_of(value: str, choices: Collection[str]) -> str:
    """The message for a string outside a fixed set: `"x" is not one of: a, b ("" too)`."""
    listed = ", ".join(choice if choice else '""' for choice in choices)
    return f'"{value}" is not one of: {listed}'


def is_http_url(text: str) -> bool:
    """True for an absolute http:// or https:// URL with a host."""
    if any(char.isspace() for char in text):
        return False
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def is_integer(value: object) -> bool:
    """True for JSON integers; booleans are not numbers here even though Python says so."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return is_integer(value) or isinstance(value, float)


class IssueLog:
    """Errors and warnings found in one config text, located by key path and line."""

    def __init__(self, document: Document | None = None) -> None:
        self.document = document
        self.errors: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        #: errors the config can still run with, because only what they affect fails closed
        #: (an invalid quota refuses the requests it would charge); `config check` lists them
        self.contained: list[ConfigIssue] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigIssue(render_path(path), message, self.line(path), "error"))

    def contain(self, path: KeyPath, message: str) -> None:
        self.contained.append(ConfigIssue(render_path(path), message, self.line(path), "error"))

    def warn(self, path: KeyPath, message: str) -> None:
        self.warnings.append(ConfigIssue(render_path(path), message, self.line(path), "warning"))

    def wrong_type(self, path: KeyPath, expected: str, value: object) -> None:
        self.error(path, f"must be {expected}, not {type_name(value)}")

    def line(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its nearest ancestor present in the document."""
        if self.document is None:
            return None
        for length in range(len(path), -1, -1):
            line = self.document.line_of(path[:length])
            if line is not None:
                return line
        return None


class Section:
    """One JSON object of the config at `path`, read field by field.

    Getters return the field's value when it has the right type, else log an error and return
    the given default, so a caller can keep validating the rest of the object.
    """

    def __init__(self, log: IssueLog, path: KeyPath, data: Mapping[str, Any]) -> None:
        self.log = log
        self.path = path
        self.data = data

    @classmethod
    def of(cls, log: IssueLog, path: KeyPath, value: object) -> Section | None:
        """A Section for `value` if it is an object; else log a type error and return None."""
        if isinstance(value, dict):
            return cls(log, path, value)
        log.wrong_type(path, "an object", value)
        return None

    def at(self, key: str | int) -> KeyPath:
        return (*self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self.data.items())

    def error(self, key: str | int, message: str) -> None:
        self.log.error(self.at(key), message)

    def warn(self, key: str | int, message: str) -> None:
        self.log.warn(self.at(key), message)

    def typed(self, key: str, kind: type[T], expected: str, default: T) -> T:
        """The value at `key` if it is an instance of `kind`, else `default` (logged if wrong)."""
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, kind):
            return value
        self.log.wrong_type(self.at(key), expected, value)
        return default

    def text(self, key: str, default: str = "") -> str:
        return self.typed(key, str, "a string", default)

    def required_text(self, key: str, what: str = "a non-empty string") -> str | None:
        """A string that must be present and non-empty; None (logged) otherwise."""
        if key not in self.data:
            self.error(key, f"is required ({what})")
            return None
        value = self.typed(key, str, "a string", None)
        if value == "":
            self.error(key, f"must not be empty ({what})")
            return None
        return value

    def choice(self, key: str, choices: Collection[str], default: str) -> str:
        """A string from a fixed set; `default` when absent or wrong (logged)."""
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, str):
            self.log.wrong_type(self.at(key), "a string", value)
        elif value in choices:
            return value
        else:
            self.error(key, not_one_of(value, choices))
        return default

    def flag(self, key: str, default: bool) -> bool:
        return self.typed(key, bool, "a boolean (true or false)", default)

    def optional_flag(self, key: str) -> bool | None:
        return self.typed(key, bool, "a boolean (true or false)", None)

    def integer(self, key: str, default: int) -> int:
        if key not in self.data:
            return default
        value = self.data[key]
        if is_integer(value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self.log.wrong_type(self.at(key), "an integer", value)
        return default

    def number(self, key: str, default: float) -> float:
        if key not in self.data:
            return default
        value = self.data[key]
        if is_number(value):
            return float(value)
        self.log.wrong_type(self.at(key), "a number", value)
        return default

    def texts(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        """A list of non-empty strings; wrong items are logged and left out."""
        if key not in self.data:
            if required:
                self.error(key, "is required (a list of strings)")
            return ()
        value = self.data[key]
        if not isinstance(value, list):
            self.log.wrong_type(self.at(key), "a list of strings", value)
            return ()
        if required and not value:
            self.error(key, "must not be empty")
        return tuple(self.list_texts(self.at(key), value))

    def list_texts(self, path: KeyPath, items: list[Any]) -> Iterator[str]:
        for index, item in enumerate(items):
            if not isinstance(item, str):
                self.log.wrong_type((*path, index), "a string", item)
            elif item == "":
                self.log.error((*path, index), "must not be an empty string")
            else:
                yield item

    def child(self, key: str) -> Section | None:
        """The object at `key` as a Section; None when absent or not an object (logged)."""
        if key not in self.data:
            return None
        return Section.of(self.log, self.at(key), self.data[key])

    def objects(self, key: str) -> Iterator[Section]:
        """The objects of the list at `key`; non-object items are logged and skipped."""
        if key not in self.data:
            return
        value = self.data[key]
        if not isinstance(value, list):
            self.log.wrong_type(self.at(key), "a list of objects", value)
            return
        for index, item in enumerate(value):
            section = Section.of(self.log, (*self.at(key), index), item)
            if section is not None:
                yield section

    def check_keys(self, known: Collection[str], kept: Collection[str] = ()) -> None:
        """Warn about keys neither in `known` nor in `kept` (accepted and kept in raw).

        Unknown keys are warnings, not errors, so files written for a newer Aperture load.
        """
        for key in self.data:
            if key not in known and key not in kept:
                self.warn(key, f"unknown key, ignored (known keys: {', '.join(known)})")

    def url(self, key: str, *, required: bool = True) -> str | None:
        """An absolute http(s) URL; None when absent (logged if required) or invalid (logged)."""
        if key not in self.data and not required:
            return None
        value = self.required_text(key, "an absolute http(s) URL")
        if value is None:
            return None
        if not is_http_url(value):
            self.error(key, f'"{value}" must be an absolute http(s) URL')
            return None
        return value

    def secret(self, key: str, env: Mapping[str, str]) -> Secret:
        """A secret field (literal, `env:NAME` or `file:PATH`), resolved; absent means "".
        A reference refused outright (see `resolve_secret`) is a config error."""
        secret = resolve_secret(self.text(key, ""), env)
        if secret.problem:
            self.error(key, secret.problem)
        return secret

    def header_lines(self, key: str) -> tuple[tuple[str, str], ...]:
        """A list of `"Header: value"` strings as (name, value) pairs; bad lines are logged."""
        headers: list[tuple[str, str]] = []
        for index, line in enumerate(self.texts(key)):
            path = (*self.at(key), index)
            header = parse_header_line(line)
            if isinstance(header, str):
                self.log.error(path, header)
            else:
                headers.append(header)
        return tuple(headers)


def parse_header_line(line: str) -> tuple[str, str] | str:
    """`"X-Project: demo"` -> ("X-Project", "demo"); a message (str) saying what is wrong."""
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon:
        return f'"{line}" must look like "Header-Name: value"'
    if not _HEADER_NAME.fullmatch(name):
        return f'"{name}" is not a valid header name'
    if name.lower() in FORBIDDEN_HEADERS:
        return f'header "{name}" cannot be set from the config'
    if _HEADER_VALUE_FORBIDDEN.search(value):
        return f'the value of header "{name}" contains a control character'
    return name, value
