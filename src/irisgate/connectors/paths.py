"""The path of an HTTP connector call: decoded once, checked, and re-encoded for the upstream.

A grant such as `wiki/public/*` is only as good as the agreement between the path it is
matched against and the path the upstream acts on. Servers disagree on what a path means:
some decode `%2f` into a separator, some decode twice, treat `\\` as `/`, drop `;params`,
merge `//` or fold fullwidth dots (U+FF0E) into `..`. So irisgate decodes the raw request path
(ASGI `raw_path`, never the already-decoded `path`) exactly once, refuses every segment that
any of those readings could turn into something else, and forwards the canonical encoding of
the very segments the grant was matched on. What the grant saw is what the upstream gets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

#: characters a path segment may carry unescaped (RFC 3986 `pchar`); `/` is never one of them
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_DOUBLE_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_SLASHES = frozenset("/\\")
#: what servers that map Unicode to ASCII by look read as `/` or `\` (NFKC folds fullwidth ones)
_LOOKALIKE_SLASHES = _SLASHES | frozenset("\u2044\u2215\u2216\u29f5\u29f8\u29f9")


class PathRefused(ValueError):
    """The path cannot be forwarded safely; the message names the segment and why."""


@dataclass(frozen=True, slots=True)
class ConnectorPath:
    connector_id: str
    path: str
    """Decoded segments joined by `/`, without the connector id: what grants match."""
    forwarded: str
    """The same segments percent-encoded canonically: what the upstream receives."""


def parse(raw: bytes) -> ConnectorPath:
    """`raw` is the request's raw path after `/v1/connectors/` (no query string)."""
    segments = [_segment(part) for part in raw.split(b"/")]
    connector_id, rest = segments[0], segments[1:]
    if not connector_id:
        raise PathRefused("the path names no connector")
    if any(not s for s in rest[:-1]):
        raise PathRefused("empty path segments ('//') are not allowed")
    path = "/".join(rest)
    forwarded = "/".join(quote(s, safe=_PCHAR_SAFE) for s in rest)
    return ConnectorPath(connector_id, path, forwarded)


def _segment(raw: bytes) -> str:
    shown = raw.decode("latin-1")
    if _BAD_ESCAPE.search(raw):
        raise PathRefused(f"path segment {shown!r}: '%' must start a two-digit hex escape")
    try:
        text = _ESCAPE.sub(lambda m: bytes.fromhex(m[1].decode()), raw).decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused(f"path segment {shown!r} is not UTF-8") from None
    if any(ch in _SLASHES for ch in text):
        raise PathRefused(f"path segment {shown!r}: encoded '/' and '\\' are not allowed")
    if _DOUBLE_ENCODED.search(text):
        raise PathRefused(f"path segment {shown!r} is percent-encoded twice")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise PathRefused(f"path segment {shown!r} contains a control character")
    folded = unicodedata.normalize("NFKC", text)
    if any(ch in _LOOKALIKE_SLASHES for ch in folded):
        raise PathRefused(f"path segment {shown!r} contains a character that reads as a slash")
    if _is_dot_segment(folded.partition(";")[0]):
        raise PathRefused(f"path segment {shown!r}: '.' and '..' segments are not allowed")
    return text


def _is_dot_segment(text: str) -> bool:
    """`.`, `..`, and what some servers trim to them (`...`, `.. `)."""
    return "." in text and not text.strip(". ")
