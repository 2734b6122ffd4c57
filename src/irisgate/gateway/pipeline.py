"""The gateway request path, in order. This module is the only place that states the order:

    read body → identify → authorize (role) → classify (format, model) → route (grants)
      → rate limits → quota check (reserve) → pre-request hooks → build upstream request
      → relay (stream back, tee) → usage + cost → quota and rate-limit settle
      → capture record → post-response hooks

Route gives every granted provider in order; the upstream request is built per attempt and
sent again to the next provider or key while no answer has started (failover.py), so quota
and hooks run once and only the answer that reached the client is charged.

A stream that ended without the upstream's usage has it estimated first (usage/estimate.py),
in a background task: quota settle, record and hooks follow there, after the client is gone.
While the process shuts down, new requests are refused with 503 before any stage, and those
still running at the end of the grace are cut like a client disconnect (drain.py).
Calls that name a stored OpenAI response (`GET /v1/responses/{id}` …) are routed by the
response's creator (telemetry/responses.py) instead of classify + route, without quota or hooks.
An upload (multipart/form-data: `/v1/images/edits`) is read whole into memory or a temporary
file (wire/upload.py) before classify, which reads its text fields; it goes through every
stage but the pre-request hooks (there is no JSON body for them to read or replace).
So are audio transcriptions and translations and file uploads (`POST /v1/files`).
The calls of OpenAI's files and batches (gateway/objects.py) are routed by the object's
creator instead of classify + route; irisgate answers their list calls itself, and a batch's
results are charged when its output file is first downloaded.

Each stage lives in its own module and knows nothing of the others. LLM paths are served by
`Gateway` as a raw ASGI callable (no framework on this path: see DESIGN.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import structlog

from irisgate.access.grants import Access
from irisgate.access.routing import Route
from irisgate.drain import REFUSAL
from irisgate.gateway.capture import Answer, read_tee
from irisgate.gateway.duplicates import refuse_duplicate_keys
from irisgate.gateway.failover import Attempts
from irisgate.gateway.formats.base import (
    ApiFormat,
    ChunkFilter,
    Counted,
    Estimable,
    Operation,
    PathTarget,
    Slimmed,
    fill_vertex,
)
from irisgate.gateway.formats.openai_batches import BatchLines, BatchResults
from irisgate.gateway.formats.registry import OPENAI_BATCHES, OPENAI_RESPONSES
from irisgate.gateway.objects import (
    ObjectCall,
    ObjectIndex,
    batch_route,
    charge,
    created_by_answer,
    file_route,
    owned_route,
)
from irisgate.gateway.relay import FORWARDING, RelayResult, refusal
from irisgate.gateway.relaycore import Unanswered, relay, watched
from irisgate.gateway.tee import Tee, marker
from irisgate.gateway.translation import PROVIDER_FLAGS, Translation, translatable
from irisgate.hooks.plan import HookCall, HookPlan
from irisgate.identity import Identity, IdentityRefused, KeyRefused, SignInRequired
from irisgate.quotas.gate import Admission
from irisgate.quotas.ratelimits import Permit
from irisgate.runtime import Runtime
from irisgate.snapshot import Snapshot
from irisgate.store.objects import OwnedObject
from irisgate.telemetry.record import RequestRecord, new_request_id, recorded_name
from irisgate.usage.estimate import Prompt, UsageEstimate
from irisgate.usage.sessions import session_id
from irisgate.usage.tokenizer import TokenizerUnavailable
from irisgate.usage.unitprices import Units
from irisgate.wire import nesting
from irisgate.wire.bodylimit import BodyTooLarge, ClientGone, read_body
from irisgate.wire.errors import GatewayError
from irisgate.wire.multipart import Form, FormError, FormReader, boundary_of
from irisgate.wire.upload import Upload, read_upload
from irisgate.wire.upstream import UpstreamRequest, build_headers, redact, upstream_url

Scope = dict[str, Any]
log = structlog.get_logger("irisgate.gateway")
#: a request refused because the process shuts down: retry at once, on a new connection
_REFUSAL_HEADERS = {"retry-after": "1", "connection": "close"}


@dataclass(slots=True)
class Exchange:
    """One request on its way through the stages."""

    op: Operation
    headers: dict[str, str]
    record: RequestRecord
    result: RelayResult
    route: Route | None = None  # the first route, then the one whose attempt answered
    routes: list[Route] | None = None  # every route to try, best first (failover.py)
    request: UpstreamRequest | None = None
    chunk_filter: ChunkFilter | None = None
    identity: Identity | None = None
    access: Access | None = None
    admission: Admission | None = None
    permit: Permit | None = None  # what the request holds of its rate limits
    hooks: HookPlan | None = None
    url: str = ""
    estimate: int | None = None  # nanodollars, for hooks
    target: PathTarget | None = None  # what a path-templated API said in its URL
    response_id: str | None = None  # the stored response a model-less Responses call names
    call: ObjectCall | None = None  # a files or batches call (gateway/objects.py)
    batch: BatchLines | None = None  # an uploaded file's lines, read as a batch file's
    owned: OwnedObject | None = None  # the object a call names, or the one it will create
    created: list[OwnedObject] | None = None  # objects the answer created or changed
    results: BatchResults | None = None  # a batch output file's results, to charge
    listed: bytes | None = None  # a list call's answer, made by irisgate
    started: float = 0.0  # perf_counter when the request arrived
    body: bytes = b""  # the request body as the client sent it, once read
    out_body: bytes = b""  # the body every attempt sends upstream
    path: str = ""  # the client's path and query (a path-templated API's are per route)
    query: bytes = b""
    pending: UsageEstimate | None = None  # usage the stream ended without, to estimate
    accounted: bool = False  # usage and cost taken from the answer (before its end went out)
    parsed: dict[str, Any] | None = None  # the request's JSON (an upload's text fields) as sent
    upload: Upload | None = None  # an upload's body, sent from memory or a temporary file
    form: Form | None = None  # what the upload's form held
    journaled: bool = False  # the record is in the spool as it was when the answer ended
    #: the caller's API is served by a provider of another (translation.py); None: not
    translation: Translation | None = None


class Gateway:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.objects = ObjectIndex(runtime.db)

    async def handle(
        self,
        scope: Scope,
        receive: Any,
        send: Any,
        op: Operation,
        target: PathTarget | None = None,
        *,
        response_id: str | None = None,
        call: ObjectCall | None = None,
    ) -> None:
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = RequestRecord(
            request_id=new_request_id(),
            started_at=datetime.now(UTC),
            login_name="",
            method=scope["method"],
            path=scope["path"],
            api_format=op.format.name,
            api_type=op.format.api_type,
            user_agent=headers.get("user-agent", ""),
            kind=op.kind,
        )
        result = RelayResult(Tee(self.runtime.settings.max_capture_body))
        ex = Exchange(
            op, headers, record, result, target=target, response_id=response_id, call=call
        )
        ex.started = started
        drain = self.runtime.drain
        try:
            self._check_taking_work()
            with drain.track(record):
                await self._serve(ex, scope, receive, send)
        except GatewayError as exc:
            await self._refuse(ex, send, exc)
        except ClientGone:
            record.cancelled = True
        except IdentityRefused as exc:
            await self._refuse(ex, send, _identity_error(exc))
        except asyncio.CancelledError:
            if not drain.was_cut(record):
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # we run in a task
            await self._refuse_cut(ex, send)  # cut while being prepared (hooks, quota)
        finally:
            record.duration_ms = (time.perf_counter() - started) * 1000
            if ex.result.first_byte_at is not None:
                record.ttfb_ms = (ex.result.first_byte_at - started) * 1000
            if ex.pending is None:
                self._finish(ex)
            else:  # tokenizing is CPU work: off the request path, before anything is settled
                self.runtime.defer(self._estimate_then_finish(ex, ex.pending))

    async def _serve(self, ex: Exchange, scope: Scope, receive: Any, send: Any) -> None:
        """identify … relay, for one request; `handle` answers what this raises."""
        await self._admit(ex, scope)
        body = await self._read(ex, scope, receive)
        await self._prepare(ex, scope, body)
        record = ex.record
        if ex.listed is not None:
            await _send_json(send, ex.listed, record.request_id)
            record.status, record.response_bytes = 200, len(ex.listed)
            return
        try:
            await self._relay(ex, send, receive)
        finally:
            if ex.created:  # remembered before the answer's end: written whatever happens
                await self.objects.save(ex.created)
        if ex.call is not None:
            await self._after_object_call(ex)
        if ex.result.status and ex.route is not None:
            if not ex.accounted:  # sealed before the answer's end otherwise
                self._account(ex, ex.route)
        elif self.runtime.drain.was_cut(record):  # cut before the upstream answered
            await self._refuse_cut(ex, send)

    def _check_taking_work(self) -> None:
        """Refuse before any work (nothing is recorded or charged): the process is stopping,
        or the database is away and the record spool is full."""
        if self.runtime.drain.draining:
            raise GatewayError("unavailable", REFUSAL, headers=_REFUSAL_HEADERS)
        if self.runtime.recording_refused:
            raise GatewayError(
                "unavailable",
                "irisgate cannot record requests right now (the database is unavailable "
                "and the record spool is full); try again later",
                headers={"retry-after": "30"},
            )

    async def _refuse_cut(self, ex: Exchange, send: Any) -> None:
        """Answer 503 to a request the shutdown cut before its answer started; the record
        keeps the shutdown as its error."""
        error = GatewayError("unavailable", REFUSAL, headers=_REFUSAL_HEADERS)
        ex.record.status = error.status
        await _send_error(send, ex.op, error, ex.record.request_id)

    def _finish(self, ex: Exchange) -> None:
        """quota settle → capture record → post-response hooks → metrics."""
        record = ex.record
        if ex.upload is not None:  # the attempts are over: the temporary file goes
            ex.upload.close()
        if record.cost_nanodollars is None and record.usage.is_empty() and not record.unit:
            record.cost_nanodollars = 0  # nothing used, nothing owed; None means unpriced
        if ex.admission is not None:
            self.runtime.quotas.settle(
                ex.admission, record.cost_nanodollars, record.usage.output_tokens
            )
        if ex.permit is not None:
            self.runtime.rates.settle(ex.permit, record.usage.total_tokens)
        if record.login_name:
            unchanged = ex.journaled and ex.pending is None and not record.cancelled
            self.runtime.record(record, journaled=unchanged)
        if ex.hooks is not None and ex.hooks.post and ex.identity is not None:
            answer = ex.result.tee if ex.translation is None else ex.translation.output
            raw = answer.stored() if record.stream else b""  # what the caller got
            self.runtime.hooks.after(ex.hooks, self._hook_call(ex), ex.result.status, raw)
        self.runtime.observe(record)

    async def _estimate_then_finish(self, ex: Exchange, pending: UsageEstimate) -> None:
        """Count the tokens a stream ended without (a slice at a time), price them like
        reported usage, then finish the request as usual."""
        record = ex.record
        try:
            try:
                record.usage = await pending.run()
                record.usage_estimated = True
            except TokenizerUnavailable as exc:  # what the upstream did report still counts
                log.error("usage not estimated", request_id=record.request_id, reason=str(exc))
            if ex.route is not None and not record.usage.is_empty():
                fmt = ex.op.format if ex.translation is None else ex.translation.upstream_format()
                self._price(record, ex.route, fmt)
        finally:
            self._finish(ex)

    async def _admit(self, ex: Exchange, scope: Scope) -> None:
        """identify → authorize (role): before a byte of the body is read."""
        record = ex.record
        identity = await self.runtime.resolver.resolve(scope.get("client"), scope["headers"])
        record.login_name, record.display_name = identity.login_name, identity.display_name
        record.node_id, record.node_name = identity.node_id, identity.node_name
        record.tags = identity.tags
        if identity.key is not None:
            record.key_id, record.key_name = identity.key.id, identity.key.name
        access = self.runtime.snapshot.grants.access_for(identity)
        if access.role is None:
            raise GatewayError("permission", "access denied: no role granted")
        ex.identity, ex.access = identity, access

    async def _read_body(self, scope: Scope, receive: Any) -> bytes:
        limit = self.runtime.settings.max_request_body
        try:
            return await read_body(receive, scope["headers"], limit, "--max-request-body")
        except BodyTooLarge as exc:
            raise GatewayError("too_large", str(exc)) from None

    async def _read(self, ex: Exchange, scope: Scope, receive: Any) -> bytes:
        if ex.op.upload:
            return await self._read_form(ex, scope, receive)
        return await self._read_body(scope, receive)

    async def _read_form(self, ex: Exchange, scope: Scope, receive: Any) -> bytes:
        """Read an upload (wire/upload.py) and return what stands for its body on the way
        through the stages: its form as JSON, text fields inline and files by name, size
        and type (what classify and quota read, and what capture stores)."""
        limit = self.runtime.settings.max_request_body
        try:
            boundary = boundary_of(ex.headers.get("content-type", ""))
            if ex.call is not None:  # a file upload: its lines are read in case it is a batch's
                ex.batch = BatchLines()
            reader = FormReader(boundary, ex.batch.feed if ex.batch is not None else None)
            ex.upload = await read_upload(
                receive, scope["headers"], limit, "--max-request-body", reader
            )
            ex.form = reader.close()
        except BodyTooLarge as exc:
            raise GatewayError("too_large", str(exc)) from None
        except FormError as exc:
            raise GatewayError("invalid_request", str(exc)) from None
        ex.record.request_bytes = ex.upload.size
        return orjson.dumps(ex.form.summary())

    async def _prepare(self, ex: Exchange, scope: Scope, body: bytes) -> None:
        """classify → route → rate limits → quota → pre-request hooks → upstream request."""
        record, fmt = ex.record, ex.op.format
        snapshot = self.runtime.snapshot
        record.config_version = snapshot.version
        identity, access = ex.identity, ex.access
        assert identity is not None
        assert access is not None
        if ex.upload is None:
            record.request_bytes = len(body)
        ex.body = body  # a refused request is recorded with it (`_refuse`)
        if ex.response_id is not None:
            await self._prepare_stored(ex, scope, body, identity, access)
            return
        if ex.call is not None:
            await self._prepare_object(ex, scope, body, identity, access)
            return
        target = ex.target
        parsed = _parse_json(body, keys_in_body=target is None)
        in_body = self._route(ex, parsed, identity, access)
        route = ex.route
        assert route is not None
        ex.permit = self.runtime.rates.admit(
            snapshot,
            access=access,
            identity=identity,
            route=route,
            body=parsed,
            body_size=len(body),
        )
        ex.admission = await self.runtime.quotas.admit(
            snapshot,
            access=access,
            identity=identity,
            route=route,
            format_basis=fmt.cost_basis,
            body=parsed,
            body_size=len(body),
            units=_requested(fmt, parsed),
        )
        parsed, modified = await self._pre_hooks(ex, scope, snapshot, parsed, size=len(body))
        if modified:  # a hook may have changed the stream flag
            record.stream = _streams(ex.op, target, parsed)
        translation = ex.translation
        if translation is not None:
            translation.caller_body = body
            if modified:
                translation.reread(parsed, record.stream)
                translation.caller_body = orjson.dumps(parsed)
            ex.routes = translation.write_bodies()
            return
        ex.chunk_filter = fmt.prepare_stream(parsed) if record.stream else None
        ex.parsed = parsed
        rewritten = in_body or ex.chunk_filter is not None or modified
        if ex.upload is not None:  # sent from the upload; capture keeps the form's summary
            ex.out_body = body
        else:
            ex.out_body = orjson.dumps(parsed) if rewritten else body
        ex.path, ex.query = scope["path"], scope.get("query_string", b"")

    def _route(
        self, ex: Exchange, parsed: dict[str, Any], identity: Identity, access: Access
    ) -> bool:
        """classify (stream, session, model, kind) → route: `ex.routes` and `ex.route`,
        through providers that translate when none speaks the caller's API. True when the
        routed model's own name is written into the body (the caller named it qualified)."""
        record, fmt, target = ex.record, ex.op.format, ex.target
        record.stream = _streams(ex.op, target, parsed)
        record.session_id = session_id(ex.headers, parsed, identity.login_name, fmt.first_turn)
        model = target.model if target is not None else fmt.model_of(parsed)
        if not model:
            raise GatewayError(
                "invalid_request", "request body has no 'model' string", param="model"
            )
        record.model = recorded_name(model)  # until routed: as the caller named it, made safe
        record.kind = ex.op.kind_of(model)
        session = record.session_id or record.request_id
        try:
            routes = self.runtime.snapshot.routes.granted(
                model, fmt.flag, fmt.title, access, session
            )
        except GatewayError as exc:  # no provider speaks the caller's API: one may translate
            routes = self._translated(ex, exc, parsed, model, session)
        ex.routes = routes
        route = ex.route = routes[0]
        record.model, record.provider = route.model, route.provider.id
        in_body = route.qualified and target is None and ex.translation is None
        if in_body:
            parsed["model"] = route.model
            if ex.upload is not None:
                self._rename_in_form(ex, model, route.model)
        return in_body

    def _translated(
        self,
        ex: Exchange,
        refusal: GatewayError,
        parsed: dict[str, Any],
        model: str,
        session: str,
    ) -> list[Route]:
        """The routes through providers that translate, when the model has no provider of
        the caller's API (`refusal`, raised again when there is none either). Only calls
        that generate an answer translate (not `/v1/messages/count_tokens`)."""
        fmt, access = ex.op.format, ex.access
        assert access is not None
        if refusal.kind != "not_found" or not ex.op.billable or not translatable(fmt):
            raise refusal
        flags = tuple(PROVIDER_FLAGS)
        routes = self.runtime.snapshot.routes.translatable(model, flags, access, session)
        if not routes:
            raise refusal
        limit = self.runtime.settings.max_capture_body
        ex.translation = Translation.plan(
            fmt, parsed, model, ex.record.stream, routes, capture_limit=limit
        )
        return [route for route, _ in routes]

    @staticmethod
    def _rename_in_form(ex: Exchange, named: str, model: str) -> None:
        """Send the routed model in the upload's `model` field instead of the name the
        client used (`provider/model`)."""
        assert ex.upload is not None
        assert ex.form is not None
        span = ex.form.spans.get("model")
        if span is None or not ex.upload.replace(span, named.encode(), model.encode()):
            raise GatewayError(
                "invalid_request",
                "the form's 'model' field could not be rewritten; send the model's own name",
                param="model",
            )

    async def _upstream_request(self, ex: Exchange, route: Route, key: int) -> UpstreamRequest:
        """The request one attempt sends: the same body to every provider (translated: the
        body written for each provider's API, to that API's path), with its URL,
        credential (key `key`), headers and, for a cloud, its signature. The last one made
        is the answer's: `ex.route` and the record name its provider from then on."""
        access, target, record = ex.access, ex.target, ex.record
        assert access is not None
        ex.route = route
        record.model, record.provider = route.model, route.provider.id
        if ex.response_id is not None:  # a stored response's call: made for its one route
            assert ex.request is not None
            return ex.request
        translation, body = ex.translation, ex.out_body
        incoming = ex.headers
        if translation is not None:
            path, body = translation.upstream(route)
            incoming = translation.request_headers(incoming)
        upstream_headers = build_headers(
            route.provider,
            incoming,
            access.add_headers_for(route.fqn),
            route.provider.key_at(key) if route.provider.keys else None,
        )
        if ex.chunk_filter is not None or translation is not None:  # bytes are edited: they
            upstream_headers["accept-encoding"] = "identity"  # must come as plain text
        cloud = self.runtime.cloud.for_provider(route.provider)
        project = cloud.project if cloud is not None else None
        region = cloud.region if cloud is not None else None
        if translation is not None:  # Vertex's path: the provider's project and region
            path, query = fill_vertex(path, project, region), b""
        elif target is None:
            path, query = ex.path, ex.query
        else:
            path, query = target.upstream_path(route.model, project, region), target.query
        request = UpstreamRequest(
            upstream_url(route.provider, path, query),
            upstream_headers,
            body if ex.upload is None else ex.upload,
            record.method,
            name=f"provider {route.provider.id}",
        )
        if cloud is not None:  # last: a signature covers the final URL and body
            if ex.upload is not None:
                raise GatewayError(
                    "invalid_request",
                    f"provider {route.provider.id} is a cloud API that signs its requests;"
                    " uploads go to OpenAI-style providers only",
                )
            await cloud.authorize(request)
        record.request_headers = redact(upstream_headers)
        if translation is None:
            record.request_body = self._stored(body)
        else:  # both sides: the caller's body (hooks read it in the caller's API) and ours
            record.upstream_format = translation.current
            record.request_body = self._stored(translation.caller_body)
            record.upstream_request_body = self._stored(body)
        ex.request = request
        return request

    async def _prepare_stored(
        self, ex: Exchange, scope: Scope, body: bytes, identity: Identity, access: Access
    ) -> None:
        """route (to the creator's provider) → upstream request, for a call that names a
        stored response: only its creator, still granted its model, may reach it; anyone
        else gets the same 404 as for an id irisgate never saw. No quota, no hooks: nothing
        is generated, so nothing is charged."""
        assert ex.response_id is not None
        record, fmt = ex.record, ex.op.format
        origin = await self.runtime.responses.origin(ex.response_id)
        missing = GatewayError(
            "not_found", f"Response with id '{ex.response_id}' not found.", param="response_id"
        )
        if origin is None or origin.login_name != identity.login_name:
            raise missing
        fqn = f"{origin.provider}/{origin.model}"
        try:
            route = self.runtime.snapshot.routes.resolve(fqn, fmt.flag, fmt.title, access)
        except GatewayError:  # the model is no longer granted or served: as if unknown
            raise missing from None
        ex.route = route
        record.model, record.provider = route.model, route.provider.id
        record.stream = b"stream=true" in scope.get("query_string", b"")
        headers = build_headers(route.provider, ex.headers, access.add_headers_for(route.fqn))
        query = scope.get("query_string", b"")
        ex.request = UpstreamRequest(
            upstream_url(route.provider, scope["path"], query),
            headers,
            body,
            scope["method"],
            name=f"provider {route.provider.id}",
        )
        record.request_headers = redact(headers)
        record.request_body = self._stored(body)

    async def _prepare_object(
        self, ex: Exchange, scope: Scope, body: bytes, identity: Identity, access: Access
    ) -> None:
        """route (to the provider that holds the object, for its creator only) → upstream
        request, for a files or batches call; a list call is answered from irisgate's own
        table (`ex.listed`). See gateway/objects.py."""
        call, record = ex.call, ex.record
        assert call is not None
        record.counts_as_usage = False  # managing files is no LLM usage; a charge is (below)
        if call.listing:
            ex.listed = await self.objects.page(
                identity.login_name, call.kind, scope.get("query_string", b"")
            )
            return
        owner = OwnedObject(
            object_id="",
            kind=call.kind,
            provider="",
            login_name=identity.login_name,
            key_id=identity.key.id if identity.key is not None else "",
            request_id=record.request_id,
        )
        snapshot, index = self.runtime.snapshot, self.objects
        if call.action == "file_create":
            assert ex.form is not None
            route, owner = file_route(snapshot, access, owner, ex.form.fields)
            if owner.purpose == "batch":  # its lines name the batch's models: checked here
                assert ex.batch is not None
                ex.batch.close()
            else:
                ex.batch = None
        elif call.action == "batch_create":
            parsed = _parse_json(body, keys_in_body=False)
            route, owner = await batch_route(index, snapshot, access, owner, parsed)
        else:
            route, owner = await owned_route(index, snapshot, call, identity.login_name, access)
            if call.action == "file_content" and owner.charges:
                ex.results = BatchResults()
        ex.owned = owner
        ex.route, ex.routes = route, [route]
        record.model, record.provider = route.model, route.provider.id
        ex.out_body = body
        ex.path, ex.query = scope["path"], scope.get("query_string", b"")
        if ex.results is not None:  # a batch's results, charged: quotas apply as to a request
            record.counts_as_usage = True
            ex.chunk_filter = ex.results
            ex.admission = await self.runtime.quotas.admit(
                self.runtime.snapshot,
                access=access,
                identity=identity,
                route=route,
                format_basis=OPENAI_BATCHES.cost_basis,
                body={},
                body_size=0,
            )

    async def _after_object_call(self, ex: Exchange) -> None:
        """Record what a files or batches answer created, changed or deleted; charge a batch's
        results once (the first complete download of its output file)."""
        call, record = ex.call, ex.record
        assert call is not None
        if not 200 <= ex.result.status < 300:
            return
        if call.action == "file_delete":
            await self.objects.forget(call.object_id)
        results, owned = ex.results, ex.owned
        if results is None or owned is None or record.cancelled or ex.result.error:
            return
        if not await self.objects.mark_charged(owned.object_id):
            return  # charged already (another download, maybe on another instance)
        assert ex.route is not None
        record.usage, record.cost_nanodollars, record.cost_basis = charge(
            self.runtime.snapshot.pricer, ex.route, results, owned
        )
        ex.journaled = False  # the spool has the record without its charge: journal again

    async def _pre_hooks(
        self, ex: Exchange, scope: Scope, snapshot: Snapshot, parsed: dict[str, Any], *, size: int
    ) -> tuple[dict[str, Any], bool]:
        """Plan the request's hooks and run its pre-request chain: (body, modified). An
        upload has no JSON body to show or replace: only its post-response hooks run."""
        assert ex.route is not None
        fmt = ex.op.format
        ex.hooks = self.runtime.hooks.plan(snapshot, ex.access, ex.route.fqn)
        if ex.hooks is None:
            return parsed, False
        ex.url = _url(scope, ex.headers)
        guess = (
            ex.admission.guess
            if ex.admission is not None
            else self.runtime.quotas.estimate(
                snapshot, ex.route, fmt.cost_basis, parsed, size, units=_requested(fmt, parsed)
            )
        )
        ex.estimate = guess.amount
        if not ex.hooks.pre or ex.upload is not None:
            return parsed, False
        return await self.runtime.hooks.before(ex.hooks, self._hook_call(ex), parsed)

    def _hook_call(self, ex: Exchange) -> HookCall:
        assert ex.identity is not None
        assert ex.access is not None
        quotas = self.runtime.quotas.describe(ex.admission)
        return HookCall(
            ex.identity, ex.access, ex.record, ex.url, quotas, ex.estimate, ex.op.format
        )

    async def _relay(self, ex: Exchange, send: Any, receive: Any) -> None:
        """Attempts (failover.py) until one answers, then relay its answer, all while
        watching for the client to go away; a disconnect cancels upstream."""
        record, result = ex.record, ex.result
        assert ex.route is not None
        upstream_started = time.perf_counter()
        extra = [(b"x-irisgate-request-id", record.request_id.encode())]
        settings = self.runtime.settings
        if settings.budget_headers and ex.admission is not None:
            extra.extend(self.runtime.quotas.headers(ex.admission))
        attempts = Attempts(
            routes=ex.routes or [ex.route],
            build=partial(self._upstream_request, ex),
            client=self.runtime.upstream,
            health=self.runtime.health,
            version=record.config_version,
            session=record.session_id or record.request_id,
            attempts=1 if ex.call is not None else settings.failover_attempts,
            budget=settings.failover_budget,
        )

        def gone() -> None:
            record.cancelled = True

        try:
            await watched(
                receive,
                relay(
                    attempts.first_answer(),
                    send,
                    result,
                    FORWARDING,
                    extra_headers=extra,
                    chunk_filter=ex.chunk_filter,
                    request_started=ex.started,
                    before_end=lambda: self._seal(ex, upstream_started),
                    reframing=ex.translation,
                ),
                gone,
                lambda: record.cancelled,
            )
        except Unanswered as exc:
            assert attempts.last is not None  # an attempt was made to be unanswered
            raise refusal(exc, attempts.last) from exc.cause
        finally:
            tried = attempts.log  # kept when it says more than `provider` does
            if len(tried) > 1 or (tried and ex.route.provider.keys):
                record.attempts = attempts.entries()
            record.response_bytes = result.sent
            record.status = result.status or record.status
            record.error = result.error or record.error
            if result.upstream_done_at is not None:
                record.upstream_ms = (result.upstream_done_at - upstream_started) * 1000

    async def _refuse(self, ex: Exchange, send: Any, error: GatewayError) -> None:
        """Answer with irisgate's own error; like an answer, its record is journaled first."""
        record = ex.record
        record.status, record.error = error.status, error.message
        record.response_bytes = len(ex.op.format.error_body(error)[0])
        if not record.request_headers:  # refused before the upstream request was complete:
            record.request_headers = redact(ex.headers)  # recorded as the client sent it
            record.request_body = self._stored(ex.body)
        if record.login_name:
            record.duration_ms = (time.perf_counter() - ex.started) * 1000
            ex.journaled = self.runtime.journal(record)
        await _send_error(send, ex.op, error, record.request_id)

    def _seal(self, ex: Exchange, upstream_started: float) -> None:
        """The upstream's answer is complete and the client is about to get its end: take
        usage and cost from it and journal the record, so that from the moment the client
        has its answer no crash can lose the record (telemetry/spool.py)."""
        record, result = ex.record, ex.result
        record.status = result.status or record.status
        record.error = result.error or record.error
        record.response_bytes = result.sent
        record.duration_ms = (time.perf_counter() - ex.started) * 1000
        if result.first_byte_at is not None:
            record.ttfb_ms = (result.first_byte_at - ex.started) * 1000
        if result.upstream_done_at is not None:
            record.upstream_ms = (result.upstream_done_at - upstream_started) * 1000
        if ex.route is not None:
            ex.accounted = True
            try:
                self._account(ex, ex.route)
            except Exception:  # a bug here must not cost the client the end of its answer
                log.exception("accounting for an answer failed", request_id=record.request_id)
        if record.login_name:
            ex.journaled = self.runtime.journal(record)

    def _account(self, ex: Exchange, route: Route) -> None:
        """Capture, then usage + cost, from the tee of upstream bytes (the client already has
        them all). A stream that ended without the upstream's usage leaves `ex.pending`."""
        record, result, fmt = ex.record, ex.result, ex.op.format
        if ex.translation is not None:  # the tee holds the provider's answer, in its format
            fmt = ex.translation.upstream_format()
        if self.runtime.snapshot.config.database.save_raws:
            record.response_raw = result.tee.stored()
            record.response_raw_encoding = result.headers.get("content-encoding", "")
        answer = read_tee(fmt, result.status, result.headers, result.tee)
        record.response_body = answer.body
        if 200 <= result.status < 300 and isinstance(fmt, Slimmed):
            content_type = result.headers.get("content-type", "")
            slim = fmt.stored_body(answer.response, result.tee.size, content_type)
            record.response_body = answer.body if slim is None else slim
        if ex.translation is not None:  # the provider's answer, and what the caller got
            record.upstream_response_body = answer.body
            record.error = record.error or ex.translation.stream_error
            headers = ex.translation.client_headers(result.status)
            output = ex.translation.output
            record.response_body = read_tee(ex.op.format, result.status, headers, output).body
        record.response_headers = redact(result.headers)
        if ex.call is not None and 200 <= result.status < 300:
            self._note_created(ex, answer.response)
        if not ex.op.billable:
            return
        record.usage, record.tool_calls = answer.usage, answer.tool_calls
        ok = 200 <= result.status < 300
        if ok and fmt is OPENAI_RESPONSES and answer.response is not None:
            created = answer.response.get("id")
            if isinstance(created, str) and created:
                record.response_id = created
        if ok and record.stream and not (answer.input_reported and answer.output_reported):
            ex.pending = _estimate_of(fmt, route, ex.request, answer)
        elif ok and record.kind == "embedding" and record.usage.is_empty():
            # an embedding answer without a count (Gemini): the texts are counted instead
            ex.pending = _estimate_of(fmt, route, ex.request, answer._replace(input_reported=False))
        if ok and record.usage.is_empty() and isinstance(fmt, Counted):
            self._price_units(ex, route, fmt, answer.response or {})
        if ex.pending is None and not record.usage.is_empty():  # else priced once estimated
            self._price(record, route, fmt)

    def _note_created(self, ex: Exchange, response: dict[str, Any] | None) -> None:
        """The objects a files or batches answer created or changed, remembered before the
        client has the answer (written to the database after it: `_serve`)."""
        if ex.call is None or ex.owned is None:
            return
        if ex.batch is not None:  # a batch input file: the models its lines name
            ex.owned = replace(ex.owned, models=tuple(sorted(ex.batch.models)))
        ex.created = created_by_answer(ex.call, response, owner=ex.owned)
        self.objects.remember(ex.created)

    def _price_units(
        self, ex: Exchange, route: Route, fmt: Counted, response: dict[str, Any]
    ) -> None:
        """Price an answer without token usage per unit (images, seconds of audio); one
        that does not say how many is left unpriced."""
        units = fmt.units(ex.parsed or {}, response)
        if units is None:
            return
        record = ex.record
        record.unit, record.units = units.unit, units.count
        if units.count:
            record.cost_nanodollars, record.cost_basis = self.runtime.snapshot.pricer.unit_cost(
                route.provider, ex.op.format.cost_basis, route.model, units
            )

    def _stored(self, body: bytes) -> bytes:
        """A request body as capture keeps it: cut past `--max-capture-body`, with a marker."""
        limit = self.runtime.settings.max_capture_body
        return body if len(body) <= limit else body[:limit] + marker(len(body), limit)

    def _price(self, record: RequestRecord, route: Route, fmt: ApiFormat) -> None:
        pricer = self.runtime.snapshot.pricer
        record.cost_nanodollars, record.cost_basis = pricer.cost(
            route.provider, fmt.cost_basis, route.model, record.usage
        )


def _estimate_of(
    fmt: ApiFormat, route: Route, request: UpstreamRequest | None, answer: Answer
) -> UsageEstimate | None:
    """What to count for a stream that ended without (part of) its usage; None when the
    format's text is not known to irisgate."""
    if not isinstance(fmt, Estimable) or answer.response is None or request is None:
        return None
    response, request_body = answer.response, request.body
    if not isinstance(request_body, bytes):  # an upload: no text irisgate counts
        return None

    def prompt() -> Prompt:
        try:
            parsed = orjson.loads(request_body)
        except orjson.JSONDecodeError:  # irisgate sent it, so it parsed once; be safe anyway
            parsed = None
        return fmt.prompt_text(parsed if isinstance(parsed, dict) else {})

    return UsageEstimate(
        model=route.model,
        reported=answer.usage,
        prompt=None if answer.input_reported else prompt,
        answer=lambda: fmt.answer_text(response),
    )


def _requested(fmt: ApiFormat, body: dict[str, Any]) -> Units | None:
    """The units a request asks for, when its format may price per unit (images)."""
    return fmt.requested(body) if isinstance(fmt, Counted) else None


def _streams(op: Operation, target: PathTarget | None, body: dict[str, Any]) -> bool:
    """Whether the request asks for a stream: by its path (Gemini, Vertex, Bedrock methods)
    or its body (`"stream": true`)."""
    if target is not None:
        return target.stream
    return op.can_stream and op.format.wants_stream(body)


def _url(scope: Scope, headers: dict[str, str]) -> str:
    host = headers.get("host") or "localhost"
    return f"{scope.get('scheme', 'http')}://{host}{scope['path']}"


def _parse_json(body: bytes, *, keys_in_body: bool) -> dict[str, Any]:
    """The body as a JSON object; with `keys_in_body` (the model is read from it, not from
    the URL) its routing keys must each appear once."""
    try:
        parsed = nesting.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError("invalid_request", f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise GatewayError("invalid_request", "request body must be a JSON object")
    if keys_in_body:
        refuse_duplicate_keys(body)
    return parsed


async def _send_json(send: Any, body: bytes, request_id: str) -> None:
    """A 200 JSON answer irisgate made itself (a files or batches list)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-irisgate-request-id", request_id.encode()),
    ]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:
        log.info("client gone before the answer", request_id=request_id)


async def _send_error(send: Any, op: Operation, error: GatewayError, request_id: str) -> None:
    body, extra = op.format.error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-irisgate-request-id", request_id.encode()),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in {**error.headers, **extra}.items())
    try:
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:
        log.info("client gone before the error answer", request_id=request_id)


def _identity_error(exc: IdentityRefused) -> GatewayError:
    """401 for a key that is not valid (OpenAI's code `invalid_api_key`) and for a caller who
    brought no credential (mode oidc without a session, mode keys without a key), else 403."""
    if isinstance(exc, KeyRefused):
        return GatewayError("authentication", str(exc), code="invalid_api_key")
    if isinstance(exc, SignInRequired):
        return GatewayError("authentication", str(exc))
    return GatewayError("permission", f"access denied: {exc}")
