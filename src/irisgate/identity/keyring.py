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

A key carries its owner's groups and aperture capabilities as last seen on a verified
connection (`irisgate.identity.owners`): the resolver hands every tailnet identity it
resolves to the ring (`seen`), which rebuilds that owner's keys when what they carry
changed; sightings are stored with the next poll and followed by the other instances
through the same generation. A browser signed in with a key (mode keys) is that key, looked
up by id (`identify_id`), so revoking the key ends its sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog

from irisgate.identity import Identity, KeyInfo, KeyRefused, SignInRequired
from irisgate.identity.keys import SHOWN, key_in, new_secret, secret_hash
from irisgate.identity.owners import Attributes, Owners
from irisgate.identity.resolver import Headers, IdentityResolver
from irisgate.store import keys as stored
from irisgate.store import owners as stored_owners
from irisgate.store.availability import unavailable
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.keys")
#: database look-ups of keys the ring does not know, at most this many at once
_LOOKUPS = 2
#: seconds between full reloads even when no key changed (other instances' sightings that
#: only moved `seen_at` forward raise no generation)
_RELOAD_S = 300.0


class _Entry:
    """One key ready for requests: its identity with its owner's attributes until they are
    too old, and with the login only after."""

    __slots__ = ("bare", "expires", "identity", "key", "until")

    def __init__(self, key: stored.StoredKey, owner: Attributes | None, max_age: float) -> None:
        self.key = key
        self.bare = identity_of(key)
        self.identity = identity_of(key, owner)
        self.until = owner.seen_at + max_age if owner is not None else 0.0
        self.expires = key.expires_at.timestamp() if key.expires_at is not None else None

    def now(self, now: float) -> Identity:
        return self.identity if now < self.until else self.bare


def identity_of(key: stored.StoredKey, owner: Attributes | None = None) -> Identity:
    """The identity a key gives its caller: its owner (with the groups and aperture
    capabilities they were last seen with, never for a service), with the key's narrowing."""
    narrowed = bool(key.models or key.quota or key.expires_at)
    info = KeyInfo(key.id, key.name, key.models, key.quota, narrowed)
    display = key.owner.split("@", 1)[0]
    if owner is None or key.service:
        return Identity(login_name=key.owner, display_name=display, key=info)
    return Identity(
        login_name=key.owner,
        display_name=display,
        groups=owner.groups,
        capmap=owner.capmap,
        capmap_key=owner.capmap_key,
        key=info,
    )


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


class KeyRing:
    """Valid keys by the hash of their secret; built by `open` (keys loaded, poll started)."""

    def __init__(
        self,
        db: Database,
        poll_seconds: float,
        keys: Iterable[stored.StoredKey],
        owners: Owners,
    ) -> None:
        self._db = db
        self._poll = poll_seconds
        self.owners = owners
        self._by_hash: dict[str, _Entry] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._by_id: dict[str, str] = {}
        for key in keys:
            self._put(key)
        self._generation = -1
        #: monotonic time of the last full reload; one happens at least every `_reload_s`
        self._loaded = time.monotonic()
        self._reload_s = min(_RELOAD_S, owners.max_age / 10)
        self._used: dict[str, float] = {}
        self._lookups = asyncio.Semaphore(_LOOKUPS)
        self._task = asyncio.get_running_loop().create_task(self._follow())

    @classmethod
    async def open(cls, db: Database, poll_seconds: float, owner_max_age: float) -> KeyRing:
        generation = await stored.generation(db)
        since = datetime.fromtimestamp(time.time() - owner_max_age, UTC)
        owners = Owners(owner_max_age, await stored_owners.seen_since(db, since))
        ring = cls(db, poll_seconds, await stored.active(db), owners)
        ring._generation = generation
        return ring

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):  # best effort: last-used times are a courtesy
            await self._flush_used()
        with contextlib.suppress(Exception):  # best effort: the next sighting writes again
            await self.owners.flush(self._db)

    def _put(self, key: stored.StoredKey) -> _Entry:
        entry = _Entry(key, self.owners.of(key.owner), self.owners.max_age)
        self._by_hash[key.secret_hash] = entry
        self._by_owner.setdefault(key.owner, set()).add(key.secret_hash)
        self._by_id[key.id] = key.secret_hash
        return entry

    def _drop(self, key: stored.StoredKey) -> None:
        self._by_hash.pop(key.secret_hash, None)
        self._by_id.pop(key.id, None)
        hashes = self._by_owner.get(key.owner)
        if hashes is not None:
            hashes.discard(key.secret_hash)
            if not hashes:
                del self._by_owner[key.owner]

    def _rebuild(self, owner: str) -> None:
        for digest in tuple(self._by_owner.get(owner, ())):
            self._put(self._by_hash[digest].key)

    async def identify(self, secret: str) -> Identity:
        """The identity of a key's caller; `KeyRefused` when the key is not valid now."""
        digest = secret_hash(secret)
        entry = self._by_hash.get(digest)
        if entry is None:
            entry = await self._look_up(digest)
        return self._use(entry)

    async def identify_id(self, key_id: str) -> Identity:
        """The identity of the key with this id (a browser signed in with it, mode keys);
        `KeyRefused` when it is revoked, expired or unknown."""
        digest = self._by_id.get(key_id)
        entry = self._by_hash.get(digest) if digest is not None else None
        if entry is None:
            async with self._lookups:
                key = await stored.get(self._db, key_id)
            if key is None or key.revoked_at is not None:
                raise KeyRefused("the API key of this sign-in was revoked")
            entry = self._put(key)
        return self._use(entry)

    def _use(self, entry: _Entry) -> Identity:
        now = time.time()
        if entry.expires is not None and entry.expires <= now:
            raise KeyRefused("API key expired")
        self._used[entry.key.id] = now
        return entry.now(now)

    async def _look_up(self, digest: str) -> _Entry:
        async with self._lookups:
            key = await stored.by_hash(self._db, digest)
        if key is None or key.revoked_at is not None:
            raise KeyRefused("invalid API key: unknown or revoked")
        return self._put(key)

    def added(self, key: stored.StoredKey) -> None:
        """A key this instance just stored or changed: usable here at once, as it is now."""
        self._put(key)

    def revoked(self, key: stored.StoredKey) -> None:
        """A key this instance just revoked: refused here at once."""
        self._drop(key)

    def seen(self, identity: Identity, source: str) -> None:
        """A person seen on a verified connection (`irisgate.identity.owners`): their keys
        carry what they were seen with, here at once, elsewhere within the convergence bound."""
        if self.owners.seen(identity, source) and identity.login_name in self._by_owner:
            self._rebuild(identity.login_name)

    async def refresh(self) -> None:
        """Store new sightings; reload every key when another instance changed one (or a
        person's attributes) since the last look, and at least every `_reload_s`."""
        await self.owners.flush(self._db)
        generation = await stored.generation(self._db)
        stale = time.monotonic() - self._loaded >= self._reload_s
        if generation != self._generation or stale:
            changed = await self.owners.reload(self._db)
            if generation != self._generation:
                keys = await stored.active(self._db)
                self._by_hash, self._by_owner, self._by_id = {}, {}, {}
                for key in keys:
                    self._put(key)
            else:
                for owner in changed:
                    self._rebuild(owner)
            self._generation = generation
            self._loaded = time.monotonic()
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
        #: whether the mode's identities are sightings of key owners (a tailnet WhoIs)
        self._sightings = inner.mode == "tailscale"

    async def resolve(self, client: tuple[str, int] | None, headers: Headers) -> Identity:
        secret = key_in(headers)
        if secret is not None:
            return await self.ring.identify(secret)
        identity = await self._inner.resolve(client, headers)
        if identity.key is not None:  # a browser signed in with a key (mode keys)
            try:
                return await self.ring.identify_id(identity.key.id)
            except KeyRefused as exc:
                raise SignInRequired(f"your sign-in has ended ({exc}): sign in again") from None
        if self._sightings:
            self.ring.seen(identity, self.mode)
        return identity

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
