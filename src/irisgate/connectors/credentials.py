"""What each auth type adds to a request to a connector's upstream (reference §6.2).

Shared credentials (bearer token, API key, basic, client credentials) are the same for every
permitted user; `oauth2_authorization_code` and `oauth2_dynamic_client_registration` (with
the client irisgate registered, see `registration`) use the calling user's own token,
refreshed when it is about to expire. A caller that cannot be served gets an exception naming
why: the user has to connect (`NeedsAuth`) or an admin has to fix the connector (`Misconfigured`).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

from irisgate.config.model import Connector
from irisgate.connectors.oauth import OAuthClient, OAuthError, TokenRefused, auth_field
from irisgate.connectors.registration import DCR, Registrar
from irisgate.connectors.tokens import TokenStore


class CredentialUnavailable(Exception):
    """No credential for this caller and connector; `str(exc)` is safe to show."""


class NeedsAuth(CredentialUnavailable):
    """The user has not connected this connector (or must connect again)."""


class Misconfigured(CredentialUnavailable):
    """The connector's config (or its OAuth server) keeps it from working."""


@dataclass(frozen=True, slots=True)
class Credential:
    headers: dict[str, str] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] = ()


def config_problem(connector: Connector) -> str:
    """Why the connector cannot work whoever calls ("" when nothing is wrong in the config)."""
    if not connector.url:
        return "the connector has no url"
    for name, secret in connector.auth.secrets.items():
        if secret.value is None:
            return f"auth.{name} {secret.ref} cannot be resolved"
    return ""


class Credentials:
    def __init__(self, oauth: OAuthClient, tokens: TokenStore, registrar: Registrar) -> None:
        self._oauth = oauth
        self._tokens = tokens
        self._registrar = registrar
        self._refreshing: dict[tuple[str, str], asyncio.Lock] = {}

    async def for_call(self, connector: Connector, login: str) -> Credential:
        problem = config_problem(connector)
        if problem:
            raise Misconfigured(f"connector {connector.id}: {problem}")
        auth = connector.auth
        kind = auth.type
        if kind == "none":
            return Credential()
        if kind == "bearer_token":
            return _bearer(auth_field(connector, "token", "secret"))
        if kind == "api_key":
            name = str(auth.fields.get("name", ""))
            value = auth_field(connector, "secret", "key")
            if auth.fields.get("in") == "query":
                return Credential(query=((name, value),))
            return Credential(headers={name.lower(): value})
        if kind == "basic":
            pair = f"{auth_field(connector, 'username')}:{auth_field(connector, 'password')}"
            return Credential(
                headers={"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
            )
        if kind == "oauth2_client_credentials":
            try:
                return _bearer(await self._oauth.client_token(connector))
            except OAuthError as exc:
                raise Misconfigured(f"connector {connector.id}: {exc}") from None
        if kind == "oauth2_authorization_code":
            return _bearer(await self._user_token(connector, login))
        if kind == DCR:
            # the client irisgate registered (it refreshes the user's token)
            client = await self._registrar.stored(connector)
            if client is None:
                raise NeedsAuth(
                    f"connect {connector.id} first (Connectors page, or POST"
                    f" /api/connectors/{connector.id}/connect)"
                )
            return _bearer(await self._user_token(client.connector(connector), login))
        raise Misconfigured(f"connector {connector.id}: auth type {kind} is not supported")

    async def _user_token(self, connector: Connector, login: str) -> str:
        tokens = await self._tokens.get(login, connector.id)
        if tokens is None:
            raise NeedsAuth(
                f"connect {connector.id} first (Connectors page, or POST"
                f" /api/connectors/{connector.id}/connect)"
            )
        if not tokens.expired():
            return tokens.access_token
        # one refresh per user and connector: a rotated refresh token works only once
        async with self._refreshing.setdefault((login, connector.id), asyncio.Lock()):
            return await self._refresh(connector, login)

    async def _refresh(self, connector: Connector, login: str) -> str:
        tokens = await self._tokens.get(login, connector.id)
        if tokens is None:
            raise NeedsAuth(f"connect {connector.id} again")
        if not tokens.expired():  # refreshed while this call waited
            return tokens.access_token
        if not tokens.refresh_token:
            raise Misconfigured(
                f"connector {connector.id}: the token expired and the OAuth server gave no"
                " refresh token (enable offline access), then reconnect"
            )
        try:
            fresh = await self._oauth.refresh(connector, tokens)
        except TokenRefused as exc:
            await self._tokens.delete(login, connector.id)
            raise NeedsAuth(f"connect {connector.id} again: {exc}") from None
        except OAuthError as exc:
            raise Misconfigured(f"connector {connector.id}: {exc}") from None
        await self._tokens.put(login, connector.id, fresh)
        return fresh.access_token


def _bearer(token: str) -> Credential:
    return Credential(headers={"authorization": f"Bearer {token}"})
