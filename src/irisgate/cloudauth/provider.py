"""Which cloud credential a provider uses, and applying it to an upstream request.

`CloudAuth` lives as long as the process (tokens outlast config versions); per provider key
it parses the credential once and keeps one `TokenSource` per service account. Providers with
an ordinary `apikey` get None and cost one dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from irisgate.cloudauth import sigv4
from irisgate.cloudauth.service_account import TokenSource
from irisgate.config.cloudkeys import (
    KEYFILE,
    AwsKeys,
    CredentialError,
    is_cloud_key,
    parse_aws_keys,
    parse_service_account,
    vertex_region,
)
from irisgate.config.model import Provider
from irisgate.wire.errors import GatewayError
from irisgate.wire.upstream import UpstreamRequest

#: (client_email, private_key_id, token_uri): one token source per service account
ServiceAccountKey = tuple[str, str, str]


@dataclass(slots=True)
class ProviderAuth:
    """A provider's cloud credential: what it fills into Vertex paths, how it signs."""

    provider: Provider
    tokens: TokenSource | None = None
    aws: AwsKeys | None = None

    @property
    def project(self) -> str | None:
        return self.tokens.account.project_id or None if self.tokens is not None else None

    @property
    def region(self) -> str:
        return vertex_region(self.provider.baseurl)

    async def authorize(self, request: UpstreamRequest) -> None:
        """Set the credential on the final request (after every body rewrite)."""
        mode = self.provider.auth_mode
        headers = request.headers
        if mode == "none" or (mode == "passthrough" and "authorization" in headers):
            return
        for name in [n for n in headers if n.startswith("x-amz-")]:
            del headers[name]  # a client's own SigV4 leftovers must not reach AWS
        if self.tokens is not None:
            headers["authorization"] = f"Bearer {await self.tokens.token()}"
        elif self.aws is not None:
            body = request.body
            assert isinstance(body, bytes)  # uploads never reach a signed cloud (pipeline.py)
            sigv4.sign("POST", request.url, headers, body, self.aws)


class CloudAuth:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http
        self._by_key: dict[tuple[str, str, str, str], ProviderAuth | None] = {}
        self._tokens: dict[ServiceAccountKey, TokenSource] = {}

    def for_provider(self, provider: Provider) -> ProviderAuth | None:
        value = provider.apikey.value or ""
        # everything ProviderAuth reads: a config change to any of it builds a new one
        key = (provider.id, value, provider.baseurl, provider.auth_mode)
        if key in self._by_key:
            return self._by_key[key]
        auth = self._build(provider, value) if is_cloud_key(value) else None
        self._by_key[key] = auth
        return auth

    def _build(self, provider: Provider, value: str) -> ProviderAuth:
        try:
            if value.startswith(KEYFILE):
                account = parse_service_account(value)
                ident = (account.client_email, account.private_key_id, account.token_uri)
                source = self._tokens.get(ident)
                if source is None:
                    source = self._tokens[ident] = TokenSource(account, self._http)
                return ProviderAuth(provider, tokens=source)
            return ProviderAuth(provider, aws=parse_aws_keys(value, provider.baseurl))
        except CredentialError as exc:
            # config validation refuses these; reaching here means the key changed under us
            raise GatewayError("internal", f"provider '{provider.id}': {exc}") from None

    async def close(self) -> None:
        for source in self._tokens.values():
            await source.close()
