"""Signing people in through an OpenID provider (identity mode oidc): the relying party.

The authorization code flow with PKCE (S256), built with Authlib's OAuth 2.0 pieces, and
the ID token checked with joserfc (Authlib's JOSE library) before anything in it is
believed:

- signature: RS256/ES256/PS256/EdDSA and friends only (never `none` or HMAC, which would let
  whoever knows the client secret, or nobody, sign), with a key from the provider's JWKS;
- `iss` is the configured issuer, `aud` names this client (and `azp` is this client when
  several audiences are named), `exp` has not passed, `iat` is not in the future (a minute of
  clock skew allowed), `nonce` is the one this sign-in sent.

The discovery document is read once and kept; the JWKS is kept too and read again when a
token names a key id it does not hold (the provider rotated its keys), at most once per
`JWKS_REFRESH_S`, so tokens with unknown key ids cannot make irisgate hammer the provider.
Every answer read from the provider has a size limit. Tokens and the client secret are never
logged or shown: errors name the claim or step that failed, not the token.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import orjson
import structlog

from irisgate.settings import OidcSettings

if TYPE_CHECKING:
    import httpx2

log = structlog.get_logger("irisgate.identity.oidc")

#: asymmetric signature algorithms accepted on an ID token
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
#: the longest discovery document, JWKS or token answer read from the provider
MAX_ANSWER = 256 * 1024
#: the most keys a JWKS may hold
MAX_KEYS = 64
#: the longest ID token accepted
MAX_ID_TOKEN = 16 * 1024
#: seconds between two reads of the JWKS caused by an unknown key id
JWKS_REFRESH_S = 60.0
#: clock skew allowed between irisgate and the provider
LEEWAY_S = 60
#: the most groups kept from a token, and the longest group name and login kept
MAX_GROUPS = 256
MAX_NAME = 320


class SignInFailed(Exception):
    """A sign-in could not be completed; `str(exc)` is safe to show (it holds no token)."""


@dataclass(frozen=True, slots=True)
class Person:
    """Who the ID token says signed in."""

    login_name: str
    display_name: str
    groups: tuple[str, ...]


class OidcClient:
    """The provider's endpoints and keys, and the steps of one sign-in."""

    def __init__(
        self, settings: OidcSettings, client_secret: str, http: httpx2.AsyncClient
    ) -> None:
        self._settings = settings
        self._secret = client_secret
        self._http = http
        self._metadata: dict[str, Any] | None = None
        self._keys: Any = None  # joserfc KeySet
        self._refreshed_at = -math.inf  # when an unknown key id last made us read the JWKS

    @property
    def redirect_uri(self) -> str:
        return f"{self._settings.base_url}/auth/callback"

    async def authorization_url(self, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser to sign in."""
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        endpoint = await self._endpoint("authorization_endpoint")
        url: str = prepare_grant_uri(
            endpoint,
            self._settings.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=self._settings.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url

    async def sign_in(self, code: str, verifier: str, nonce: str) -> Person:
        """Exchange the code for tokens, check the ID token, read the person from it."""
        claims = await self.verify(await self._exchange(code, verifier), nonce)
        return self._person(claims)

    async def _exchange(self, code: str, verifier: str) -> str:
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=verifier,
        )
        endpoint = await self._endpoint("token_endpoint")
        # a confidential client authenticates with HTTP Basic of its form-encoded id and
        # secret (RFC 6749 section 2.3.1)
        pair = f"{quote_plus(self._settings.client_id)}:{quote_plus(self._secret)}"
        headers = {
            "authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
        }
        answer = await self._read("token endpoint", "POST", endpoint, body, headers)
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            error = str(answer.get("error") or "no id_token in its answer")[:200]
            raise SignInFailed(f"the provider's token endpoint refused the sign-in: {error}")
        return id_token

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of `id_token` once signature, issuer, audience, times and nonce hold."""
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError

        if len(id_token) > MAX_ID_TOKEN:
            raise SignInFailed(f"the ID token is longer than {MAX_ID_TOKEN} bytes")
        keys = await self._key_set(refresh=False)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # a key the provider added since: read its keys again
                keys = await self._key_set(refresh=True)
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except JoseError as exc:
            raise SignInFailed(f"the ID token is refused: {_jose_reason(exc)}") from None
        except ValueError:  # not three base64url parts, not JSON
            raise SignInFailed("the ID token is refused: it is not a signed JWT") from None
        claims: dict[str, Any] = dict(token.claims)
        self._check_claims(claims, nonce)
        return claims

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        from joserfc import jwt
        from joserfc.errors import JoseError

        client_id = self._settings.client_id
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self._settings.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SignInFailed(f"the ID token is refused: {_jose_reason(exc)}") from None
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or client_id not in audiences:
            raise SignInFailed("the ID token is refused: its audience (aud) is not this client")
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise SignInFailed("the ID token is refused: several audiences, and azp is not us")

    def _person(self, claims: dict[str, Any]) -> Person:
        login_claim, groups_claim = self._settings.login_claim, self._settings.groups_claim
        login = claims.get(login_claim)
        if not isinstance(login, str) or not login.strip() or len(login) > MAX_NAME:
            raise SignInFailed(
                f"the ID token has no usable {login_claim!r} claim to name you by (ask the"
                " provider's admin to release it, or set --oidc-login-claim)"
            )
        if login_claim == "email" and claims.get("email_verified") is False:
            raise SignInFailed("the provider says your email address is not verified")
        raw_groups = claims.get(groups_claim) or []
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        groups = tuple(g for g in raw_groups if isinstance(g, str) and g and len(g) <= MAX_NAME)[
            :MAX_GROUPS
        ]
        name = claims.get("name")
        display = name if isinstance(name, str) and len(name) <= MAX_NAME else ""
        return Person(login.strip(), display or login.split("@", 1)[0], groups)

    # -- the provider's documents --------------------------------------------------------

    async def check(self) -> int:
        """Read the discovery document and the JWKS (`irisgate doctor`): the number of keys;
        SignInFailed saying what is wrong."""
        await self._endpoint("authorization_endpoint")
        await self._endpoint("token_endpoint")
        return len((await self._key_set(refresh=False)).keys)

    async def _endpoint(self, name: str) -> str:
        metadata = self._metadata
        if metadata is None:
            url = f"{self._settings.issuer}/.well-known/openid-configuration"
            metadata = await self._read("discovery document", "GET", url)
            if metadata.get("issuer") != self._settings.issuer:
                raise SignInFailed(
                    "the provider's discovery document names another issuer than"
                    f" --oidc-issuer {self._settings.issuer}"
                )
            self._metadata = metadata
        value = metadata.get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise SignInFailed(f"the provider's discovery document has no {name}")
        return value

    async def _key_set(self, *, refresh: bool) -> Any:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        now = time.monotonic()
        if self._keys is not None and not refresh:
            return self._keys
        if self._keys is not None:
            if now - self._refreshed_at < JWKS_REFRESH_S:
                return self._keys  # read again a moment ago: an unknown key id stays unknown
            self._refreshed_at = now
        answer = await self._read("JWKS", "GET", await self._endpoint("jwks_uri"))
        keys = answer.get("keys")
        if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS:
            raise SignInFailed(f"the provider's JWKS must hold 1 to {MAX_KEYS} keys")
        usable = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        try:
            self._keys = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInFailed(f"the provider's JWKS cannot be read: {exc}") from None
        return self._keys

    async def _read(
        self,
        what: str,
        method: str,
        url: str,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A JSON object from the provider, read up to MAX_ANSWER bytes."""
        import httpx2

        try:
            async with self._http.stream(method, url, content=body, headers=headers) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER:
                        raise SignInFailed(
                            f"the provider's {what} is larger than {MAX_ANSWER} bytes"
                        )
                status = response.status_code
        except httpx2.HTTPError as exc:
            log.warning("OpenID provider unreachable", step=what, error=type(exc).__name__)
            raise SignInFailed(
                f"the provider's {what} is unreachable ({type(exc).__name__})"
            ) from None
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise SignInFailed(f"the provider's {what} answered HTTP {status} without JSON")
        if status != 200 and what != "token endpoint":
            raise SignInFailed(f"the provider's {what} answered HTTP {status}")
        return answer


def _jose_reason(exc: Exception) -> str:
    """What joserfc found wrong, without the token: its error's name and description."""
    description = getattr(exc, "description", "") or ""
    error = getattr(exc, "error", "") or type(exc).__name__
    return f"{error}: {description}"[:200] if description else str(error)[:200]
