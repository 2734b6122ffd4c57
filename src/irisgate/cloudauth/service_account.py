"""OAuth access tokens for a Google service account (JWT bearer grant, RFC 7523).

A `TokenSource` per service account mints a token by posting a signed assertion (RS256) to the
account's `token_uri`, caches it, and renews it before it expires: while more than
`REFRESH_BEFORE` seconds remain the cached token is used as is; inside that window the next
request still uses it and starts one renewal in the background; only with no usable token at
all does a request wait, and concurrent waiters share the one mint in flight. So a token is
never minted per request; after a failed mint, requests get its error for a few seconds
rather than each trying again.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import orjson
import structlog

from irisgate.config.cloudkeys import ServiceAccount, load_private_key
from irisgate.wire.errors import GatewayError

log = structlog.get_logger("irisgate.cloudauth")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600
#: renew when a token has less than this many seconds left
REFRESH_BEFORE = 300
#: a token this close to expiry is not used at all (clock skew, request duration)
EXPIRY_SLACK = 30
#: after a failed mint, requests fail with its error for this long instead of each minting
RETRY_AFTER_FAILURE = 5.0


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def assertion(account: ServiceAccount, now: int) -> str:
    """The signed JWT asking `token_uri` for a cloud-platform access token."""
    header = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    signing_input = _b64(orjson.dumps(header)) + b"." + _b64(orjson.dumps(claims))
    key = load_private_key(account.private_key)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return (signing_input + b"." + _b64(signature)).decode()


class TokenSource:
    def __init__(
        self,
        account: ServiceAccount,
        http: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self._http = http
        self._clock = clock
        self._token = ""
        self._expires = 0.0
        self._minting: asyncio.Task[None] | None = None
        self._failure: GatewayError | None = None
        self._retry_at = 0.0
        self.mints = 0

    async def token(self) -> str:
        left = self._expires - self._clock()
        if self._token and left > REFRESH_BEFORE:
            return self._token
        if self._token and left > EXPIRY_SLACK:
            self._start_mint()  # renew in the background; this request keeps the old one
            return self._token
        if self._failure is not None and self._clock() < self._retry_at:
            raise GatewayError(self._failure.kind, self._failure.message)
        await asyncio.shield(self._start_mint())
        return self._token

    def _start_mint(self) -> asyncio.Task[None]:
        if self._minting is None or self._minting.done():
            self._minting = asyncio.get_running_loop().create_task(self._mint())
            self._minting.add_done_callback(_log_failure)
        return self._minting

    async def _mint(self) -> None:
        try:
            await self._request_token()
        except GatewayError as exc:
            self._failure, self._retry_at = exc, self._clock() + RETRY_AFTER_FAILURE
            raise
        self._failure = None

    async def _request_token(self) -> None:
        now = int(self._clock())
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": assertion(self.account, now)})
        try:
            async with self._http.post(
                self.account.token_uri,
                data=form.encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GatewayError(
                "upstream", f"could not reach the Google token endpoint: {type(exc).__name__}"
            ) from None
        answer = _token_answer(body) or {}
        token = answer.get("access_token")
        if status != 200 or not isinstance(token, str) or not token:
            reason = answer.get("error_description") or answer.get("error")
            raise GatewayError(
                "upstream",
                f"Google token endpoint refused service account "
                f"{self.account.client_email}: HTTP {status} {reason or ''}".rstrip(),
            )
        expires_in = answer.get("expires_in", 3600)
        lifetime = expires_in if isinstance(expires_in, int | float) else 3600
        self._token, self._expires = token, now + float(lifetime)
        self.mints += 1

    async def close(self) -> None:
        if self._minting is not None and not self._minting.done():
            self._minting.cancel()


def _token_answer(body: bytes) -> dict[str, object] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("service account token renewal failed", error=str(task.exception()))
