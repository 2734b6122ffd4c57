"""The connector machinery of one process, created at start and closed at stop."""

from __future__ import annotations

import httpx2

from irisgate.connectors.aggregate import Aggregator, McpEndpoint
from irisgate.connectors.credentials import Credentials
from irisgate.connectors.oauth import OAuthClient
from irisgate.connectors.proxy import HttpConnectorProxy
from irisgate.connectors.safety import UrlGuard
from irisgate.connectors.secretbox import SecretBox, load_key
from irisgate.connectors.tokens import TokenStore
from irisgate.connectors.upstream import McpUpstreams
from irisgate.runtime import Runtime


class ConnectorService:
    """Owns the URL guard, the OAuth client, the token store and the two endpoints."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.guard = UrlGuard(allow_local=settings.allow_local_connectors)
        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(settings.upstream_connect_timeout, read=30.0),
            follow_redirects=False,
            trust_env=False,
        )
        self._box: SecretBox | None = None
        self._tokens: TokenStore | None = None
        self._oauth: OAuthClient | None = None
        self._credentials: Credentials | None = None
        self._aggregator: Aggregator | None = None

    @property
    def tokens(self) -> TokenStore:
        assert self._tokens is not None, "connectors not started"
        return self._tokens

    @property
    def oauth(self) -> OAuthClient:
        assert self._oauth is not None, "connectors not started"
        return self._oauth

    @property
    def aggregator(self) -> Aggregator:
        """The `/v1/mcp` tool listing and calls, also used by the chat app's tools."""
        assert self._aggregator is not None, "connectors not built"
        return self._aggregator

    def build(self) -> tuple[McpEndpoint, HttpConnectorProxy]:
        """Create the endpoints (before start: the MCP manager runs in the app's lifespan)."""
        runtime = self.runtime
        self._box = SecretBox(load_key(runtime.settings))
        self._oauth = OAuthClient(self._box, self.guard, self._http)
        self._tokens = TokenStore(lambda: runtime.db, self._box)
        self._credentials = Credentials(self._oauth, self._tokens)
        upstreams = McpUpstreams(self.guard, timeout=runtime.settings.upstream_connect_timeout * 3)
        self._aggregator = Aggregator(runtime, self._credentials, upstreams)
        return (
            McpEndpoint(runtime, self._aggregator),
            HttpConnectorProxy(runtime, self._credentials, self.guard),
        )

    async def start(self) -> None:
        await self.tokens.load()

    async def stop(self) -> None:
        await self._http.aclose()
