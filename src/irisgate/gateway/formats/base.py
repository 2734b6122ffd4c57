"""The interface every API format plug-in implements.

A format knows its wire details and nothing else: where the model is, whether a request
streams, how its errors look, how to read usage from a body, a stream or the response
headers. The pipeline (gateway/pipeline.py) drives formats through this interface only.

What a format knows of a conversation is asked of the format too, never read from bodies
elsewhere: the first turn (session fingerprints, usage/sessions.py), the last user message
and the tool calls (hooks, hooks/payload.py), and its catalog entry (`/api/models`,
`/api/providers`, the Models page's Test button). Whether and how the browser chat can speak
a format is a separate concern, kept apart from this interface (irisgate/chat).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from irisgate.gateway.formats.chatwire import ChatAdapter
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.translate.vertex_gemini import PROJECT as VERTEX_PROJECT
from irisgate.translate.vertex_gemini import REGION as VERTEX_REGION
from irisgate.usage.estimate import Prompt
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units
from irisgate.wire.errors import GatewayError


class ChunkFilter(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class StreamAccumulator(Protocol):
    def feed_event(self, event_type: str, data: bytes) -> None: ...

    def result(self) -> StreamResult: ...


class ApiFormat(Protocol):
    #: internal name (also the value of `api_format` in records)
    name: str
    #: provider compatibility flag that enables this format
    flag: str
    #: name in exports and hooks (Aperture's `api_type`)
    api_type: str
    #: cost basis inferred for providers reached through this format
    cost_basis: str
    #: human name for messages
    title: str
    #: how the chat app holds a conversation over this API; None: the chat cannot use it
    chat_adapter: ChatAdapter | None

    def model_of(self, body: dict[str, Any]) -> str | None: ...

    def wants_stream(self, body: dict[str, Any]) -> bool: ...

    def error_body(self, error: GatewayError) -> tuple[bytes, dict[str, str]]:
        """The error in this API's envelope: body bytes and extra response headers."""
        ...

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        """Usage and tool-call count of a complete (non-stream) response body."""
        ...

    def usage_from_headers(self, headers: Mapping[str, str]) -> Usage:
        """Usage the upstream reported in its response headers (lower-cased names), e.g.
        Bedrock's `x-amzn-bedrock-*-token-count`; empty for APIs that report none there.
        Read only for a successful answer whose body or stream reported no usage: the body
        wins, as it carries details (cache TTLs, reasoning) headers do not."""
        ...

    def accumulator(self) -> StreamAccumulator: ...

    def prepare_stream(self, body: dict[str, Any]) -> ChunkFilter | None:
        """Adjust a streaming request before it goes upstream (e.g. ask for usage); return a
        filter that removes from the answer whatever the adjustment added, or None."""
        ...

    def stream_result(self, content_type: str, body: bytes) -> StreamResult | None:
        """A streamed answer framed other than SSE (Bedrock's event stream, Gemini's JSON
        array), read whole; None when `body` is not such a stream."""
        ...

    # -- the conversation (gateway/formats/turns.py) -------------------------------------------

    def first_turn(self, body: dict[str, Any]) -> list[Any]:
        """The conversation's start (instructions, first user message): the same for every
        later turn of one conversation, different between conversations."""
        ...

    def user_message(self, body: dict[str, Any]) -> str:
        """The text of the request's last user message ("" when there is none)."""
        ...

    def tool_calls(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """The tool calls a complete (or reassembled) answer asks the client to run, as
        `{"name", "params"}`."""
        ...

    def count_tool_calls(self, response: dict[str, Any]) -> int:
        """How many tool calls the answer asks for (what `usage_from_body` reports)."""
        ...

    # -- the catalog ---------------------------------------------------------------------------

    def catalog_entry(self) -> dict[str, Any]:
        """The format as the catalog shows it: compatibility flag, title, API type and the
        gateway endpoints it enables (model placeholders as `{model}`)."""
        ...

    def probe(self, model: str) -> tuple[str, dict[str, Any]] | None:
        """A minimal request to `model` (gateway path, JSON body): the Models page's Test;
        None when this API cannot ask that model (Vertex publishes Gemini and Claude under
        different methods, Bedrock's InvokeModel body is the model vendor's own)."""
        ...

    # -- chat --------------------------------------------------------------------------------
    # Whether and how the browser chat speaks this format is the chat's own adapter
    # (irisgate/chat), deliberately not part of this interface: the relay never needs it.


class Catalogued:
    """`catalog_entry` from a format's data: its `flag`, `title`, `api_type`, `endpoints`."""

    flag: str
    title: str
    api_type: str
    #: gateway paths this format answers (the model as `{model}`)
    endpoints: tuple[str, ...]

    def catalog_entry(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "title": self.title,
            "api_type": self.api_type,
            "endpoints": list(self.endpoints),
        }


#: what every Test button asks a model
PROBE_TEXT = "Say hello in five words."
PROBE_TOKENS = 16


@runtime_checkable
class Estimable(Protocol):
    """A format whose streams may end without usage and whose text irisgate can count
    (OpenAI Chat Completions and Responses, Anthropic Messages; see gateway/formats/texts.py)."""

    def prompt_text(self, body: dict[str, Any]) -> Prompt:
        """The prompt's text: what the model read."""
        ...

    def answer_text(self, response: dict[str, Any]) -> list[str]:
        """The text of a reassembled (possibly partial) answer: what the model wrote."""
        ...


@dataclass(frozen=True, slots=True)
class PathTarget:
    """What a path-templated API (Gemini, Vertex, Bedrock) says in its URL rather than its body.

    `model` is the model as the client named it (percent-decoded), `stream` whether the method
    streams. The upstream path is `prefix` + model segment + `suffix`; the client's own raw
    segment is reused unless routing renamed the model. `query` is what goes upstream.
    Vertex's `_aperture_auto_vertex_*_` placeholders stay in `prefix` until `upstream_path`.
    """

    model: str
    stream: bool
    prefix: str
    raw_model: str
    suffix: str
    query: bytes = b""
    safe: str = ""  # characters left unescaped when a renamed model is put in the path

    def upstream_path(self, model: str, project: str | None, region: str | None) -> str:
        segment = self.raw_model if model == self.model else quote(model, safe=self.safe)
        return fill_vertex(self.prefix, project, region) + segment + self.suffix


def fill_vertex(prefix: str, project: str | None, region: str | None) -> str:
    """Put the provider's project and region in for the placeholders; without a project
    (Vertex Express: a plain API key) the path takes the project-less global form. A path
    without the placeholders is returned as it is."""
    if VERTEX_PROJECT not in prefix and VERTEX_REGION not in prefix:
        return prefix
    if project is None:
        start = prefix.find("/projects/")
        end = prefix.find("/publishers/")
        if start >= 0 and end > start:
            return prefix[:start] + prefix[end:]
        return prefix
    return prefix.replace(VERTEX_PROJECT, project).replace(VERTEX_REGION, region or "global")


@dataclass(frozen=True, slots=True)
class Operation:
    """What one gateway path does: which format, whether it produces billable usage, what
    kind of request it is (telemetry/record.py `KINDS`) and whether its body is an upload
    (multipart/form-data, read by wire/upload.py rather than parsed as JSON).

    `by_model` decides the kind from the model where one path serves several kinds
    (Bedrock's InvokeModel: chat models and embedding models)."""

    format: ApiFormat
    billable: bool = True
    can_stream: bool = True
    kind: str = "chat"
    upload: bool = False
    by_model: Callable[[str], str] | None = None

    def kind_of(self, model: str) -> str:
        return self.by_model(model) if self.by_model is not None else self.kind


@runtime_checkable
class Slimmed(Protocol):
    """A format whose answers carry binary data as base64 (images): capture stores them by
    size and type instead of inline."""

    def stored_body(
        self, response: dict[str, Any] | None, size: int, content_type: str
    ) -> bytes | None:
        """The body capture stores for an answer of `size` bytes (`response` is None when it
        was too large to read whole); None to store what the tee kept."""
        ...


@runtime_checkable
class Counted(Protocol):
    """A format whose answers may be priced per unit rather than per token (images)."""

    def units(self, request: dict[str, Any], response: dict[str, Any]) -> Units | None:
        """The units an answer delivered (None when tokens price it)."""
        ...

    def requested(self, request: dict[str, Any]) -> Units:
        """The units a request asks for: what its quota reservation is priced by when its
        model has no token price."""
        ...
