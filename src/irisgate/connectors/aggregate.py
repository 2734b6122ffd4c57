"""`/v1/mcp`: one MCP server (Streamable HTTP) over every MCP connector a caller may use.

irisgate is an MCP server to its clients and an MCP client to the connectors' servers
(`upstream`). Names are prefixed with the connector id so they cannot collide: tools become
`<id>_<tool>`, resources `<id>-<uri>`, templates `<id>-<uriTemplate>`; the prefix is stripped
before a request goes upstream. Connector ids hold only letters and digits, so the first `_`
or `-` always ends the prefix.

Grants (`connectors` globs on `<id>/<tool>`) decide what `tools/list` shows and are checked
again on every `tools/call`; resources are visible to callers granted anything of that
connector. Upstream listings are kept for 5 seconds per connector and credential (Aperture
polls its upstreams every 5 s); an upstream that fails to answer is left out of the listing
until it answers again.

The chat app lists and calls tools through the same code (`tools_for`, `call_for`), so its
tool calls meet the same grant checks and are recorded the same way.

The transport runs stateless: every POST is answered on its own, with the identity of that
request's TCP peer resolved exactly as for the LLM paths (`McpEndpoint`), so no MCP session
can carry one caller's rights into another's request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import orjson
import structlog
from mcp import Client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError

from irisgate.access.grants import Access
from irisgate.config.model import Connector
from irisgate.connectors import ACCESS_DENIED
from irisgate.connectors.credentials import Credential, Credentials, CredentialUnavailable
from irisgate.connectors.recording import CallTimer, connector_record
from irisgate.connectors.safety import UnsafeURL
from irisgate.connectors.upstream import McpUpstreams, ToolError, UpstreamError
from irisgate.identity import Identity, IdentityRefused, SignInRequired
from irisgate.runtime import Runtime
from irisgate.snapshot import Snapshot
from irisgate.store.tables import MCP_FORMAT
from irisgate.wire import nesting
from irisgate.wire.bodylimit import BodyTooLarge, ClientGone, read_body, replay
from irisgate.wire.upstream import redact

log = structlog.get_logger("irisgate.connectors")
LISTING_SECONDS = 5.0
_SCOPE_KEY = "irisgate.mcp_caller"
Ctx = ServerRequestContext[Any]


@dataclass(frozen=True, slots=True)
class McpCaller:
    identity: Identity
    access: Access
    snapshot: Snapshot


def _caller(ctx: Ctx) -> McpCaller:
    request = ctx.request
    caller = request.scope.get(_SCOPE_KEY) if request is not None else None
    if not isinstance(caller, McpCaller):
        raise MCPError(ACCESS_DENIED, "no caller identity on this request")
    return caller


def _split(name: str, sep: str) -> tuple[str, str]:
    connector_id, found, rest = name.partition(sep)
    if not found or not connector_id or not rest:
        raise MCPError(types.INVALID_PARAMS, f"{name!r} is not a connector-prefixed name")
    return connector_id, rest


def _fingerprint(connector: Connector, credential: Credential) -> str:
    raw = orjson.dumps([connector.url, sorted(credential.headers.items()), credential.query])
    return hashlib.sha256(raw).hexdigest()


class Aggregator:
    """The MCP request handlers; one per process."""

    def __init__(self, runtime: Runtime, credentials: Credentials, upstreams: McpUpstreams):
        self._runtime = runtime
        self._credentials = credentials
        self._upstreams = upstreams
        self._listings: dict[tuple[str, str, str], tuple[float, list[Any]]] = {}

    def server(self) -> Server[Any]:
        return Server(
            "irisgate",
            instructions="Tools, resources and templates of the connectors you are granted,"
            " named <connector>_<tool> and <connector>-<uri>.",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
        )

    # -- listing --------------------------------------------------------------------------

    async def list_tools(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await self.tools_for(_caller(ctx)))

    async def tools_for(self, caller: McpCaller) -> list[types.Tool]:
        """The tools `caller` is granted, prefixed with their connector's id (the listing of
        `tools/list`, and of the chat app's Tools menu)."""

        async def fetch(client: Client) -> list[Any]:
            return list((await client.list_tools()).tools)

        tools: list[types.Tool] = []
        for connector, listed in await self._gather(caller, "tools", fetch):
            tools.extend(
                tool.model_copy(update={"name": f"{connector.id}_{tool.name}"})
                for tool in listed
                if caller.access.may_use_connector_item(connector.id, tool.name)
            )
        return tools

    async def list_resources(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        async def fetch(client: Client) -> list[Any]:
            return list((await client.list_resources()).resources)

        found = await self._gather(_caller(ctx), "resources", fetch)
        return types.ListResourcesResult(
            resources=[
                r.model_copy(update={"uri": f"{c.id}-{r.uri}"}) for c, rs in found for r in rs
            ]
        )

    async def list_resource_templates(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        async def fetch(client: Client) -> list[Any]:
            return list((await client.list_resource_templates()).resource_templates)

        found = await self._gather(_caller(ctx), "templates", fetch)
        return types.ListResourceTemplatesResult(
            resource_templates=[
                t.model_copy(update={"uri_template": f"{c.id}-{t.uri_template}"})
                for c, ts in found
                for t in ts
            ]
        )

    async def _gather(
        self, caller: McpCaller, kind: str, fetch: Callable[[Client], Awaitable[list[Any]]]
    ) -> list[tuple[Connector, list[Any]]]:
        connectors = [
            c
            for c in caller.snapshot.config.connectors.values()
            if c.protocol == "mcp" and caller.access.may_use_connector(c.id)
        ]
        results = await asyncio.gather(
            *(self._listing(c, caller.identity.login_name, kind, fetch) for c in connectors)
        )
        return [(c, items) for c, items in zip(connectors, results, strict=True) if items]

    async def _listing(
        self,
        connector: Connector,
        login: str,
        kind: str,
        fetch: Callable[[Client], Awaitable[list[Any]]],
    ) -> list[Any]:
        try:
            credential = await self._credentials.for_call(connector, login)
        except CredentialUnavailable:
            return []  # not connected yet, or misconfigured: /api/connectors says which
        key = (connector.id, _fingerprint(connector, credential), kind)
        cached = self._listings.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            items = await self._upstreams.run(connector, credential, fetch)
        except (UpstreamError, UnsafeURL) as exc:
            self._listings.pop(key, None)
            log.warning("connector left out of the listing", connector=connector.id, error=str(exc))
            return []
        now = time.monotonic()
        if len(self._listings) >= 1024:  # per-user tokens change: forget what has expired
            self._listings = {k: v for k, v in self._listings.items() if v[0] > now}
        self._listings[key] = (now + LISTING_SECONDS, items)
        return items

    # -- calls ----------------------------------------------------------------------------

    def _granted(self, caller: McpCaller, connector_id: str, item: str | None) -> Connector:
        connector = caller.snapshot.config.connectors.get(connector_id)
        allowed = (
            caller.access.may_use_connector_item(connector_id, item)
            if item is not None
            else caller.access.may_use_connector(connector_id)
        )
        if connector is None or connector.protocol != "mcp" or not allowed:
            what = f"{connector_id}_{item}" if item is not None else connector_id
            raise MCPError(ACCESS_DENIED, f"{what} is not a connector tool you are granted")
        return connector

    async def call_tool(
        self, ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        request = ctx.request
        headers = redact(dict(request.headers)) if request is not None else {}
        return await self.call_for(
            _caller(ctx), params.name, params.arguments, headers=headers, path="/v1/mcp"
        )

    async def call_for(
        self,
        caller: McpCaller,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        headers: dict[str, str],
        path: str,
    ) -> types.CallToolResult:
        """Call tool `name` (`<connector>_<tool>`) for `caller`: the grant check, the
        caller's credential, the upstream call and one record (`path` says where the call
        came in: `/v1/mcp` or the chat app). MCPError when refused or failed."""
        timer = CallTimer()
        connector_id, tool = _split(name, "_")
        request_body = orjson.dumps({"name": name, "arguments": arguments or {}})
        status, error, response_body = 200, "", b""
        try:
            connector = self._granted(caller, connector_id, tool)
            credential = await self._credential(connector, caller)

            async def call(client: Client) -> types.CallToolResult:
                return await client.call_tool(tool, arguments or {})

            try:
                result = await self._upstreams.run(connector, credential, call)
            except ToolError as exc:
                raise MCPError(exc.code, str(exc)) from None
            except (UpstreamError, UnsafeURL) as exc:
                raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
            response_body = result.model_dump_json(by_alias=True, exclude_none=True).encode()
            if result.is_error:
                error = "the tool reported an error"
            return result
        except MCPError as exc:
            status, error = status_of(exc), exc.error.message
            response_body = orjson.dumps({"error": error})
            raise
        except asyncio.CancelledError:
            status, error = 499, "the client went away before the tool answered"
            raise
        except Exception as exc:  # recorded, then the SDK answers with an internal error
            status, error = 500, f"{type(exc).__name__}: {exc}"[:300]
            raise
        finally:
            self._runtime.record(
                connector_record(
                    caller.identity,
                    timer,
                    api_format=MCP_FORMAT,
                    connector_id=connector_id,
                    method="POST",
                    path=path,
                    tool=tool,
                    status=status,
                    error=error,
                    request_body=request_body,
                    response_body=response_body,
                    request_headers=headers,
                    config_version=caller.snapshot.version,
                )
            )

    async def _credential(self, connector: Connector, caller: McpCaller) -> Credential:
        try:
            return await self._credentials.for_call(connector, caller.identity.login_name)
        except CredentialUnavailable as exc:
            raise MCPError(ACCESS_DENIED, str(exc)) from None

    async def read_resource(
        self, ctx: Ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        caller = _caller(ctx)
        connector_id, uri = _split(str(params.uri), "-")
        connector = self._granted(caller, connector_id, None)
        credential = await self._credential(connector, caller)

        async def read(client: Client) -> types.ReadResourceResult:
            return await client.read_resource(uri)

        try:
            result = await self._upstreams.run(connector, credential, read)
        except (UpstreamError, UnsafeURL) as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
        contents = [
            c.model_copy(update={"uri": f"{connector_id}-{c.uri}"}) for c in result.contents
        ]
        return result.model_copy(update={"contents": contents})


def status_of(exc: MCPError) -> int:
    """The HTTP status a refused or failed call is recorded (and answered) with."""
    return 403 if exc.error.code == ACCESS_DENIED else 502


class McpEndpoint:
    """The raw ASGI app at /v1/mcp: identify the caller, then hand over to the MCP SDK.

    Browser requests from other sites' pages are refused before this (`irisgate.crosssite`).
    """

    def __init__(self, runtime: Runtime, aggregator: Aggregator) -> None:
        self._runtime = runtime
        self.manager = StreamableHTTPSessionManager(
            app=aggregator.server(),
            stateless=True,
            json_response=False,
            # the tailnet name reaches irisgate in Host; identity, not Host, guards access
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        runtime = self._runtime
        try:
            identity = await runtime.resolver.resolve(scope.get("client"), scope["headers"])
        except SignInRequired as exc:
            await _refuse(send, str(exc), status=401)
            return
        except IdentityRefused as exc:
            await _refuse(send, f"access denied: {exc}", status=exc.status)  # 401: a bad key
            return
        snapshot = runtime.snapshot
        access = snapshot.grants.access_for(identity)
        if access.role is None:
            await _refuse(send, "access denied: no role granted")
            return
        limit = runtime.settings.max_connector_body
        try:  # read here, under the limit; the SDK would read any size
            body = await read_body(receive, scope["headers"], limit, "--max-connector-body")
        except BodyTooLarge as exc:
            await _refuse(send, str(exc), status=413, code=types.INVALID_REQUEST)
            return
        except ClientGone:
            return
        if _too_deep(body):
            message = f"Parse error: JSON nested deeper than {nesting.MAX_DEPTH} levels"
            await _refuse(send, message, status=400, code=types.PARSE_ERROR)
            return
        scope[_SCOPE_KEY] = McpCaller(identity, access, snapshot)
        await self.manager.handle_request(scope, replay(body, receive), send)


def _too_deep(body: bytes) -> bool:
    """Whether `body` is JSON nested deeper than irisgate's one limit (`irisgate.wire.nesting`),
    checked before the SDK parses it with its own, higher one. Other bad JSON is left to
    the SDK, which answers it as a parse error."""
    if not body:
        return False
    try:
        nesting.loads(body)
    except nesting.TooDeep:
        return True
    except orjson.JSONDecodeError:
        return False
    return False


async def _refuse(send: Any, message: str, *, status: int = 403, code: int = ACCESS_DENIED) -> None:
    """A JSON-RPC error before the SDK saw the request."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
