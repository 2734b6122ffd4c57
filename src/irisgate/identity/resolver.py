"""Pick the identity mode once at start-up; resolve each request with a plain call."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from irisgate.config.secrets import SecretSource, resolve_secret, unresolved_reason
from irisgate.identity import Identity, IdentityRefused, KeyRefused
from irisgate.identity.localapi import WhoIsClient
from irisgate.identity.oidc import OidcClient
from irisgate.identity.serve import identity_from_serve_headers
from irisgate.identity.sessions import SessionBook, cookie_value, identity_of
from irisgate.settings import DEFAULT_SOCKET, OidcSettings, Settings, SettingsError
from irisgate.store.database import Database

if TYPE_CHECKING:
    import httpx2

Headers = list[tuple[bytes, bytes]]


class IdentityResolver(Protocol):
    mode: str

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity: ...

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        """The names (lower case) this gateway's node answers to, for requests that arrived
        on `server`; empty when there is no way to know them."""
        ...

    async def key_expiry(self) -> datetime | None:
        """When this gateway's node key expires (tailscaled's status); None when it never
        does or there is no tailscaled to ask."""
        ...

    async def open(self, db: Database) -> None:
        """Start with the database open (the runtime's start; mode oidc keeps its sessions
        there)."""
        ...

    async def close(self) -> None: ...


@lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


class TailscaleResolver:
    """Asks tailscaled (LocalAPI WhoIs) who the TCP peer is."""

    mode = "tailscale"

    def __init__(self, socket_path: str, ttl: float) -> None:
        self._whois = WhoIsClient(socket_path, ttl)

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        if client is None:
            raise IdentityRefused("connection has no peer address to identify")
        return await self._whois.whois(client)

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        """The MagicDNS names (short and full) WhoIs gives for the address requests arrive on."""
        try:
            node = await self._whois.whois(server)
        except IdentityRefused:
            return frozenset()
        names = {node.node_name.lower()} if node.node_name else set()
        if node.node_name and node.tailnet:
            names.add(f"{node.node_name}.{node.tailnet}".lower())
        return frozenset(names)

    async def key_expiry(self) -> datetime | None:
        return await self._whois.key_expiry()

    async def open(self, db: Database) -> None:
        return None

    async def close(self) -> None:
        await self._whois.close()


class ServeResolver:
    """Trusts `tailscale serve` headers, from loopback peers only."""

    mode = "serve"

    def __init__(self, socket_path: str = DEFAULT_SOCKET, ttl: float = 10.0) -> None:
        self._localapi = WhoIsClient(socket_path, ttl)

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        """The node's names, from tailscaled's status when its socket is there (irisgate
        behind `tailscale serve` runs on the same machine as tailscaled)."""
        return await self._localapi.node_names()

    async def key_expiry(self) -> datetime | None:
        return await self._localapi.key_expiry()

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        if client is None or not is_loopback(client[0]):
            peer = client[0] if client else "unknown peer"
            raise IdentityRefused(
                f"identity mode 'serve' only accepts requests relayed by tailscale serve on "
                f"loopback; {peer} is not loopback"
            )
        wanted = {
            b"tailscale-user-login",
            b"tailscale-user-name",
            b"tailscale-user-profile-pic",
            b"tailscale-app-capabilities",
            b"tailscale-funnel-request",
        }
        found = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in wanted}
        return identity_from_serve_headers(found)

    async def open(self, db: Database) -> None:
        return None

    async def close(self) -> None:
        await self._localapi.close()


class DevResolver:
    """One local user for one-person use; loopback peers only."""

    mode = "dev"

    def __init__(self, login: str) -> None:
        self._identity = Identity(login_name=login, display_name=login.split("@", 1)[0])

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        if client is not None and not is_loopback(client[0]):
            raise IdentityRefused(
                f"identity mode 'dev' only accepts loopback clients; {client[0]} is not "
                "(run with --identity tailscale or serve to share irisgate)"
            )
        return self._identity

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        return frozenset()

    async def key_expiry(self) -> datetime | None:
        return None

    async def open(self, db: Database) -> None:
        return None

    async def close(self) -> None:
        return None


class OidcResolver:
    """People signed in through an OpenID provider, known by their session cookie
    (irisgate.identity.sessions); the sign-in itself is irisgate.web.signin's."""

    mode = "oidc"

    def __init__(self, settings: OidcSettings, client_secret: str) -> None:
        self.settings = settings
        self._secret = client_secret
        self._http: httpx2.AsyncClient | None = None
        self._client: OidcClient | None = None
        self._book: SessionBook | None = None

    @property
    def client(self) -> OidcClient:
        assert self._client is not None, "the runtime opens the resolver before requests"
        return self._client

    @property
    def sessions(self) -> SessionBook:
        assert self._book is not None, "the runtime opens the resolver before requests"
        return self._book

    async def open(self, db: Database) -> None:
        import httpx2

        self._http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(10.0), follow_redirects=False, trust_env=False
        )
        self._client = OidcClient(self.settings, self._secret, self._http)
        lifetime = timedelta(hours=self.settings.session_hours)
        secure = self.settings.base_url.startswith("https://")
        self._book = SessionBook(db, lifetime, secure=secure)

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        return await identity_of(self.sessions, headers)

    async def key_expiry(self) -> datetime | None:
        return None  # no tailscaled: people sign in through the OpenID provider

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        """The host name of --oidc-base-url: where the provider sends browsers back to."""
        host = urlsplit(self.settings.base_url).hostname
        return frozenset({host.lower()}) if host else frozenset()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


class KeysOnlyResolver:
    """No network identity: every caller must bring an API key (`--identity keys`); the key
    ring in front of this resolver answers those who do. A browser signs in with a key
    (irisgate.web.signin) and is then known by its session cookie, which stands for the key
    (the key ring resolves it, so revoking the key ends the session)."""

    mode = "keys"

    def __init__(self, lifetime: timedelta, *, secure: bool) -> None:
        self._lifetime = lifetime
        self._secure = secure
        self._book: SessionBook | None = None

    @property
    def sessions(self) -> SessionBook:
        assert self._book is not None, "the runtime opens the resolver before requests"
        return self._book

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        if cookie_value(headers, self.sessions.cookie) is not None:
            return await identity_of(self.sessions, headers)
        raise KeyRefused(
            "an API key is required (identity mode 'keys'): send it as "
            "'Authorization: Bearer irisgate_…', x-api-key or x-goog-api-key "
            "(browsers sign in with one at /auth/login)"
        )

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        return frozenset()

    async def key_expiry(self) -> datetime | None:
        return None

    async def open(self, db: Database) -> None:
        self._book = SessionBook(db, self._lifetime, secure=self._secure)

    async def close(self) -> None:
        return None


#: the resolvers whose browsers sign in and hold a session (irisgate.web.signin)
SignInResolver = OidcResolver | KeysOnlyResolver


def make_resolver(settings: Settings) -> IdentityResolver:
    if settings.identity == "oidc":
        assert settings.oidc is not None, "load_settings sets it in mode oidc"
        return OidcResolver(settings.oidc, _client_secret(settings))
    if settings.identity == "tailscale":
        return TailscaleResolver(settings.tailscaled_socket, settings.whois_cache_seconds)
    if settings.identity == "serve":
        return ServeResolver(settings.tailscaled_socket, settings.whois_cache_seconds)
    if settings.identity == "keys":
        lifetime = timedelta(hours=settings.session_hours)
        return KeysOnlyResolver(lifetime, secure=settings.base_url.startswith("https://"))
    return DevResolver(settings.dev_login)


def _client_secret(settings: Settings) -> str:
    """The OIDC client secret, its `env:` or `file:` reference resolved."""
    assert settings.oidc is not None
    secret = resolve_secret(
        settings.oidc.client_secret, SecretSource(settings.env, settings.secrets_dir)
    )
    if secret.value is None:
        reason = unresolved_reason("--oidc-client-secret", secret)
        raise SettingsError(reason or "--oidc-client-secret has no value")
    return secret.value
