"""After the answer: tokens, a complete response object and the cost, from the relayed bytes.

Runs once per request after the client has its last byte, over the tee of upstream bytes
(tee.py): decompress, reassemble SSE streams into one response object, read usage, price it.
An answer larger than the tee's limit (or one that inflates past it) is read from what the
tee kept, its head and its tail: usage from the stream's last events or the JSON body's
trailing `usage` member; the stored body is the head with a marker.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import brotli
import orjson

from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.gateway.tee import Tee, marker
from irisgate.usage.tokens import Usage
from irisgate.wire.eventstream import whole_frames
from irisgate.wire.sse import SSEParser

_EVENTSTREAM = "application/vnd.amazon.eventstream"
#: a usage member longer than this is not looked for (they are a few hundred bytes)
_MAX_USAGE = 64 * 1024


def decompress(body: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    """Undo Content-Encoding for capture, producing at most `limit` bytes: (bytes, whether
    that is all of it). A body that inflates past the limit is cut there, like one that
    arrived larger (a small compressed answer can inflate a thousandfold). A prefix of a
    body inflates as far as it goes. An unknown or broken encoding keeps the bytes."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS, limit)
        if encoding == "deflate":
            try:
                return _inflate(body, zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflate(body, -zlib.MAX_WBITS, limit)
        if encoding == "br":
            out = brotli.Decompressor().process(body, output_buffer_limit=limit + 1)
            return out[:limit], len(out) <= limit
    except (zlib.error, brotli.error):
        return body, True
    return body, True


def _inflate(body: bytes, wbits: int, limit: int) -> tuple[bytes, bool]:
    out = zlib.decompressobj(wbits).decompress(body, limit + 1)
    return out[:limit], len(out) <= limit


def read_tee(fmt: ApiFormat, status: int, headers: Mapping[str, str], tee: Tee) -> Answer:
    """Read a relayed answer from the tee that kept it: as `read_answer` when it fit in the
    tee's limit (decompressed, too), else from its head and tail."""
    content_type = headers.get("content-type", "")
    if is_binary(content_type):
        return Answer(Usage(), described(content_type, tee.size), 0)
    encoding = headers.get("content-encoding", "")
    head, whole = tee.head(), not tee.truncated
    tail = tee.tail()
    if encoding:
        head, inflated_whole = decompress(head, encoding, tee.limit)
        if not inflated_whole or not whole:
            whole, tail = False, b""  # a compressed tail cannot be read without its start
    if whole:
        return read_answer(fmt, status, headers, head)
    size = tee.size if not encoding else None
    return _read_cut(fmt, status, headers, head, tail, stored=head + marker(size, len(head)))


#: content types that are text (or JSON, SSE, JSONL …) and are captured as they are
_TEXT_TYPES = ("text/", "json", "event-stream", "xml", "jsonl", "ndjson")
#: Bedrock's binary stream is read by its format (usage); it is captured reassembled
_FRAMED_TYPES = (_EVENTSTREAM,)


def is_binary(content_type: str) -> bool:
    """An answer capture keeps as its type and size only (audio, images, octet streams):
    anything with a content type that is neither text nor a stream irisgate reads."""
    lowered = content_type.lower()
    return bool(lowered) and not any(t in lowered for t in _TEXT_TYPES + _FRAMED_TYPES)


def described(content_type: str, size: int) -> bytes:
    """What capture stores for a binary body: its type and size, never its bytes."""
    return orjson.dumps({"irisgate_binary_body": {"content_type": content_type, "bytes": size}})


def _read_cut(
    fmt: ApiFormat,
    status: int,
    headers: Mapping[str, str],
    head: bytes,
    tail: bytes,
    *,
    stored: bytes,
) -> Answer:
    """An answer of which only `head` and `tail` were kept."""
    ok = 200 <= status < 300
    content_type = headers.get("content-type", "")
    framed = None
    if ok and _EVENTSTREAM in content_type:  # Bedrock: binary frames, found by their CRCs
        framed = fmt.stream_result(content_type, whole_frames(head, tail))
    elif ok and "text/event-stream" in content_type:
        accumulator = fmt.accumulator()
        events = SSEParser().feed(head)
        start = _next_event(tail)
        if start is not None:
            events += SSEParser().feed(tail[start:])
        for event in events:
            accumulator.feed_event(event.event, event.data)
        framed = accumulator.result()
    if framed is not None:
        return Answer(
            framed.usage,
            stored,
            framed.tool_calls,
            framed.response,
            framed.input_reported,
            framed.output_reported,
        )
    usage = _trailing_usage(fmt, tail) if ok and "json" in content_type else Usage()
    if usage.is_empty() and ok:
        usage = fmt.usage_from_headers(headers)
    return Answer(usage, stored, 0)


def _next_event(data: bytes) -> int | None:
    """Where the first whole event of a stream cut at an arbitrary byte starts."""
    seps = (b"\n\n", b"\r\n\r\n", b"\r\r")
    ends = [(at, len(sep)) for sep in seps if (at := data.find(sep)) >= 0]
    if not ends:
        return None
    at, length = min(ends)
    return at + length


def _trailing_usage(fmt: ApiFormat, tail: bytes) -> Usage:
    """The usage member near the end of a JSON body of which only the tail was kept (the
    vendors write it after the content)."""
    for key in ("usage", "usageMetadata"):
        quoted = f'"{key}"'.encode()
        at = tail.rfind(quoted)
        start = tail.find(b"{", at + len(quoted)) if at >= 0 else -1
        if start < 0 or tail[at + len(quoted) : start].strip() != b":":
            continue
        end = _object_end(tail, start)
        if end is None:
            continue
        try:
            member = orjson.loads(tail[start:end])
        except orjson.JSONDecodeError:
            continue
        usage, _ = fmt.usage_from_body({key: member})
        if not usage.is_empty():
            return usage
    return Usage()


def _object_end(data: bytes, start: int) -> int | None:
    """The end (exclusive) of the JSON object opening at `start`, or None if cut off."""
    depth, in_string, escaped = 0, False, False
    for at in range(start, min(len(data), start + _MAX_USAGE)):
        byte = data[at]
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x7B:
            depth += 1
        elif byte == 0x7D:
            depth -= 1
            if depth == 0:
                return at + 1
    return None


def read_stream(fmt: ApiFormat, body: bytes) -> StreamResult:
    accumulator = fmt.accumulator()
    for event in SSEParser().feed(body):
        accumulator.feed_event(event.event, event.data)
    return accumulator.result()


class Answer(NamedTuple):
    """A relayed answer, read: its usage, the body to store (a stream reassembled into one
    JSON object), the tool calls it asks for, the response object (None when the body is not
    one) and whether the upstream reported the prompt's and the completion's token counts
    (see `StreamResult`; a non-stream answer counts as reported)."""

    usage: Usage
    body: bytes
    tool_calls: int
    response: dict[str, Any] | None = None
    input_reported: bool = True
    output_reported: bool = True


def read_answer(fmt: ApiFormat, status: int, headers: Mapping[str, str], body: bytes) -> Answer:
    """Read a relayed answer (decompressed `body`) of the API format `fmt`.

    `headers` are the upstream's response headers, names lower-cased. Usage comes from the
    body or stream; only a successful answer that reports none there is asked for usage in
    its headers (Bedrock's InvokeModel of vendors whose bodies carry no usage)."""
    answer = _read_body(fmt, status, headers.get("content-type", ""), body)
    if answer.usage.is_empty() and 200 <= status < 300:
        answer = answer._replace(usage=fmt.usage_from_headers(headers))
    return answer


def _read_body(fmt: ApiFormat, status: int, content_type: str, body: bytes) -> Answer:
    framed = fmt.stream_result(content_type, body) if 200 <= status < 300 else None
    if framed is None and "text/event-stream" in content_type:
        framed = read_stream(fmt, body)
    if framed is not None:
        return Answer(
            framed.usage,
            orjson.dumps(framed.response),
            framed.tool_calls,
            framed.response,
            framed.input_reported,
            framed.output_reported,
        )
    if not 200 <= status < 300 or "json" not in content_type:
        return Answer(Usage(), body, 0)
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Answer(Usage(), body, 0)
    if not isinstance(parsed, dict):
        return Answer(Usage(), body, 0)
    usage, tool_calls = fmt.usage_from_body(parsed)
    return Answer(usage, body, tool_calls, parsed)
