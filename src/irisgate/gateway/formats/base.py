"""The interface every API format plug-in implements.

A format knows its wire details and nothing else: where the model is, whether a request
streams, how its errors look, how to read usage from a body or a stream. The pipeline
(gateway/pipeline.py) drives formats through this interface only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from irisgate.gateway.errors import GatewayError
from irisgate.gateway.formats.streamresult import StreamResult
from irisgate.usage.tokens import Usage


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

    def model_of(self, body: dict[str, Any]) -> str | None: ...

    def wants_stream(self, body: dict[str, Any]) -> bool: ...

    def error_body(self, error: GatewayError) -> tuple[bytes, dict[str, str]]:
        """The error in this API's envelope: body bytes and extra response headers."""
        ...

    def usage_from_body(self, body: dict[str, Any]) -> tuple[Usage, int]:
        """Usage and tool-call count of a complete (non-stream) response body."""
        ...

    def accumulator(self) -> StreamAccumulator: ...

    def prepare_stream(self, body: dict[str, Any]) -> ChunkFilter | None:
        """Adjust a streaming request before it goes upstream (e.g. ask for usage); return a
        filter that removes from the answer whatever the adjustment added, or None."""
        ...


@dataclass(frozen=True, slots=True)
class Operation:
    """What one gateway path does: which format, and whether it produces billable usage."""

    format: ApiFormat
    billable: bool = True
    can_stream: bool = True
