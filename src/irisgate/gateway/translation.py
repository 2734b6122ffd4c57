"""Translation on the request path: a caller's API served by a provider that speaks another.

The pipeline (pipeline.py) asks for it only when a model is routed to no provider that
speaks the caller's format: an untranslated request never reaches this module. Then
`Translation.plan` reads the caller's body into the neutral request (irisgate/translate),
the routes are the model's providers with `"translate": true` whose format irisgate can
write, and each attempt sends the body written for its provider's format to that format's
path (`upstream`). The answer passes through a `Translation` as the relay's reframing: a
stream event by event as its bytes arrive (the provider's decoder, the caller's encoder), a
complete answer or an error once whole, into the caller's API and error envelope with the
provider's status (and `Retry-After`). The tee keeps the provider's own bytes, so usage and
capture read the provider's answer in the provider's format.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from irisgate.access.routing import Route
from irisgate.config.model import Provider
from irisgate.gateway.formats.base import ApiFormat, ChunkFilter
from irisgate.gateway.formats.registry import FORMATS
from irisgate.gateway.relaycore import Headers
from irisgate.gateway.tee import Tee
from irisgate.translate import CLIENTS, PROVIDERS, ir
from irisgate.translate.adapter import ClientSide, ProviderSide, StreamDecoder, StreamEncoder
from irisgate.wire import nesting
from irisgate.wire.errors import ErrorKind, GatewayError

#: every format by name (what a provider speaks, for capture and pricing)
FORMAT_NAMED: dict[str, ApiFormat] = {f.name: f for f in FORMATS}
#: the compatibility flags of the provider formats irisgate can write, in the order a
#: provider's first one is chosen, and the format each enables
PROVIDER_FLAGS: dict[str, str] = {f.flag: f.name for f in FORMATS if f.name in PROVIDERS}
#: request headers of one API's SDK that mean nothing (or the wrong thing) to another API
_CLIENT_API_PREFIXES = ("anthropic-", "openai-", "x-goog-", "x-amz-")
#: headers a provider's API requires
_API_HEADERS: dict[str, dict[str, str]] = {
    "anthropic_messages": {"anthropic-version": "2023-06-01"}
}
#: the most bytes of a complete answer (or error) read to translate it
ANSWER_LIMIT = 32 * 1024 * 1024
_KINDS: dict[int, ErrorKind] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    413: "too_large",
    429: "rate_limit",
}


def reachable_from(provider: Provider) -> list[str]:
    """The client API formats (flags) that reach `provider`'s models only through
    translation: none unless it has `translate` on and speaks a format irisgate writes."""
    if not provider.translate or not any(provider.accepts(f) for f in PROVIDER_FLAGS):
        return []
    return [
        FORMAT_NAMED[name].flag
        for name in CLIENTS
        if name in FORMAT_NAMED and not provider.accepts(FORMAT_NAMED[name].flag)
    ]


def translatable(fmt: ApiFormat) -> bool:
    """Whether callers of `fmt` can be served through translation."""
    return fmt.name in CLIENTS


def refused(exc: ir.Untranslatable) -> GatewayError:
    return GatewayError("invalid_request", f"cannot translate this request: {exc}")


@dataclass(slots=True)
class Translation:
    """One translated request: the caller's adapter, the neutral request, and for each route
    (by provider id) the provider format and the body it is sent."""

    client_format: ApiFormat
    client: ClientSide
    request: ir.Request
    routes: list[tuple[Route, str]]  # each with the provider format it is sent
    #: what the caller got, kept like the tee keeps the provider's answer (for capture)
    output: Tee
    bodies: dict[str, bytes] = field(default_factory=dict)
    current: str = ""  # the provider format of the attempt made last (the answer's)
    #: the caller's body as capture keeps it (after what pre-request hooks changed)
    caller_body: bytes = b""
    #: the error that ended a translated stream after it had begun ("" for none)
    stream_error: str = ""

    @classmethod
    def plan(
        cls,
        fmt: ApiFormat,
        body: dict[str, Any],
        model: str,
        stream: bool,
        routes: list[tuple[Route, str]],  # each with the flag of the format it is sent
        *,
        capture_limit: int,
    ) -> Translation:
        client = CLIENTS[fmt.name]
        try:
            request = client.read_request(body, model=model, stream=stream)
        except ir.Untranslatable as exc:
            raise refused(exc) from None
        named = [(route, PROVIDER_FLAGS[flag]) for route, flag in routes]
        return cls(fmt, client, request, named, Tee(capture_limit))

    def reread(self, body: dict[str, Any], stream: bool) -> None:
        """A pre-request hook changed the caller's body: read it again."""
        try:
            self.request = self.client.read_request(body, model=self.request.model, stream=stream)
        except ir.Untranslatable as exc:
            raise refused(exc) from None

    def write_bodies(self) -> list[Route]:
        """Write the body of every route's provider; routes whose format cannot carry the
        request are left out. The routes left, or a 400 naming what could not be carried."""
        kept: list[Route] = []
        problem: ir.Untranslatable | None = None
        for route, name in self.routes:
            request = dataclasses.replace(self.request, model=route.model)
            try:
                self.bodies[route.provider.id] = orjson.dumps(
                    PROVIDERS[name].write_request(request)
                )
            except ir.Untranslatable as exc:
                problem = problem or exc
                continue
            kept.append(route)
        if not kept:
            assert problem is not None
            raise refused(problem)
        return kept

    def upstream(self, route: Route) -> tuple[str, bytes]:
        """The path and body an attempt on `route` sends; that attempt's answer is the one
        reframed unless another attempt follows."""
        name = self.format_of(route)
        self.current = name
        return PROVIDERS[name].provider_path(route.model, self.request.stream), self.bodies[
            route.provider.id
        ]

    def format_of(self, route: Route) -> str:
        return next(name for r, name in self.routes if r.provider.id == route.provider.id)

    def upstream_format(self) -> ApiFormat:
        return FORMAT_NAMED[self.current]

    def request_headers(self, incoming: dict[str, str]) -> dict[str, str]:
        """The caller's headers as a provider of another API may get them, plus what the
        current provider's API requires."""
        kept = {k: v for k, v in incoming.items() if not k.startswith(_CLIENT_API_PREFIXES)}
        kept.update(_API_HEADERS.get(self.current, {}))
        kept["content-type"] = "application/json"
        return kept

    # -- the relay's reframing (relaycore.Reframing) -----------------------------------------

    def open(self, status: int) -> ChunkFilter:
        provider = PROVIDERS[self.current]
        self.output = Tee(self.output.limit)  # an earlier attempt's answer is not this one
        if not 200 <= status < 300:
            return _Whole(self.output, lambda body: self._error(provider, status, body))
        if self.request.stream:
            encoder = self.client.Encoder(self.request.model, self.request.tools)
            return _Stream(self, provider.Decoder(), encoder)
        return _Whole(self.output, lambda body: self._answer(provider, body))

    def client_headers(self, status: int) -> dict[str, str]:
        """The headers of what the caller got, as capture reads its answer."""
        return {k.decode(): v.decode() for k, v in self.headers(status, [])}

    def headers(self, status: int, forwarded: Headers) -> Headers:
        streams = self.request.stream and 200 <= status < 300
        content_type = b"text/event-stream" if streams else b"application/json"
        out: Headers = [(b"content-type", content_type)]
        if streams:
            out.append((b"cache-control", b"no-cache"))
        out.extend((k, v) for k, v in forwarded if k.lower() == b"retry-after")
        return out

    def _answer(self, provider: ProviderSide, body: bytes | None) -> bytes:
        if body is None:
            return self._broken(f"it is larger than {ANSWER_LIMIT} bytes")
        try:
            parsed = nesting.loads(body)
            if not isinstance(parsed, dict):
                raise ir.Untranslatable("the answer is not a JSON object")
            answer = self.client.write_response(provider.read_response(parsed), self.request.tools)
        except (orjson.JSONDecodeError, ir.Untranslatable) as exc:
            return self._broken(str(exc))
        return orjson.dumps(answer)

    def _broken(self, why: str) -> bytes:
        message = f"the provider's answer could not be translated: {why}"
        return self.client_format.error_body(GatewayError("upstream", message))[0]

    def _error(self, provider: ProviderSide, status: int, body: bytes | None) -> bytes:
        kind: ErrorKind = _KINDS.get(status, "upstream" if status >= 500 else "invalid_request")
        message = provider.read_error(status, body or b"")
        return self.client_format.error_body(GatewayError(kind, message, status=status))[0]


class _Stream:
    """A provider's stream into the caller's, event by event as the bytes arrive. An event
    that grows past `ANSWER_LIMIT` bytes ends the caller's stream with an error (memory
    stays bounded: the decoder holds an event until it is complete)."""

    __slots__ = ("_broken", "_decoder", "_encoder", "_translation", "_waiting")

    def __init__(
        self, translation: Translation, decoder: StreamDecoder, encoder: StreamEncoder
    ) -> None:
        self._translation, self._decoder, self._encoder = translation, decoder, encoder
        self._waiting = 0  # bytes fed since the last event came out
        self._broken = False

    def feed(self, data: bytes) -> bytes:
        if self._broken:
            return b""
        events = self._decoder.feed(data)
        if events:
            self._waiting = 0
        else:
            self._waiting += len(data)
            if self._waiting > ANSWER_LIMIT:
                self._broken = True
                message = f"the provider sent a stream event larger than {ANSWER_LIMIT} bytes"
                events = [ir.StreamError(502, message)]
        return self._encode(events)

    def flush(self) -> bytes:
        if self._broken:
            return b""
        return self._encode(self._decoder.finish()) + self._add(self._encoder.close())

    def _encode(self, events: list[ir.Event]) -> bytes:
        encode = self._encoder.encode
        if events and isinstance(events[-1], ir.StreamError):  # the record says why it ended
            self._translation.stream_error = f"provider stream error: {events[-1].message}"
        return self._add(b"".join([encode(event) for event in events]))

    def _add(self, out: bytes) -> bytes:
        if out:
            self._translation.output.add(out)
        return out


class _Whole:
    """A complete answer, translated once it has all arrived (up to `ANSWER_LIMIT` bytes)."""

    __slots__ = ("_convert", "_output", "_pieces", "_size")

    def __init__(self, output: Tee, convert: Callable[[bytes | None], bytes]) -> None:
        self._output, self._convert = output, convert
        self._pieces: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size <= ANSWER_LIMIT:
            self._pieces.append(data)
        return b""

    def flush(self) -> bytes:
        """The translation; `convert(None)` when the answer was too large to keep."""
        whole = self._size <= ANSWER_LIMIT
        out = self._convert(b"".join(self._pieces) if whole else None)
        self._output.add(out)
        return out
