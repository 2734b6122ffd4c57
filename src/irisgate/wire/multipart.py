"""multipart/form-data request bodies, read as they arrive: the small text fields kept, the
files only measured.

`FormReader` is sans-io: it is fed the body's bytes in whatever pieces they come and never
holds a file part, only each text field (up to `FIELD_LIMIT` bytes) and, for every part, its
name, file name, content type and size. It also notes where each text field's value lies in
the body (`Form.spans`), so that a field can be replaced when the body is sent on (a model
renamed by routing) without parsing it again; whoever replaces one checks the bytes there
are the value (`Upload.replace`). Bad input is a `FormError` whose message
names what was wrong (the boundary, a part's headers, a field too large, the end missing).

The byte-level parsing is python-multipart's (the parser Starlette uses); this module adds
the limits, the bookkeeping and the errors in irisgate's terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

#: bytes of one text field kept (a prompt of 32,000 characters fits, in any script)
FIELD_LIMIT = 256 * 1024
#: bytes of all the text fields together
FIELDS_LIMIT = 1 << 20
#: parts in one body
MAX_PARTS = 64
#: headers per part and bytes of one header line
_MAX_HEADERS = 8
_MAX_HEADER_SIZE = 4096


class FormError(ValueError):
    """The body is not multipart/form-data irisgate can read; the message says why."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part as the capture shows it: a text field's value, or a file's size and type."""

    name: str
    filename: str | None  # None for a text field
    content_type: str
    size: int

    def describe(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "bytes": self.size}


@dataclass(slots=True)
class Form:
    """What a read body held: its text fields (the first of each name), every part, and
    where each text field's value lies in the body (start, end byte offsets)."""

    fields: dict[str, str] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The body as capture stores it: text fields inline, files by name, size and type."""
        out: dict[str, Any] = {}
        for part in self.parts:
            if part.filename is None:
                out.setdefault(part.name, self.fields.get(part.name, ""))
            else:
                out.setdefault(part.name, [])
                value = out[part.name]
                if isinstance(value, list):
                    value.append(part.describe())
        return out


def boundary_of(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data` content type; FormError for any other type."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise FormError("the body must be multipart/form-data")
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 70:
        raise FormError("multipart/form-data needs a boundary of 1 to 70 characters")
    return boundary


class FormReader:
    """Fed a multipart/form-data body piece by piece (`feed`), then `close`d: `form` then
    holds what the body said. Raises FormError as soon as the body is known to be bad."""

    def __init__(
        self, boundary: bytes, on_file_data: Callable[[bytes], None] | None = None
    ) -> None:
        """`on_file_data`, when given, is handed each piece of a file part's bytes as it is
        read (never kept here), for a caller that reads a file as it passes (a batch input
        file's JSONL lines)."""
        self.form = Form()
        self.on_file_data = on_file_data
        self._offset = 0  # bytes fed before the current piece
        self._ended = False
        self._kept = 0  # bytes of text fields kept
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._value: list[bytes] | None = None  # the current text field's pieces
        self._name = ""
        self._filename: str | None = None
        self._type = ""
        self._size = 0
        self._start = -1  # offset of the current part's first data byte
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_piece,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end_of_body,
            },
            max_header_count=_MAX_HEADERS,
            max_header_size=_MAX_HEADER_SIZE,
        )

    def feed(self, data: bytes) -> None:
        if self._ended:
            if data.strip():
                raise FormError("data after the multipart body's closing boundary")
            return
        try:
            self._parser.write(data)
        except MultipartParseError as exc:
            raise FormError(f"malformed multipart body: {exc}") from None
        self._offset += len(data)

    def close(self) -> Form:
        if not self._ended:
            raise FormError("the multipart body ended before its closing boundary")
        return self.form

    # -- python-multipart callbacks ------------------------------------------------------------

    def _part_begin(self) -> None:
        if len(self.form.parts) >= MAX_PARTS:
            raise FormError(f"more than {MAX_PARTS} parts in the multipart body")
        self._headers = {}
        self._header_name = self._header_value = b""
        self._size, self._start = 0, -1

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_piece(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition")
        if disposition is None:
            raise FormError("a multipart part has no Content-Disposition header")
        kind, options = parse_options_header(disposition)
        name = options.get(b"name")
        if kind != b"form-data" or not name:
            raise FormError("a multipart part is not a form-data part with a name")
        self._name = _text(name, "a part's name")
        raw_filename = options.get(b"filename")
        self._filename = None if raw_filename is None else _text(raw_filename, "a file name")
        self._type = _text(self._headers.get(b"content-type", b""), "a part's Content-Type")
        self._value = [] if self._filename is None else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._start < 0:  # a value is contiguous: it ends `size` bytes later
            self._start = self._offset + start
        self._size += end - start
        if self._value is None:  # a file: measured, never kept
            if self.on_file_data is not None:
                self.on_file_data(data[start:end])
            return
        self._kept += end - start
        if self._size > FIELD_LIMIT:
            raise FormError(f"multipart field '{self._name}' is larger than {FIELD_LIMIT} bytes")
        if self._kept > FIELDS_LIMIT:
            raise FormError(f"the multipart text fields are larger than {FIELDS_LIMIT} bytes")
        self._value.append(data[start:end])

    def _part_end(self) -> None:
        form = self.form
        form.parts.append(Part(self._name, self._filename, self._type, self._size))
        if self._value is not None and self._name not in form.fields:
            form.fields[self._name] = _text(b"".join(self._value), f"field '{self._name}'")
            if self._start >= 0:
                form.spans[self._name] = (self._start, self._start + self._size)
        self._value = None

    def _end_of_body(self) -> None:
        self._ended = True


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise FormError(f"{what} is not UTF-8 text") from None
