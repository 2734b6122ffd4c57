"""What a format adapter module of this package offers (see ir.py for the neutral shape).

A module is a client adapter when it implements `ClientSide` (the caller speaks its API) and a
provider adapter when it implements `ProviderSide` (the provider does). Both are module-level
functions and classes, so adapters are interchangeable and typed as modules (mypy checks a
module against a Protocol).
"""

from __future__ import annotations

from typing import Any, Protocol

from irisgate.translate import ir


class StreamEncoder(Protocol):
    def encode(self, event: ir.Event) -> bytes: ...

    def close(self) -> bytes: ...


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> list[ir.Event]: ...

    def finish(self) -> list[ir.Event]: ...


class ClientSide(Protocol):
    def read_request(self, body: dict[str, Any], *, model: str, stream: bool) -> ir.Request: ...

    # `tools`: the request's, for an API whose calls name a tool otherwise than other APIs do
    def write_response(self, r: ir.Response, tools: tuple[ir.Tool, ...] = ()) -> dict[str, Any]: ...

    def Encoder(self, model: str, tools: tuple[ir.Tool, ...] = ()) -> StreamEncoder: ...  # noqa: N802  # the adapter's class


class ProviderSide(Protocol):
    def provider_path(self, model: str, stream: bool) -> str: ...

    def write_request(self, r: ir.Request) -> dict[str, Any]: ...

    def read_response(self, body: dict[str, Any]) -> ir.Response: ...

    def Decoder(self) -> StreamDecoder: ...  # noqa: N802  # the adapter's class

    def read_error(self, status: int, body: bytes) -> str: ...
