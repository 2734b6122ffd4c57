"""An MCP server that requires OAuth with dynamic client registration, for connector tests.

Everything OAuth here is the `mcp` SDK's own server side: protected resource metadata
(RFC 9728) with the 401's `WWW-Authenticate: Bearer resource_metadata=…`, authorization
server metadata (RFC 8414), the registration endpoint (RFC 7591), `/authorize` and `/token`
with PKCE S256 checked by the SDK, and bearer checks on `/mcp`. Only the provider behind them
is this file's: it keeps clients, codes and tokens in memory and consents at once (the
`/authorize` answer redirects straight back with a code, as a user clicking "Allow" would).

    with McpOAuthServer("notes") as server:
        ... connector url: server.url, auth type oauth2_dynamic_client_registration ...

Tools: `credential()` → the bearer token of the call; `echo(text)`. `registered` holds the
registration requests' metadata, `authorized` the `/authorize` parameters, `tokens_issued`
the grant of each token answer, so tests can see what irisgate sent.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import uvicorn
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    IdentityAssertionParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from irisgate.testing.lifecycle import StartStop
from irisgate.testing.ports import Reservation


class _Provider:
    """In-memory OAuth provider that consents at once."""

    def __init__(self, server: McpOAuthServer) -> None:
        self._server = server
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self._server.registered.append(client_info.model_dump(mode="json"))
        self.clients[client_info.client_id] = client_info

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        code = secrets.token_urlsafe(24)
        self._server.authorized.append(
            {"client_id": client.client_id, "resource": params.resource, "scopes": params.scopes}
        )
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or [],
            expires_at=time.time() + 300,
            client_id=str(client.client_id),
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return self.codes.get(authorization_code)

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        del self.codes[authorization_code.code]
        self._server.tokens_issued.append("authorization_code")
        return self._issue(str(client.client_id), authorization_code.scopes)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        return self.refresh.get(refresh_token)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        del self.refresh[refresh_token.token]
        self._server.tokens_issued.append("refresh_token")
        return self._issue(str(client.client_id), scopes or refresh_token.scopes)

    async def load_access_token(self, token: str) -> AccessToken | None:
        found = self.access.get(token)
        if found is None or (found.expires_at and found.expires_at + GRACE_S < time.time()):
            return None
        return found

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "identity assertions are not offered")

    def _issue(self, client_id: str, scopes: list[str]) -> OAuthToken:
        access, refresh = f"dcr-at-{secrets.token_hex(8)}", f"dcr-rt-{secrets.token_hex(8)}"
        lifetime = self._server.token_seconds
        self.access[access] = AccessToken(
            token=access,
            client_id=client_id,
            scopes=scopes,
            expires_at=int(time.time()) + lifetime,
            resource=self._server.url,
        )
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes)
        return OAuthToken(
            access_token=access,
            expires_in=lifetime,
            refresh_token=refresh,
            scope=" ".join(scopes) or None,
        )


#: how long past the lifetime it announced a token is still accepted: a short lifetime makes
#: irisgate refresh at every call, and the refreshed token must not then be refused because a
#: busy machine took a second between the refresh and the call (a test of refreshing, not of
#: the clock)
GRACE_S = 120


class McpOAuthServer(StartStop):
    def __init__(self, name: str, *, token_seconds: int = 3600) -> None:
        """`token_seconds`: lifetime of the access tokens it issues (irisgate refreshes a
        token 30 s before it expires, so under 30 means at every call); each is accepted
        `GRACE_S` longer."""
        self.name = name
        self.token_seconds = token_seconds
        self.registered: list[dict[str, Any]] = []
        self.authorized: list[dict[str, Any]] = []
        self.tokens_issued: list[str] = []
        # the issuer URL is in the metadata, so the port is known before the server starts
        self._reservation: Reservation | None = Reservation()
        self.port = self._reservation.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/mcp"

    def _app(self) -> Any:
        mcp: MCPServer = MCPServer(
            self.name,
            auth_server_provider=_Provider(self),
            auth=AuthSettings(
                issuer_url=self.origin,  # type: ignore[arg-type]  # pydantic parses it
                resource_server_url=self.url,  # type: ignore[arg-type]
                client_registration_options=ClientRegistrationOptions(enabled=True),
                validate_token_resource=True,
            ),
        )
        name = self.name

        @mcp.tool()
        def echo(text: str) -> str:
            """Answer with the server's name and the text."""
            return f"{name}: {text}"

        @mcp.tool()
        def credential(ctx: Context) -> str:
            """The bearer token this request carried."""
            request = ctx.request_context.request
            assert request is not None
            return str(request.headers.get("authorization", ""))

        return mcp.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    def start(self) -> McpOAuthServer:
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60  # only a stuck start takes this long
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"MCP OAuth test server {self.name} did not start")
            time.sleep(0.02)
        if self._reservation is not None:
            self._reservation.release()
            self._reservation = None
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
        self._server = self._thread = None
