"""The connector machinery of one process, built on first use and closed at stop.

Nothing here is created at start-up: the first request that needs a connector (`/v1/mcp`,
`/v1/connectors/…`, the connector API and OAuth callback) imports the MCP SDK, httpx2,
authlib and cryptography, loads the stored tokens and starts the MCP session manager. A
gateway that serves only LLM traffic never carries them (about 30 MiB of resident memory).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from irisgate.connectors.safety import UrlGuard
from irisgate.runtime import Runtime

if TYPE_CHECKING:
    import aiohttp
    import httpx2

    from irisgate.connectors.aggregate import Aggregator, McpEndpoint
    from irisgate.connectors.oauth import OAuthClient
    from irisgate.connectors.proxy import HttpConnectorProxy
    from irisgate.connectors.registration import Registrar
    from irisgate.connectors.tokens import TokenStore
    from irisgate.connectors.upstream import McpUpstreams


@dataclass(slots=True)
class Connectors:
    """The connector machinery, once built (`ConnectorService.ready`)."""

    guard: UrlGuard
    http: httpx2.AsyncClient
    session: aiohttp.ClientSession | None
    oauth: OAuthClient
    tokens: TokenStore
    registrar: Registrar
    upstreams: McpUpstreams
    aggregator: Aggregator
    mcp: McpEndpoint
    proxy: HttpConnectorProxy
    manager: asyncio.Task[None]
    stop: asyncio.Event


class ConnectorService:
    """Owns the URL guard, the OAuth client, the token store and the two endpoints."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.guard = UrlGuard(allow_local=runtime.settings.allow_local_connectors)
        self._parts: Connectors | None = None
        self._building: asyncio.Lock | None = None
        self._closed = False

    async def ready(self) -> Connectors:
        """The machinery, built once (concurrent first callers wait for the same build)."""
        if self._parts is not None:
            return self._parts
        if self._building is None:
            self._building = asyncio.Lock()
        async with self._building:
            if self._closed:
                raise RuntimeError("connectors are shutting down")
            if self._parts is None:
                self._parts = await self._build()
            return self._parts

    async def mcp(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI app at /v1/mcp."""
        await (await self.ready()).mcp(scope, receive, send)

    async def proxy(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI app under /v1/connectors/."""
        await (await self.ready()).proxy(scope, receive, send)

    async def _build(self) -> Connectors:
        import httpx2

        from irisgate.connectors.aggregate import Aggregator, McpEndpoint
        from irisgate.connectors.credentials import Credentials
        from irisgate.connectors.netguard import GuardedResolver, guarded_transport
        from irisgate.connectors.oauth import OAuthClient
        from irisgate.connectors.proxy import HttpConnectorProxy
        from irisgate.connectors.registration import Registrar
        from irisgate.connectors.secretbox import SecretBox, load_key
        from irisgate.connectors.tokens import TokenStore
        from irisgate.connectors.upstream import McpUpstreams
        from irisgate.runtime import upstream_session

        runtime, settings = self.runtime, self.runtime.settings
        # Unless local connectors are allowed, every connection checks the addresses it
        # actually connects to (see netguard), not only what the URL resolved to earlier.
        local = settings.allow_local_connectors
        http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(settings.upstream_connect_timeout, read=30.0),
            follow_redirects=False,
            trust_env=False,
            transport=None if local else guarded_transport(),
        )
        session = None if local else upstream_session(settings, GuardedResolver())
        try:
            box = SecretBox(load_key(settings))
            oauth = OAuthClient(box, self.guard, http)
            tokens = TokenStore(lambda: runtime.db, box)
            await tokens.load()
        except BaseException:
            await _close(http, session)
            raise
        registrar = Registrar(lambda: runtime.db, box, self.guard, http)
        credentials = Credentials(oauth, tokens, registrar)
        upstreams = McpUpstreams(
            self.guard,
            timeout=settings.upstream_connect_timeout * 3,
            max_answer=settings.max_connector_answer,
        )
        aggregator = Aggregator(runtime, credentials, upstreams)
        mcp = McpEndpoint(runtime, aggregator)
        proxy = HttpConnectorProxy(runtime, credentials, self.guard, session)
        # The SDK's session manager runs for the life of the process; its task group must be
        # entered and left by one task, so it gets a task of its own.
        running, stop = asyncio.Event(), asyncio.Event()

        async def run_manager() -> None:
            async with mcp.manager.run():
                running.set()
                await stop.wait()

        manager = asyncio.get_running_loop().create_task(run_manager(), name="mcp-manager")
        started = asyncio.ensure_future(running.wait())
        await asyncio.wait({manager, started}, return_when=asyncio.FIRST_COMPLETED)
        if not running.is_set():
            started.cancel()
            await _close(http, session)
            manager.result()  # raises what stopped the manager
        return Connectors(
            self.guard,
            http,
            session,
            oauth,
            tokens,
            registrar,
            upstreams,
            aggregator,
            mcp,
            proxy,
            manager,
            stop,
        )

    async def stop(self) -> None:
        self._closed = True
        parts, self._parts = self._parts, None
        if parts is None:
            return
        parts.stop.set()
        try:
            await parts.manager
            await parts.upstreams.close()
        finally:
            await _close(parts.http, parts.session)


async def _close(http: httpx2.AsyncClient, session: aiohttp.ClientSession | None) -> None:
    try:
        await http.aclose()
    finally:
        if session is not None:
            await session.close()
