"""What a request is, decided once at the front door: its `Endpoint`.

`endpoint_of(scope)` classifies an HTTP request by method and path the first time it is asked
and keeps the answer on the ASGI scope, so the host and cross-site guards, the dispatcher in
`build_app`, the shutdown refusal and the error answers of unknown paths all read one decision:

    kind        paths                                             errors answer in
    llm         POST /v1/chat/completions, /v1/responses,         the API's own envelope
                /v1/messages, /v1/audio/…, Gemini / Vertex /
                Bedrock paths (`formats/templates.py`),
                /v1/responses/{id}, /v1/files…, /v1/batches…;
                also any other path in an LLM API's space
                (`/v1/…`, `/v1/messages…`, `/v1beta/…`,
                `/bedrock/…`): `op` is None, answered 404/405
    mcp         /v1/mcp                                           JSON-RPC error
    connector   /v1/connectors/…                                  {"error": …}
    api         /api/…, /v1/models (OpenAI's envelope),           {"error": …}
                /aperture/… except the OAuth callback page
    page        /ui…, /chat…, /aperture/auth/…, /auth/…           text/plain
    health      /healthz, /readyz, /metrics                       {"error": …}
    unknown     everything else (`/`, …)                          text/plain

An LLM-API path that is no operation gets the envelope of the API whose space it is in, so an
SDK reports a proper "not found" naming the path instead of failing to parse a text body.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from irisgate.connectors import ACCESS_DENIED
from irisgate.connectors.proxy import PREFIX as CONNECTORS_PREFIX
from irisgate.gateway.formats.base import ApiFormat, Operation, PathTarget
from irisgate.gateway.formats.cloud import BEDROCK_CONVERSE, GEMINI
from irisgate.gateway.formats.registry import (
    ANTHROPIC_MESSAGES,
    BATCH_CALL,
    FILE_CALL,
    FILE_UPLOAD,
    OPENAI_BATCHES,
    OPENAI_CHAT,
    PATHS,
    STORED_RESPONSE,
)
from irisgate.gateway.formats.templates import classify
from irisgate.gateway.objects import ObjectCall, is_object_path, object_call_of
from irisgate.telemetry.responses import response_id_of
from irisgate.web.headers import is_page
from irisgate.wire.errors import ErrorKind, GatewayError

Kind = Literal["llm", "mcp", "connector", "api", "page", "health", "unknown"]
#: the scope key the endpoint is kept under
SCOPE_KEY = "irisgate.endpoint"
MCP_PATHS = frozenset({"/v1/mcp", "/v1/mcp/"})
HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_SHOWN = 200  # longest path quoted back in an error
#: where each API's path space starts, most specific first
_GOOGLE_PREFIXES = ("/v1beta/", "/v1beta1/", "/v1/projects/", "/v1/publishers/")
_ANTHROPIC_PREFIX = "/v1/messages/"


@dataclass(slots=True)  # not frozen: built per request, and a frozen one costs 4x to build
class Endpoint:
    """One request's classification: what serves it and in which envelope it hears errors.
    Read-only by convention: many requests share the instances of fixed paths."""

    kind: Kind
    #: the API whose error envelope this path's errors use (None: irisgate's own)
    format: ApiFormat | None = None
    #: the gateway operation (kind llm); None when the path is no operation of its API
    op: Operation | None = None
    #: the model, stream flag and upstream path of a path-templated operation
    target: PathTarget | None = None
    #: the stored response a `/v1/responses/{id}` call names
    response_id: str | None = None
    #: the files or batches call (`/v1/files…`, `/v1/batches…`: gateway/objects.py)
    call: ObjectCall | None = None
    #: the methods the path has when this request's method is not one of them (a 405)
    allowed: tuple[str, ...] = ()

    @property
    def passes_through(self) -> bool:
        """Relayed to an upstream irisgate knows nothing about (so even a GET may act)."""
        return self.kind in ("mcp", "connector")

    def error(self, status: int, kind: ErrorKind, message: str) -> tuple[bytes, dict[str, str]]:
        """`message` as an error body in this endpoint's envelope, and its headers."""
        if self.format is not None:
            body, extra = self.format.error_body(GatewayError(kind, message, status=status))
            return body, {"content-type": "application/json", **extra}
        if self.kind == "mcp":
            error = {"code": ACCESS_DENIED, "message": message}
            body = orjson.dumps({"jsonrpc": "2.0", "id": None, "error": error})
            return body, {"content-type": "application/json"}
        if self.kind == "page":  # people read this, not programs
            return message.encode(), {"content-type": "text/plain; charset=utf-8"}
        return orjson.dumps({"error": message}), {"content-type": "application/json"}

    async def answer(
        self, send: Any, status: int, kind: ErrorKind, message: str, **headers: str
    ) -> None:
        """Send `message` as a whole error answer in this endpoint's envelope."""
        body, extra = self.error(status, kind, message)
        extra.update(headers)
        extra["content-length"] = str(len(body))
        extra["x-content-type-options"] = "nosniff"
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        try:
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
        except OSError:
            return  # the client went away; nothing to tell it

    async def no_operation(self, scope: dict[str, Any], send: Any) -> None:
        """The answer to an LLM-API path that is no operation: 405 when the path has other
        methods, else 404; both name the method and the path."""
        method, path = scope["method"], shown(scope["path"])
        if self.allowed:
            allowed = ", ".join(self.allowed)
            message = f"{method} is not allowed on {path}; allowed: {allowed}"
            await self.answer(send, 405, "invalid_request", message, allow=allowed)
            return
        await self.answer(send, 404, "not_found", f"no such endpoint: {method} {path}")


def endpoint_of(scope: MutableMapping[str, Any]) -> Endpoint:
    """The request's endpoint, classified on first use and kept on the scope."""
    found: Endpoint | None = scope.get(SCOPE_KEY)
    if found is None:
        found = scope[SCOPE_KEY] = _classify(scope)
    return found


_MCP = Endpoint("mcp")
_CONNECTOR = Endpoint("connector")
_API = Endpoint("api")
_MODELS = Endpoint("api", OPENAI_CHAT)
_PAGE = Endpoint("page")
_HEALTH = Endpoint("health")
_UNKNOWN = Endpoint("unknown")
_POST = ("POST",)
#: the fixed LLM paths, called with POST and with any other method
_FIXED = {path: Endpoint("llm", op.format, op) for path, op in PATHS.items()}
_FIXED_OTHER = {path: Endpoint("llm", op.format, allowed=_POST) for path, op in PATHS.items()}


def _classify(scope: MutableMapping[str, Any]) -> Endpoint:
    method: str = scope["method"]
    path: str = scope["path"]
    fixed = (_FIXED if method == "POST" else _FIXED_OTHER).get(path)
    if fixed is not None:  # the fast path: a fixed LLM path
        return fixed
    if path.startswith("/api/"):
        return _API
    if is_page(path):
        return _PAGE
    if path in HEALTH_PATHS:
        return _HEALTH
    if path in MCP_PATHS:
        return _MCP
    if path.startswith(CONNECTORS_PREFIX):
        return _CONNECTOR
    if path == "/v1/models":
        return _MODELS
    if path.startswith("/aperture/"):
        return _API
    stored = _stored_object(method, path)
    if stored is not None:
        return stored
    raw = scope.get("raw_path")
    templated = classify(raw.decode("latin-1") if raw else path, scope.get("query_string", b""))
    if templated is not None:
        op, target = templated
        if method == "POST":
            return Endpoint("llm", op.format, op, target)
        return Endpoint("llm", op.format, allowed=_POST)
    fmt = _api_space(path)
    return Endpoint("llm", fmt) if fmt is not None else _UNKNOWN


def _stored_object(method: str, path: str) -> Endpoint | None:
    """A call that names something a provider stores instead of a model: a Responses API
    response (`/v1/responses/{id}`…), a file or a batch (`/v1/files…`, `/v1/batches…`)."""
    if path.startswith("/v1/responses/"):
        response_id = response_id_of(method, path)
        if response_id is not None:
            return Endpoint("llm", STORED_RESPONSE.format, STORED_RESPONSE, response_id=response_id)
        return Endpoint("llm", STORED_RESPONSE.format)
    if is_object_path(path):
        call = object_call_of(method, path)
        if call is None:
            return Endpoint("llm", OPENAI_BATCHES)
        if call.action == "file_create":
            op = FILE_UPLOAD
        else:
            op = FILE_CALL if call.kind == "file" else BATCH_CALL
        return Endpoint("llm", OPENAI_BATCHES, op, call=call)
    return None


def _api_space(path: str) -> ApiFormat | None:
    """The LLM API in whose path space `path` lies (it is none of its operations)."""
    if path.startswith("/bedrock/") or path == "/bedrock":
        return BEDROCK_CONVERSE
    if path.startswith(_GOOGLE_PREFIXES) or (path.startswith("/v1/models/") and ":" in path):
        return GEMINI
    if path.startswith(_ANTHROPIC_PREFIX):
        return ANTHROPIC_MESSAGES
    if path == "/v1" or path.startswith("/v1/"):
        return OPENAI_CHAT
    return None


def shown(value: str) -> str:
    """`value` quoted back in a message, shortened past `_SHOWN` characters."""
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
