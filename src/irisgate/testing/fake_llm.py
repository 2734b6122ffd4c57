"""`FakeLLM`: one local HTTP server that answers like OpenAI and Anthropic, byte for byte.

Tests (irisgate's and its users') point an upstream at it instead of a real vendor. It runs an
aiohttp application, in a background thread with its own event loop (`start`/`stop`, or as a
context manager) or in the caller's loop (`serve`), or as a process::

    python -m irisgate.testing.fake_llm --port 9100

Endpoints
    ``POST /v1/chat/completions`` and ``/chat/completions`` (OpenAI Chat Completions),
    ``POST /v1/responses`` and ``/responses`` (OpenAI Responses), ``POST /v1/messages`` and
    ``POST /v1/messages/count_tokens`` (Anthropic), the APIs beyond chat (embeddings,
    moderations, images, Gemini embedContent, Bedrock embedding models: `fake_media`),
    ``GET /v1/models`` and ``/models`` (OpenAI
    list shape; Anthropic's when the request carries ``anthropic-version``),
    ``GET``/``DELETE /v1/responses/{id}``, ``GET …/input_items`` and ``POST …/cancel`` (the
    responses created with ``store`` not false; see `fake_openai`); OpenAI's audio
    (``/v1/audio/…``), files (``/v1/files…``) and batches (``/v1/batches…``) through
    ``objects`` (`fake_openai_objects`). Anything else is a
    404 in the vendor's envelope. Wire details: `fake_openai`, `fake_anthropic`; the reply and
    token-count rules: `fake_reply`.

Knobs
    Plain attributes, read when a request arrives; tests set them from their own thread.
    `reset()` restores every default and clears what was recorded.

Tool calls and thinking
    With ``tools`` in the request and a final *user* message containing ``call tool``, the
    answer is a call of the first function tool (arguments from its schema, or
    `tool_arguments`); a final tool-result message gets a text answer again, unless
    `tool_every_turn` is set (then every request offering a tool gets a call of it).
    Responses API calls get a `function_call` output item by the same rule (a final
    `function_call_output` item gets text); so do Gemini (``functionDeclarations``) and
    Bedrock Converse (``toolConfig``) requests. Anthropic requests with ``thinking.type``
    ``enabled``/``adaptive`` get a thinking block first; so do Responses requests asking for a
    ``reasoning.summary`` (a reasoning item), Gemini requests with
    ``thinkingConfig.includeThoughts`` (thought parts; a call carries a thought signature)
    and Converse requests with ``additionalModelRequestFields.thinking`` enabled (a
    ``reasoningContent`` block with its signature).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gzip as gzip_module
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from irisgate.config.cloudkeys import AwsKeys
from irisgate.testing import (
    fake_anthropic,
    fake_bedrock,
    fake_cloud,
    fake_google,
    fake_media,
    fake_openai,
)
from irisgate.testing.fake_openai_objects import FakeOpenAIObjects
from irisgate.testing.fake_reply import (
    Reply,
    arguments_for_schema,
    count_prompt_tokens,
    make_tool_call,
    new_id,
    split_words,
    text_pieces,
)
from irisgate.testing.fake_server import (
    WAIT_S,
    RecordedRequest,
    ServerThread,
    start_runner,
    wait_until,
)
from irisgate.testing.lifecycle import StartStop

Dialect = Literal["openai", "anthropic", "google", "bedrock"]
Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_POLL = 0.005  # seconds between checks of a gate or the hang knob


@dataclass(slots=True)
class _Stored:
    """A response the fake holds for retrieval: its object, input items, whether it was
    created with background=true and whether anyone has looked at it since."""

    response: dict[str, Any]
    items: list[dict[str, Any]]
    background: bool
    retrieved: bool = False


@dataclass(slots=True)
class _Failure:
    status: int
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)


DEFAULT_MODELS = ("gpt-5.5", "gpt-5.4-mini", "claude-sonnet-5", "claude-haiku-5-5")
DEFAULT_THINKING = "The user wants an answer. I will give a short one."


class FakeLLM(StartStop):
    """A wire-exact fake of OpenAI and Anthropic with test knobs and a request log.

    Knobs (set as attributes; defaults in brackets):

    - ``n_chunks`` [20]: text pieces (= content deltas = completion tokens) per answer.
    - ``reply_text`` [None]: the answer, cut into ``n_chunks`` pieces; None generates
      ``"tok0 tok1 …"``.
    - ``chunk_delay`` [0.0]: seconds between stream events.
    - ``first_byte_delay`` [0.0]: seconds before any response (headers included).
    - ``prompt_tokens`` [None]: forces the counted prompt size (else the word rule).
    - ``cached_tokens`` [0], ``reasoning_tokens`` [0], ``cache_write_5m_tokens`` [0],
      ``cache_write_1h_tokens`` [0]: reported usage details (see `fake_reply`).
    - ``thinking_text``: the thinking (Anthropic block, Responses summary, Gemini thought
      parts, Converse reasoning), streamed word by word.
    - ``tool_arguments`` [None]: arguments of tool calls (else derived from the schema).
    - ``tool_every_turn`` [False]: answer every request that offers a tool with a call of it,
      tool results included (a model that never stops calling tools).
    - ``hang`` [False]: accept requests and answer nothing while it stays True.
    - ``gzip`` [False]: gzip non-stream bodies for clients that accept it.
    - ``stream_gate`` [None]: a `threading.Event`; streams pause after their first event
      until it is set (``gated_streams`` counts the pauses).
    - ``gate_after_events`` [1]: how many events a gated stream sends before it pauses (more
      than one lets a client show part of the text while the rest waits on the gate).
    - ``drop_after_events`` [None]: close the connection after that many stream events.
    - ``api_key`` [None]: when set, other keys get the vendor's 401 (Bedrock: 403).
    - ``aws_keys`` [None]: when set, Bedrock requests must be SigV4-signed with these keys.
    - ``models``: ids listed by ``GET /v1/models``.
    - ``image_bytes`` [64]: bytes of each image the images endpoints make (`fake_media`).
    - ``coalesce`` [False]: without delay, gate or drop, send a whole stream in one write
      (same bytes, one syscall instead of one per event: for benchmarks).
    - ``obfuscation`` [False]: add the random size-hiding padding the vendors put in stream
      events (OpenAI ``"obfuscation"`` fields unless the request sets
      ``stream_options.include_obfuscation: false``; Anthropic spaces before ``}``). Off by
      default so streams are byte-for-byte predictable.
    - ``record`` [True]: keep every request in ``requests`` (the command line turns it off so
      a long benchmark does not grow memory).

    Observations: ``stored_responses`` (response id -> what the stored-response endpoints
    serve), ``requests`` (every `RecordedRequest`), ``responses`` (the body bytes of
    every answer, in order, exactly as written: still gzipped or SSE; kept while ``record``
    is on), ``cancelled_streams`` (streams the
    client left before the end), ``completed_streams``, ``dropped_streams``, ``gated_streams``.
    Stream counters change on the server's thread, possibly just after the client saw the last
    byte: assert them through `wait_for` (``fake.wait_for(lambda: fake.completed_streams == 1)``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Failure] = []
        self._server = ServerThread("FakeLLM")
        self._closing = False
        self.base_url = ""
        #: OpenAI's audio, files and batches endpoints, their knobs and state
        self.objects = FakeOpenAIObjects()
        self.reset()

    def reset(self) -> None:
        """Restore every knob's default and forget recorded requests, failures and counts."""
        self.n_chunks = 20
        self.reply_text: str | None = None
        self.chunk_delay = 0.0
        self.first_byte_delay = 0.0
        self.prompt_tokens: int | None = None
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.cache_write_5m_tokens = 0
        self.cache_write_1h_tokens = 0
        self.thinking_text = DEFAULT_THINKING
        self.tool_arguments: Mapping[str, Any] | None = None
        self.tool_every_turn = False
        self.hang = False
        self.gzip = False
        self.stream_gate: threading.Event | None = None
        self.gate_after_events = 1
        self.drop_after_events: int | None = None
        self.api_key: str | None = None
        self.aws_keys: AwsKeys | None = None
        self.models: list[str] = list(DEFAULT_MODELS)
        self.image_bytes = 64
        self.record = True
        self.coalesce = False
        self.obfuscation = False
        self.requests: list[RecordedRequest] = []
        self.responses: list[bytes] = []
        self.stored_responses: dict[str, _Stored] = {}
        self.cancelled_streams = 0
        self.completed_streams = 0
        self.dropped_streams = 0
        self.gated_streams = 0
        self.objects.reset()
        with self._lock:
            self._failures.clear()

    # -- test helpers ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        count: int = 1,
    ) -> None:
        """Answer the next `count` requests with `status` instead of a completion.

        `body` None sends the vendor's error envelope for that status (OpenAI's or Anthropic's,
        by the path called); a mapping is sent as JSON, bytes/str as they are. `headers` are
        added (e.g. ``{"Retry-After": "1"}``). Failures queue up in call order.
        """
        raw: bytes | None
        if body is None or isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = orjson.dumps(dict(body))
        with self._lock:
            for _ in range(count):
                self._failures.append(_Failure(status, raw, dict(headers or {})))

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (IndexError when there was none)."""
        return self.requests[-1]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        """Poll `predicate` until it holds or `timeout` seconds pass; returns its last value."""
        return wait_until(predicate, timeout)

    # -- lifecycle ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (routes only; no server started)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        route = app.router
        for path in ("/v1/chat/completions", "/chat/completions"):
            route.add_post(path, self._wrap("openai", self._chat))
        for path in ("/v1/responses", "/responses"):
            route.add_post(path, self._wrap("openai", self._responses))
        stored = "/v1/responses/{response_id}"
        route.add_get(stored, self._stored_response)
        route.add_delete(stored, self._stored_response)
        route.add_get(stored + "/{action:input_items}", self._stored_response)
        route.add_post(stored + "/{action:cancel}", self._stored_response)
        route.add_post("/v1/embeddings", self._wrap("openai", self._media(fake_media.embeddings)))
        route.add_post("/v1/moderations", self._wrap("openai", self._media(fake_media.moderations)))
        generations = self._media(fake_media.images_generations)
        route.add_post("/v1/images/generations", self._wrap("openai", generations))
        route.add_post("/v1/images/edits", functools.partial(fake_media.images_edits, self))
        route.add_post("/v1/messages", self._wrap("anthropic", self._messages))
        route.add_post("/v1/messages/count_tokens", self._wrap("anthropic", self._count_tokens))
        for path in ("/v1/models", "/models"):
            route.add_get(path, self._models)
        for path in fake_cloud.GOOGLE_PATHS:
            route.add_post(path, self._wrap("google", functools.partial(fake_cloud.google, self)))
        bedrock = functools.partial(fake_cloud.bedrock, self)
        route.add_post(fake_cloud.BEDROCK_PATH, self._wrap("bedrock", bedrock))
        self.objects.add_routes(route)
        route.add_route("*", "/{tail:.*}", self._unknown)
        return app

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        """Serve in the running event loop until cancelled; `on_ready` gets the base URL."""
        self._closing = False
        runner = await start_runner(self.make_app(), lambda r: web.TCPSite(r, host, port))
        self.base_url = f"http://{host}:{runner.addresses[0][1]}"
        if on_ready is not None:
            on_ready(self.base_url)
        try:
            await asyncio.Event().wait()
        finally:
            self._closing = True
            await runner.cleanup()

    def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Serve from a background thread; returns the base URL (``http://127.0.0.1:PORT``,
        ``https://`` with `ssl_context`).

        Port 0 picks a free port. Raises RuntimeError when the server cannot start.
        """
        if self._server.running:
            return self.base_url
        self._closing = False
        address = self._server.start(
            self.make_app(), lambda r: web.TCPSite(r, host, port, ssl_context=ssl_context)
        )
        scheme = "https" if ssl_context is not None else "http"
        self.base_url = f"{scheme}://{host}:{address[1]}"
        return self.base_url

    def stop(self) -> None:
        """Stop the background server (in-flight requests are cut) and join its thread."""
        self._closing = True
        self._server.stop()

    # -- request pipeline -----------------------------------------------------------------

    def _wrap(
        self, dialect: Dialect, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                parsed: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = None
            self._record(request, raw, parsed)
            early = await self._before_answer(request, dialect, raw)
            if early is not None:
                return early
            if not isinstance(parsed, dict):
                return self._invalid_json(request, dialect)
            return await handler(request, parsed)

        return serve

    def _media(self, handler: Callable[..., Awaitable[web.Response]]) -> Handler:
        return functools.partial(handler, self)

    def _record(self, request: web.Request, raw: bytes, parsed: Any) -> None:
        if not self.record:
            return
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=request.headers,
                body=raw,
                json=parsed,
            )
        )

    async def _before_answer(
        self, request: web.Request, dialect: Dialect, raw: bytes = b""
    ) -> web.StreamResponse | None:
        """Apply hang, delay, queued failures and the key check; a response ends the request."""
        while self.hang:  # noqa: ASYNC110 - a plain attribute tests flip from their own thread
            await asyncio.sleep(_POLL)
        if self.first_byte_delay:
            await asyncio.sleep(self.first_byte_delay)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            body = failure.body
            if body is None:
                body = self._error(dialect, failure.status)
            hdrs = {
                "Content-Type": "application/json",
                **self._vendor_headers(dialect),
                **(fake_bedrock.error(failure.status)[1] if dialect == "bedrock" else {}),
                **failure.headers,
            }
            return web.Response(status=failure.status, body=body, headers=hdrs)
        if dialect == "bedrock":
            problem = fake_cloud.bedrock_auth_problem(self, request, raw)
            if problem is not None:
                body, hdrs = fake_bedrock.error(403, problem)
                hdrs["x-amzn-ErrorType"] = hdrs["x-amzn-ErrorType"].replace(
                    "AccessDeniedException", "InvalidSignatureException"
                )
                return web.Response(status=403, body=body, headers=hdrs)
            return None
        if self.api_key is not None and not self._key_ok(request, dialect):
            return self._json(request, self._error(dialect, 401), status=401, dialect=dialect)
        return None

    def _key_ok(self, request: web.Request, dialect: Dialect) -> bool:
        if dialect == "google":
            return fake_cloud.google_key_ok(self, request)
        bearer = request.headers.get("Authorization") == f"Bearer {self.api_key}"
        if dialect == "anthropic":
            return bearer or request.headers.get("x-api-key") == self.api_key
        return bearer

    def _error(self, dialect: Dialect, status: int, message: str | None = None) -> bytes:
        if dialect == "google":
            return fake_google.error_body(status, message)
        if dialect == "bedrock":
            return fake_bedrock.error(status, message)[0]
        if dialect == "anthropic":
            return fake_anthropic.error_body(status, self._request_id(dialect), message)
        return fake_openai.error_body(status, message)

    def _request_id(self, dialect: Dialect) -> str:
        if dialect == "anthropic":
            return new_id("req_011", 21)
        if dialect == "bedrock":
            return (
                f"{new_id('', 8)}-{new_id('', 4)}-{new_id('', 4)}-{new_id('', 4)}-{new_id('', 12)}"
            )
        return new_id("req_", 32)

    def _invalid_json(self, request: web.Request, dialect: Dialect) -> web.Response:
        if dialect == "anthropic":
            body = self._error(
                dialect, 400, "There was an issue with your request body: invalid JSON"
            )
        else:
            body = fake_openai.error_body(400, fake_openai.INVALID_JSON_MESSAGE)
        return self._json(request, body, status=400, dialect=dialect)

    def _json(
        self,
        request: web.Request,
        payload: bytes,
        *,
        status: int = 200,
        dialect: Dialect = "openai",
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        hdrs = {"Content-Type": "application/json", **self._vendor_headers(dialect)}
        if headers:
            hdrs.update(headers)
        if dialect == "bedrock" and status >= 400:
            hdrs.update(fake_bedrock.error(status)[1])
        if self.gzip and "gzip" in request.headers.get("Accept-Encoding", ""):
            payload = gzip_module.compress(payload, compresslevel=1, mtime=0)
            hdrs["Content-Encoding"] = "gzip"
        if self.record:
            self.responses.append(payload)
        return web.Response(status=status, body=payload, headers=hdrs)

    def _vendor_headers(self, dialect: Dialect) -> dict[str, str]:
        rid = self._request_id(dialect)
        if dialect == "anthropic":
            return fake_anthropic.headers(rid)
        if dialect == "google":
            return {"Vary": "Origin, X-Origin, Referer", "Server": "scaffolding on HTTPServer2"}
        if dialect == "bedrock":
            return {"x-amzn-RequestId": rid}
        return fake_openai.headers(rid)

    async def _stream(
        self,
        request: web.Request,
        events: Iterable[bytes],
        dialect: Dialect,
        *,
        content_type: str | None = None,
    ) -> web.StreamResponse:
        kind = {"Content-Type": content_type} if content_type else _SSE_HEADERS
        if dialect == "google" and content_type is None:
            kind = fake_google.SSE_HEADERS
        response = web.StreamResponse(headers={**kind, **self._vendor_headers(dialect)})
        await response.prepare(request)
        delay, gate, drop_after = self.chunk_delay, self.stream_gate, self.drop_after_events
        gate_at = max(self.gate_after_events, 1) - 1
        if self.coalesce and not delay and gate is None and drop_after is None:
            events = (b"".join(events),)  # same bytes, one write: a cheap benchmark upstream
        sent = bytearray()
        slot = len(self.responses)
        if self.record:
            self.responses.append(b"")  # grows as events are written
        try:
            for i, event in enumerate(events):
                if drop_after is not None and i >= drop_after:
                    self.dropped_streams += 1
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if i and delay:
                    await asyncio.sleep(delay)
                await response.write(event)
                if self.record and slot < len(self.responses):
                    sent += event
                    self.responses[slot] = bytes(sent)
                if i == gate_at and gate is not None:
                    await self._wait_gate(request, gate)
            await response.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError too
            self.cancelled_streams += 1
            return response
        except asyncio.CancelledError:
            if not self._closing:
                self.cancelled_streams += 1
            raise
        self.completed_streams += 1
        return response

    async def _wait_gate(self, request: web.Request, gate: threading.Event) -> None:
        self.gated_streams += 1
        while not gate.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("client disconnected while the stream was gated")
            await asyncio.sleep(_POLL)

    def _plan(
        self,
        body: Mapping[str, Any],
        tool: tuple[str, Any] | None,
        tool_id_prefix: str,
        *,
        thinking: bool = False,
        prompt_tokens: int | None = None,
    ) -> Reply:
        model = body.get("model")
        call = None
        pieces: tuple[str, ...] = ()
        if tool is not None:
            name, schema = tool
            args = self.tool_arguments
            if args is None:
                args = arguments_for_schema(schema)
            call = make_tool_call(tool_id_prefix, name, args, self.n_chunks)
        else:
            pieces = text_pieces(self.reply_text, self.n_chunks)
        prompt = self.prompt_tokens if self.prompt_tokens is not None else prompt_tokens
        return Reply(
            model=model if isinstance(model, str) else "unknown",
            created=int(time.time()),
            pieces=pieces,
            tool_call=call,
            thinking_pieces=split_words(self.thinking_text) if thinking else (),
            prompt_tokens=prompt if prompt is not None else count_prompt_tokens(body),
            cached_tokens=self.cached_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )

    # -- endpoints ------------------------------------------------------------------------

    async def _chat(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        problem = fake_openai.check_chat(body)
        if problem is not None:
            return self._json(request, problem, status=400)
        tool = fake_openai.chat_tool(body, always=self.tool_every_turn)
        reply = self._plan(body, tool, "call_")
        completion_id = new_id("chatcmpl-", 29)
        if body.get("stream"):
            with_usage = fake_openai.include_usage(body)
            obfuscate = self.obfuscation and fake_openai.obfuscation_wanted(body)
            events = fake_openai.chat_chunks(reply, completion_id, with_usage, obfuscate=obfuscate)
            return await self._stream(request, events, "openai")
        return self._json(request, fake_openai.chat_completion(reply, completion_id))

    async def _responses(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        problem = fake_openai.check_responses(body)
        if problem is not None:
            return self._json(request, problem, status=400)
        tool = fake_openai.responses_tool(body, always=self.tool_every_turn)
        thinking = fake_openai.responses_thinking(body)
        reply = self._plan(body, tool, "call_", thinking=thinking)
        item_prefix = "msg_" if tool is None else "fc_"
        response_id, item_id = new_id("resp_", 48), new_id(item_prefix, 48)
        done = fake_openai.response_object(reply, response_id, item_id, body)
        background = body.get("background") is True
        if body.get("store", True) is not False:
            self.stored_responses[response_id] = _Stored(
                done, fake_openai.input_items(body), background
            )
        if body.get("stream"):
            obfuscate = self.obfuscation and fake_openai.obfuscation_wanted(body)
            events = fake_openai.response_events(
                reply, response_id, item_id, body, obfuscate=obfuscate
            )
            return await self._stream(request, events, "openai")
        if background:  # the work goes on "in the background": queued for now
            queued = {**done, "status": "queued", "output": [], "usage": None}
            queued["completed_at"] = None
            return self._json(request, orjson.dumps(queued, option=orjson.OPT_INDENT_2))
        return self._json(request, fake_openai.response_body(reply, response_id, item_id, body))

    async def _stored_response(self, request: web.Request) -> web.StreamResponse:
        """GET / DELETE /v1/responses/{id}, GET …/input_items, POST …/cancel."""
        self._record(request, await request.read(), None)
        early = await self._before_answer(request, "openai")
        if early is not None:
            return early
        response_id = request.match_info["response_id"]
        stored = self.stored_responses.get(response_id)
        if stored is None:
            body = fake_openai.response_not_found(response_id)
            return self._json(request, body, status=404)
        action = request.match_info.get("action", "")
        if request.method == "DELETE":
            del self.stored_responses[response_id]
            return self._json(request, fake_openai.response_deleted(response_id))
        if action == "input_items":
            order = request.query.get("order", "desc")
            return self._json(request, fake_openai.input_items_list(stored.items, order))
        if action == "cancel":
            if not stored.background:
                return self._json(request, fake_openai.cancel_refused(), status=400)
            if stored.response["status"] == "completed" and not stored.retrieved:
                cancelled = {**stored.response, "status": "cancelled", "usage": None}
                stored.response = {**cancelled, "output": [], "completed_at": None}
            stored.retrieved = True
        else:
            stored.retrieved = True  # a background response has finished by now
        return self._json(request, orjson.dumps(stored.response, option=orjson.OPT_INDENT_2))

    async def _messages(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        problem = fake_anthropic.check_message(body)
        if problem is not None:
            return self._json(
                request, self._error("anthropic", 400, problem), status=400, dialect="anthropic"
            )
        thinking = fake_anthropic.thinking_enabled(body)
        tool = fake_anthropic.message_tool(body, always=self.tool_every_turn)
        reply = self._plan(body, tool, "toolu_01", thinking=thinking)
        message_id = new_id("msg_01", 22)
        if body.get("stream"):
            events = fake_anthropic.message_events(reply, message_id, pad=self.obfuscation)
            return await self._stream(request, events, "anthropic")
        return self._json(request, fake_anthropic.message(reply, message_id), dialect="anthropic")

    async def _count_tokens(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        problem = fake_anthropic.check_message(body, count_only=True)
        if problem is not None:
            return self._json(
                request, self._error("anthropic", 400, problem), status=400, dialect="anthropic"
            )
        tokens = self.prompt_tokens if self.prompt_tokens is not None else count_prompt_tokens(body)
        return self._json(request, fake_anthropic.count_tokens(tokens), dialect="anthropic")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self._record(request, b"", None)
        dialect: Dialect = "anthropic" if "anthropic-version" in request.headers else "openai"
        early = await self._before_answer(request, dialect)
        if early is not None:
            return early
        if dialect == "anthropic":
            return self._json(request, fake_anthropic.models_list(self.models), dialect=dialect)
        return self._json(request, fake_openai.models_list(self.models, 1700000000))

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self._record(request, raw, None)
        if request.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
            body = self._error("anthropic", 404, "Not Found")
            return self._json(request, body, status=404, dialect="anthropic")
        message = f"Invalid URL ({request.method} {request.path})"
        return self._json(request, fake_openai.error_body(404, message), status=404)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m irisgate.testing.fake_llm",
        description="Serve the wire-exact OpenAI/Anthropic fake on HOST:PORT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--n-chunks", type=int, default=20, help="content deltas per answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--reply-text", default=None, help="fixed answer text")
    parser.add_argument(
        "--coalesce", action="store_true", help="write each stream in one piece (cheaper)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: serve until interrupted; prints the base URL once listening."""
    args = _parse_args(argv)
    fake = FakeLLM()
    fake.n_chunks = args.n_chunks
    fake.chunk_delay = args.chunk_delay
    fake.reply_text = args.reply_text
    fake.record = False
    fake.coalesce = args.coalesce

    def announce(url: str) -> None:
        sys.stdout.write(f"{url}\n")
        sys.stdout.flush()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        runner.run(fake.serve(args.host, args.port, on_ready=announce))


if __name__ == "__main__":
    main()
