"""OAuth 2.0 for connectors: client credentials, and the per-user authorization code flow.

Client credentials (`oauth2_client_credentials`): irisgate fetches a token for the connector
and reuses it until shortly before it expires.

Authorization code (`oauth2_authorization_code`), always with PKCE S256 (RFC 7636): `start`
builds the authorization URL. Nothing is kept in memory for the attempt: the `state`
parameter is the attempt itself (user, connector, PKCE verifier, redirect URI), sealed with
the connector key, so the callback can be served by any instance sharing the key and the
attempt expires after 15 minutes by the seal's own timestamp. `finish` checks the state,
exchanges the code and returns the tokens; `refresh` renews them with the refresh token.

Authlib builds the authorization URL and the PKCE challenge; the token endpoint is called with
httpx2 (control-plane traffic, see DESIGN.md). Every endpoint passes the URL guard first.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import orjson

from irisgate.config.model import Connector
from irisgate.connectors.safety import UnsafeAddress, UnsafeURL, UrlGuard
from irisgate.connectors.secretbox import InvalidToken, SecretBox
from irisgate.connectors.tokens import TokenSet

if TYPE_CHECKING:  # httpx2 and authlib are imported when connectors are first used
    import httpx2

#: an authorization attempt expires after this long (reference §6.2)
ATTEMPT_SECONDS = 15 * 60


class OAuthError(Exception):
    """An OAuth step failed; `str(exc)` says which and why, without secrets."""


class TokenRefused(OAuthError):
    """The token endpoint refused the grant (e.g. `invalid_grant`): the user must reconnect."""


@dataclass(frozen=True, slots=True)
class Attempt:
    login: str
    connector_id: str
    verifier: str
    redirect_uri: str


def auth_field(connector: Connector, *names: str) -> str:
    """The first non-empty of `names` among the connector's auth fields and secrets."""
    auth = connector.auth
    for name in names:
        secret = auth.secrets.get(name)
        if secret is not None and secret.value:
            return secret.value
        value = auth.fields.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def scopes(connector: Connector) -> str:
    value = connector.auth.fields.get("scopes")
    if isinstance(value, str):
        return value
    return " ".join(str(s) for s in value) if isinstance(value, list | tuple) else ""


class OAuthClient:
    def __init__(self, box: SecretBox, guard: UrlGuard, http: httpx2.AsyncClient) -> None:
        self._box = box
        self._guard = guard
        self._http = http
        self._client_tokens: dict[tuple[str, str], TokenSet] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- client credentials -------------------------------------------------------------

    async def client_token(self, connector: Connector) -> str:
        """A valid access token for a client-credentials connector, cached until near expiry."""
        # keyed by the auth settings too: an admin's edit must not keep serving the old token
        key = (connector.id, orjson.dumps(connector.auth.fields, default=str).decode())
        tokens = self._client_tokens.get(key)
        if tokens is not None and not tokens.expired():
            return tokens.access_token
        lock = self._locks.setdefault(connector.id, asyncio.Lock())
        async with lock:
            tokens = self._client_tokens.get(key)
            if tokens is None or tokens.expired():
                form = {"grant_type": "client_credentials"}
                if scope := scopes(connector):
                    form["scope"] = scope
                tokens = await self._token_request(connector, form, None)
                self._client_tokens[key] = tokens
        return tokens.access_token

    # -- authorization code -------------------------------------------------------------

    def start(self, connector: Connector, login: str, redirect_uri: str) -> str:
        """The URL to send the user's browser to."""
        from authlib.common.security import generate_token
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        verifier = generate_token(64)
        extra = {}
        if resource := auth_field(connector, "resource"):  # RFC 8707, as MCP servers require
            extra["resource"] = resource
        state = self._box.seal(
            orjson.dumps({"l": login, "c": connector.id, "v": verifier, "r": redirect_uri})
        ).decode()
        url: str = prepare_grant_uri(
            auth_field(connector, "auth_url", "authorization_url"),
            auth_field(connector, "client_id"),
            "code",
            redirect_uri=redirect_uri,
            scope=scopes(connector) or None,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            **extra,
        )
        return url

    def attempt(self, state: str) -> Attempt:
        """The attempt sealed in `state`; OAuthError when forged or older than 15 minutes."""
        try:
            data = orjson.loads(self._box.open(state.encode(), ttl=ATTEMPT_SECONDS))
        except InvalidToken:
            raise OAuthError(
                "this sign-in link is invalid or older than 15 minutes; start again from the"
                " Connectors page"
            ) from None
        return Attempt(data["l"], data["c"], data["v"], data["r"])

    async def finish(self, connector: Connector, attempt: Attempt, code: str) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": attempt.redirect_uri,
            "code_verifier": attempt.verifier,
        }
        return await self._token_request(connector, form, None)

    async def refresh(self, connector: Connector, tokens: TokenSet) -> TokenSet:
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        return await self._token_request(connector, form, tokens)

    # -- the token endpoint -------------------------------------------------------------

    async def _token_request(
        self, connector: Connector, form: dict[str, str], previous: TokenSet | None
    ) -> TokenSet:
        import httpx2

        token_url = auth_field(connector, "token_url")
        try:
            await self._guard.check(token_url)
        except UnsafeURL as exc:
            raise OAuthError(f"token_url refused: {exc}") from None
        client_id = auth_field(connector, "client_id")
        secret = auth_field(connector, "client_secret")
        if resource := auth_field(connector, "resource"):
            form = {**form, "resource": resource}
        # a confidential client authenticates with HTTP Basic (RFC 6749 §2.3.1), or in the form
        # when it registered so (RFC 7591 `token_endpoint_auth_method`); a public client only
        # names itself
        method = auth_field(connector, "token_auth")
        headers = {"accept": "application/json"}
        if secret and method == "client_secret_post":
            form = {**form, "client_id": client_id, "client_secret": secret}
        elif secret and method != "none":
            if method:  # a registered client names itself too: MCP SDK servers need it
                form = {**form, "client_id": client_id}
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form = {**form, "client_id": client_id}
        try:
            response = await self._http.post(token_url, data=form, headers=headers)
        except UnsafeAddress as exc:  # the name resolved elsewhere when connecting
            raise OAuthError(f"token_url refused: {exc}") from None
        except httpx2.HTTPError as exc:
            raise OAuthError(f"token endpoint unreachable: {type(exc).__name__}") from None
        body = _json(response)
        if response.status_code != 200 or "access_token" not in body:
            error = str(body.get("error") or f"HTTP {response.status_code}")
            description = str(body.get("error_description") or "")[:200]
            message = f"token endpoint refused the {form['grant_type']} grant: {error}"
            message += f" ({description})" if description else ""
            if error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                raise TokenRefused(message)
            raise OAuthError(message)
        return TokenSet.from_response(body, previous)


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}
