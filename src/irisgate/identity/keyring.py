"""The key ring: every valid API key in memory, and the resolver that consults it first.

`KeyedResolver` wraps the identity mode's resolver. A request that carries an irisgate key
(`irisgate.identity.keys.key_in`) is its key's owner, whatever the network says; one with an
unknown, revoked or expired key is refused with `KeyRefused` (401) and never falls back to
its network identity. A request without a key goes to the mode's resolver as before.

The ring maps the SHA-256 of each secret to a ready `Identity`, so a request with a known
key costs one hash and one dict lookup, no database round trip. It is kept current by:

- this instance's own changes, at once (`added`, `revoked`);
- polling `api_key_generation` as often as the config is polled (every second, inside
  the 2 s config convergence bound) and reloading the keys when it moved, so a key revoked
  on another instance stops working here within that bound;
- a database look-up for a well-formed key it does not know (one made on another instance
  since the last poll), at most `_LOOKUPS` at a time; an unknown key is not remembered, so
  a key made a moment ago works as soon as it is in the database.

When each key was last used is kept in memory and written with the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog

from irisgate.identity import Identity, KeyInfo, KeyRefused
from irisgate.identity.keys import SHOWN, key_in, new_secret, secret_hash
from irisgate.identity.resolver import Headers, IdentityResolver
from irisgate.store import keys as stored
from irisgate.store.availability import unavailable
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.keys")
#: database look-ups of keys the ring does not know, at most this many at once
_LOOKUPS = 2


class _Entry:
    __slots__ = ("expires", "identity")

    def __init__(self, identity: Identity, expires: float | None) -> None:
        self.identity = identity
        self.expires = expires


def identity_of(key: stored.StoredKey) -> Identity:
    """The identity a key gives its caller: its owner, with the key's narrowing."""
    narrowed = bool(key.models or key.quota or key.expires_at)
    info = KeyInfo(key.id, key.name, key.models, key.quota, narrowed)
    return Identity(login_name=key.owner, display_name=key.owner.split("@", 1)[0], key=info)


async def make(
    db: Database,
    *,
    owner: str,
    name: str,
    created_by: str,
    expires_at: datetime | None = None,
    models: tuple[str, ...] = (),
    quota: str = "",
) -> tuple[stored.StoredKey, str]:
    """Store a new key: (the stored key, its secret, which nothing keeps)."""
    secret = new_secret()
    key = stored.StoredKey(
        id=f"key_{secrets.token_hex(8)}",
        secret_hash=secret_hash(secret),
        prefix=secret[:SHOWN],
        name=name,
        owner=owner,
        service=owner.endswith("@service"),
        created_by=created_by,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        revoked_at=None,
        revoked_by="",
        models=models,
        quota=quota,
        last_used_at=None,
    )
    await stored.insert(db, key)
    return key, secret


def _entry(key: stored.StoredKey) -> _Entry:
    expires = key.expires_at.timestamp() if key.expires_at is not None else None
    return _Entry(identity_of(key), expires)


class KeyRing:
    """Valid keys by the hash of their secret; built by `open` (keys loaded, poll started)."""

    def __init__(self, db: Database, poll_seconds: float, keys: Iterable[stored.StoredKey]) -> None:
        self._db = db
        self._poll = poll_seconds
        self._by_hash = {k.secret_hash: _entry(k) for k in keys}
        self._generation = -1
        self._used: dict[str, float] = {}
        self._lookups = asyncio.Semaphore(_LOOKUPS)
        self._task = asyncio.get_running_loop().create_task(self._follow())

    @classmethod
    async def open(cls, db: Database, poll_seconds: float) -> KeyRing:
        generation = await stored.generation(db)
        ring = cls(db, poll_seconds, await stored.active(db))
        ring._generation = generation
        return ring

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):  # best effort: last-used times are a courtesy
            await self._flush_used()

    async def identify(self, secret: str) -> Identity:
        """The identity of a key's caller; `KeyRefused` when the key is not valid now."""
        digest = secret_hash(secret)
        entry = self._by_hash.get(digest)
        if entry is None:
            entry = await self._look_up(digest)
        now = time.time()
        if entry.expires is not None and entry.expires <= now:
            raise KeyRefused("API key expired")
        key = entry.identity.key
        assert key is not None
        self._used[key.id] = now
        return entry.identity

    async def _look_up(self, digest: str) -> _Entry:
        async with self._lookups:
            key = await stored.by_hash(self._db, digest)
        if key is None or key.revoked_at is not None:
            raise KeyRefused("invalid API key: unknown or revoked")
        entry = self._by_hash[digest] = _entry(key)
        return entry

    def added(self, key: stored.StoredKey) -> None:
        """A key this instance just stored: usable here at once."""
        self._by_hash[key.secret_hash] = _entry(key)

    def revoked(self, key: stored.StoredKey) -> None:
        """A key this instance just revoked: refused here at once."""
        self._by_hash.pop(key.secret_hash, None)

    async def refresh(self) -> None:
        """Reload every key when another instance changed one since the last look."""
        generation = await stored.generation(self._db)
        if generation != self._generation:
            keys = await stored.active(self._db)
            self._by_hash = {k.secret_hash: _entry(k) for k in keys}
            self._generation = generation
        await self._flush_used()

    async def _flush_used(self) -> None:
        if not self._used:
            return
        used, self._used = self._used, {}
        await stored.mark_used(
            self._db, ((k, datetime.fromtimestamp(t, UTC)) for k, t in used.items())
        )

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self.refresh()
            except Exception as exc:  # keep following: a DB hiccup must not stop revocations
                if unavailable(exc):
                    self._db.availability.failed(exc)
                    continue
                log.exception("API key refresh failed; keeping the keys in memory")


class KeyedResolver:
    """The mode's resolver with API keys in front: a request with a key is its owner."""

    def __init__(self, inner: IdentityResolver, ring: KeyRing) -> None:
        self._inner = inner
        #: the identity mode's own resolver (the sign-in pages use mode oidc's)
        self.inner = inner
        self.ring = ring
        self.mode = inner.mode

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        secret = key_in(headers)
        if secret is None:
            return await self._inner.resolve(client, headers)
        return await self.ring.identify(secret)

    async def own_names(self, server: tuple[str, int]) -> frozenset[str]:
        return await self._inner.own_names(server)

    async def key_expiry(self) -> datetime | None:
        """The mode's node key expiry (Tailscale's node key, not an API key)."""
        return await self._inner.key_expiry()

    async def open(self, db: Database) -> None:
        """Nothing of its own to open: the runtime opens the mode's resolver and the ring."""

    async def close(self) -> None:
        """Nothing of its own to close: the app closes the mode's resolver, the runtime the
        ring."""
