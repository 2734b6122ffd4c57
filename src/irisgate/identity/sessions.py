"""Signed-in browsers (identity modes oidc and keys): the session cookie and the sessions
table. In mode keys a browser signs in with an API key, and its session stands for the key.

A sign-in gives the browser a cookie holding 32 random bytes (`irisgate_session`, HttpOnly,
SameSite=Lax, Path=/; behind https `__Host-irisgate_session` and Secure: the `__Host-`
prefix makes browsers refuse the cookie from a sibling subdomain or with another path, so
no other site under the same domain can plant a session of its choosing). The database
keeps only its SHA-256 with the person it names (login, display name, groups) and its expiry, in
`signin_sessions`. Why a table and not a signed cookie: every instance on the same
PostgreSQL reads the same rows, so a session works on all of them and survives restarts
with no signing key to share or rotate, and logging out deletes the row, which ends the
session everywhere (a signed cookie would stay valid until it expires unless a revocation
list were kept anyway).

Each instance keeps what it looked up for `CACHE_S` seconds (at most `MAX_CACHED` entries),
so a page and the API calls it makes cost one query, not one each; a logout on one instance
ends the session there at once and on the others within `CACHE_S`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from irisgate.identity import Identity, IdentityRefused, KeyInfo, SignInRequired
from irisgate.identity.oidc import Person
from irisgate.store import signin
from irisgate.store.database import Database

COOKIE = "irisgate_session"
ATTEMPT_COOKIE = "irisgate_signin"


def cookie_name(name: str, *, secure: bool) -> str:
    """`name`, with the `__Host-` prefix behind https (Secure, Path=/, no Domain)."""
    return f"__Host-{name}" if secure else name


#: the longest cookie value looked at (the real ones are 43 characters)
_MAX_TOKEN = 128
CACHE_S = 5.0
MAX_CACHED = 4096
log = structlog.get_logger("irisgate.identity.sessions")
SIGN_IN = "sign in first: open /auth/login in a browser (programs use API keys)"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_value(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of cookie `name` in the request's `Cookie` headers (the first, when several)."""
    wanted = name.encode() + b"="
    for key, value in headers:
        if key != b"cookie":
            continue
        for raw in value.split(b";"):
            part = raw.strip()
            if part.startswith(wanted):
                found = part[len(wanted) :]
                return found.decode("latin-1") if 0 < len(found) <= _MAX_TOKEN else None
    return None


class SessionBook:
    """Creates, finds and ends sessions; `find` answers from memory for CACHE_S seconds."""

    def __init__(self, db: Database, lifetime: timedelta, *, secure: bool) -> None:
        self._db = db
        self.lifetime = lifetime
        self.secure = secure
        self.cookie = cookie_name(COOKIE, secure=secure)
        #: token hash -> (cached until, identity or None for "no such session", expires at)
        self._cache: dict[str, tuple[float, Identity | None, datetime]] = {}

    async def start(self, person: Person, key_id: str = "") -> str:
        """A new session for `person` (signed in with API key `key_id`, mode keys); returns
        the cookie value (shown to nobody else)."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = signin.SessionRow(
            person.login_name, person.display_name, person.groups, now + self.lifetime, key_id
        )
        await signin.add_session(self._db, token_hash(token), row, now)
        return token

    async def find(self, token: str) -> Identity | None:
        """The identity of an unexpired session with this cookie value; None otherwise."""
        key = token_hash(token)
        clock = time.monotonic()
        now = datetime.now(UTC)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > clock and (hit[1] is None or hit[2] > now):
            return hit[1]
        try:
            row = await signin.find_session(self._db, key, now)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("cannot look up a session", error=type(exc).__name__)
            raise IdentityRefused(
                "cannot check your sign-in: the database is unavailable; try again shortly"
            ) from None
        identity = None
        if row is not None:
            # a session made with an API key stands for the key: the key ring answers who
            # it is now (irisgate.identity.keyring), so revoking the key ends it
            identity = Identity(
                login_name=row.login_name,
                display_name=row.display_name,
                groups=row.groups,
                key=KeyInfo(row.key_id, "") if row.key_id else None,
            )
        if len(self._cache) >= MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > clock}
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
        expires = row.expires_at if row is not None else now
        self._cache[key] = (clock + CACHE_S, identity, expires)
        return identity

    async def end(self, token: str) -> None:
        """Log out: the session is gone here at once, elsewhere within CACHE_S."""
        key = token_hash(token)
        self._cache.pop(key, None)
        await signin.delete_session(self._db, key)


async def identity_of(book: SessionBook, headers: list[tuple[bytes, bytes]]) -> Identity:
    """The signed-in person of a request, from its session cookie; SignInRequired without
    one, or with one that has expired or was logged out."""
    token = cookie_value(headers, book.cookie)
    if token is None:
        raise SignInRequired(SIGN_IN)
    identity = await book.find(token)
    if identity is None:
        raise SignInRequired("your sign-in has expired or ended: " + SIGN_IN)
    return identity
