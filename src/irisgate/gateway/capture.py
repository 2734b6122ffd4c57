"""After the answer: tokens, a complete response object and the cost, from the relayed bytes.

Runs once per request after the client has its last byte, over the tee of upstream bytes:
decompress, reassemble SSE streams into one response object, read usage, price it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import brotli
import orjson

from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.sse import SSEParser
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage


def decompress(body: bytes, encoding: str) -> bytes:
    """Undo Content-Encoding for capture; an unknown or broken encoding keeps the bytes."""
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if encoding == "br":
            return bytes(brotli.decompress(body))
    except (zlib.error, brotli.error):
        return body
    return body


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
