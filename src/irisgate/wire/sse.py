"""Sans-io Server-Sent Events parsing (WHATWG HTML, "Parsing an event stream").

Two tools, both fed bytes and doing no I/O:

* `SSEParser` turns a byte stream, fed in pieces split at any byte, into `SSEEvent`s exactly as
  a browser's EventSource would dispatch them (line endings `\\r\\n`, `\\n`, `\\r`; a leading
  UTF-8 BOM ignored; `:` comments ignored; several `data:` lines joined with `\\n`; events
  without data not dispatched; an unterminated event at end of stream discarded).
* `split_events` cuts a buffer into complete raw event blocks, byte-for-byte unchanged, for a
  relay that forwards or drops whole events without re-serialising them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "split_events"]

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n?|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (`"message"` when the stream named none), its data (the
    `data:` lines joined with `\\n`, as raw bytes) and the last event ID in force (`""` if none).
    """

    event: str
    data: bytes
    id: str = ""


class SSEParser:
    """Incremental event-stream parser; see the module docstring for the rules it follows.

    `feed(data)` returns the events completed by `data`, in order. `last_event_id` and `retry`
    (the last valid `retry:` value in milliseconds, or None) are readable at any time.
    Field names and values are compared as bytes; `event:` and `id:` values are decoded as
    UTF-8 (invalid bytes replaced) only when present.
    """

    __slots__ = ("_data", "_event", "_line", "_skip_lf", "_started", "last_event_id", "retry")

    def __init__(self) -> None:
        self._line = b""  # the unterminated tail of the stream (never holds a line ending)
        self._data: list[bytes] = []
        self._event = ""
        self._started = False  # the BOM check is done
        self._skip_lf = False  # the previous piece ended with CR: a leading LF belongs to it
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Consume the next piece of the stream; return the events it completed."""
        if not data:
            return []
        if not self._started:
            data = self._line + data
            self._line = b""
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._line = data  # could still become a BOM
                return []
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
            self._started = True
            if not data:
                return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
                if not data:
                    return []
        if b"\r" in data:
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in data:
            self._line += data
            return []
        lines = (self._line + data).split(b"\n") if self._line else data.split(b"\n")
        self._line = lines.pop()
        return self._process(lines)

    def _process(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        parts = self._data
        for line in lines:
            if line.startswith(b"data: "):  # the common case first
                parts.append(line[6:])
                continue
            if not line:
                if parts:
                    data = b"\n".join(parts)
                    events.append(SSEEvent(self._event or "message", data, self.last_event_id))
                    parts = self._data = []
                self._event = ""
                continue
            if line[0] == 0x3A:  # ":" comment
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                parts.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\0" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                self.retry = int(value)
        return events


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Cut `buffer` into complete raw event blocks and the incomplete remainder.

    A block is every line up to and including the next empty line, with the original line
    endings, so `b"".join(blocks) + remainder == buffer` always holds. An empty line with no
    field lines before it (as in `\\n\\n\\n`) forms a block of its own. A block whose closing
    empty line ends in a CR at the very end of `buffer` is held back in the remainder, since an
    LF in the next piece would belong to it; at end of stream the caller treats the remainder as
    final. Stateless: call it again with `remainder + next_piece`.
    """
    blocks: list[bytes] = []
    start = 0
    if b"\r" not in buffer:
        n = len(buffer)
        while start < n:
            if buffer[start] == 0x0A:  # an empty line opening the block
                end = start + 1
            else:
                end = buffer.find(b"\n\n", start)
                if end < 0:
                    break
                end += 2
            blocks.append(buffer[start:end])
            start = end
        return blocks, buffer[start:]
    line_start = 0
    last = len(buffer) - 1
    for match in _LINE_END.finditer(buffer):
        if match.end() > last and buffer[last] == 0x0D:
            break  # a CR at the very end: its LF may still come
        if match.start() == line_start:
            blocks.append(buffer[start : match.end()])
            start = match.end()
        line_start = match.end()
    return blocks, buffer[start:]
