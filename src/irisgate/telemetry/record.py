"""The record of one gateway request, as handed to the batch writer.

The request path fills one `RequestRecord` and submits it; the writer stores the metrics row,
the capture (headers and bodies) and keeps the daily rollups current. Bodies are stored as
text when they are UTF-8 (JSON, SSE reassembled to JSON), else base64 with `*_encoding`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from irisgate.config.model import FilterableHeader
from irisgate.usage.tokens import Usage

# request ids need uniqueness, not secrecy: a fast generator seeded from the OS will do
_rng = random.Random(random.SystemRandom().getrandbits(128))  # noqa: S311


def _reseed() -> None:
    _rng.seed(random.SystemRandom().getrandbits(128))


# forked workers (workers.py) must not draw the same ids from a copied generator
os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A unique id: 112 random bits (not a secret, so a fast seeded generator will do)."""
    return f"req_{_rng.getrandbits(112):028x}"


#: the kinds of request a record can be, in the order filters list them; `connector` is an
#: MCP tool call or an HTTP connector request
KINDS: tuple[str, ...] = (
    "chat",
    "embedding",
    "image",
    "audio",
    "moderation",
    "file",
    "batch",
    "connector",
)

#: the longest caller-chosen name (a model never routed) a record keeps
NAME_LIMIT = 200


def recorded_name(name: str) -> str:
    """A name the caller chose, as records, errors and exports show it: at most NAME_LIMIT
    characters (cut ones end in `…`), every control or other non-printable character (C0,
    C1, line separators, bidi overrides) replaced by U+FFFD."""
    if len(name) <= NAME_LIMIT and name.isprintable():
        return name
    cut = name[: NAME_LIMIT - 1] + "…" if len(name) > NAME_LIMIT else name
    return "".join(c if c.isprintable() else "\ufffd" for c in cut)


@dataclass(slots=True)
class RequestRecord:
    request_id: str  # "req_" + 26 chars, unique; also sent to clients as x-irisgate-request-id
    started_at: datetime  # UTC, timezone-aware
    login_name: str
    display_name: str = ""
    node_id: str = ""  # stable node id
    node_name: str = ""
    tags: tuple[str, ...] = ()
    method: str = "POST"
    path: str = ""
    api_format: str = ""  # openai_chat | openai_responses | anthropic_messages | ...
    api_type: str = ""  # export name: oai_completions | oai_responses | ant_messages | ...
    model: str = ""  # as routed (bare model id sent upstream)
    provider: str = ""  # provider id from config
    stream: bool = False
    status: int = 0  # status the client received
    error: str = ""  # gateway-side error text ("" when none); upstream errors pass through
    cancelled: bool = False  # the client went away before the answer ended
    duration_ms: float = 0.0  # first request byte in to last response byte out
    ttfb_ms: float | None = None  # to the first response body byte sent to the client
    upstream_ms: float | None = None  # time spent waiting on the upstream
    usage: Usage = field(default_factory=Usage)
    #: True when `usage` was counted by irisgate (a stream that ended without the upstream's
    #: usage), not reported by the upstream
    usage_estimated: bool = False
    cost_nanodollars: int | None = None  # None: unpriced
    cost_basis: str = ""  # "<basis>/<pricing model>" or "" when unpriced
    session_id: str = ""
    user_agent: str = ""
    config_version: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)  # secrets already redacted
    response_headers: dict[str, str] = field(default_factory=dict)
    request_body: bytes = b""  # as forwarded upstream (after any modification)
    response_body: bytes = b""  # decompressed; streams reassembled into one JSON object
    response_raw: bytes | None = None  # `save_raws`: upstream bytes as received, else None
    response_raw_encoding: str = ""  # the upstream content-encoding of response_raw
    tool_calls: int = 0
    request_bytes: int = 0  # body size received from the client
    response_bytes: int = 0  # body size sent to the client
    #: the `resp_…` id of an OpenAI Responses API response this request created ("" if none)
    response_id: str = ""
    #: the upstream attempts (failover, several keys): each {provider, key (index), status
    #: (0: no answer), error, ms (to the answer's head)}; [] for a single-key provider's
    #: only attempt, which `provider` says all of
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: False for traffic that is not LLM usage (connector calls): kept out of usage_daily
    counts_as_usage: bool = True
    #: (name, value) of each `database.headers.filterable` header the request or its answer
    #: carried (value '' for `redact_values`), set by `index_headers` before it is stored
    indexed_headers: tuple[tuple[str, str], ...] = ()
    #: the API key the caller used (its id and name, never the secret); "" for none
    key_id: str = ""
    key_name: str = ""
    #: the API format of the provider that served a translated request ("" untranslated:
    #: the provider spoke `api_format`); `request_body` and `response_body` are then the
    #: caller's, and the provider's own are these two (capture limits and retention alike)
    upstream_format: str = ""
    upstream_request_body: bytes = b""
    upstream_response_body: bytes = b""
    #: what the request asks for (`KINDS`): from its path, and for Bedrock's InvokeModel
    #: from its body (an embedding model's body shape)
    kind: str = "chat"
    #: a request priced by a unit other than tokens: the unit (`image`, `second`,
    #: `character`) and how many of them; "" and 0 when tokens are the measure
    unit: str = ""
    units: int = 0


def index_headers(record: RequestRecord, filterable: tuple[FilterableHeader, ...]) -> None:
    """Set `record.indexed_headers` from its (already redacted) request headers, else its
    response headers: names lower-case, values cut like `recorded_name` (at most
    NAME_LIMIT characters, no control characters), '' when the header's values are not
    to be kept."""
    found: list[tuple[str, str]] = []
    for header in filterable:
        value = _header_value(record.request_headers, header.name)
        if value is None:
            value = _header_value(record.response_headers, header.name)
        if value is not None:
            found.append((header.name, "" if header.redact_values else recorded_name(value)))
    record.indexed_headers = tuple(found)


def _header_value(headers: dict[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, value in headers.items():  # stored as received: any case
        if key.lower() == name:
            return value
    return None
