"""Key owners as last seen: the groups and aperture capabilities a person's keys carry.

A key acts as its owner, never more, and that includes the owner's groups and tailnet
capabilities, which only a verified connection tells: tailscaled's WhoIs of the person's
most recent request on the tailnet (mode tailscale; tags never, a user's key is not a
node), or the groups of their latest sign-in (mode oidc). `Owners` keeps each person's
latest sighting in memory; the key ring builds a key's identity from it, so a key hit costs
no database round trip.

The latest sighting wins: a person seen with fewer groups has fewer on their keys at once
on this instance, and on the others once the sighting is stored (the next key-ring poll
writes it and raises the key generation, which every instance follows). A sighting that
repeats what is known is not written again, except to move `seen_at` forward every
`confirm` seconds. Attributes older than `max_age` are not used: the key then carries its
owner's login only (`--key-owner-max-age`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from irisgate.identity import APERTURE_CAP, Identity, canonical_capmap
from irisgate.store import owners as stored
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.keys")
#: the most sightings kept for the next write (one per person; more are dropped and logged)
MAX_PENDING = 10_000


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a person's keys carry besides the login, and until when they may."""

    groups: tuple[str, ...]
    capmap: Mapping[str, tuple[Any, ...]]
    capmap_key: str
    seen_at: float  # epoch seconds
    #: the `capmap_key` of the identity they were taken from (the whole CapMap), for the
    #: per-request comparison
    raw_key: str = ""
    #: monotonic time this instance last stored or loaded them
    confirmed: float = 0.0


def _aperture(capmap: Mapping[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    caps = capmap.get(APERTURE_CAP)
    return {APERTURE_CAP: tuple(caps)} if caps else {}


def _loaded(row: stored.Sighting, confirmed: float) -> Attributes:
    capmap: dict[str, tuple[Any, ...]] = {}
    if row.capmap:
        raw = orjson.loads(row.capmap)
        if isinstance(raw, dict) and isinstance(raw.get(APERTURE_CAP), list):
            capmap = {APERTURE_CAP: tuple(raw[APERTURE_CAP])}
    return Attributes(
        groups=row.groups,
        capmap=capmap,
        capmap_key=canonical_capmap(capmap),
        seen_at=row.seen_at.timestamp(),
        raw_key=canonical_capmap(capmap),
        confirmed=confirmed,
    )


class Owners:
    """Every person's latest sighting, and the ones not stored yet."""

    def __init__(self, max_age: float, rows: Iterable[stored.Sighting]) -> None:
        self.max_age = max_age
        self._confirm = min(3600.0, max_age / 10)
        clock = time.monotonic()
        self._known: dict[str, Attributes] = {r.login_name: _loaded(r, clock) for r in rows}
        self._pending: dict[str, stored.Sighting] = {}

    def of(self, login: str) -> Attributes | None:
        return self._known.get(login)

    def seen(self, identity: Identity, source: str) -> bool:
        """Take a sighting of a person; True when their keys must be rebuilt (what they
        carry changed, or how long they may). Per request: a dict look-up and compares."""
        if identity.tags or identity.key is not None:
            return False  # a tagged node is not a person; a key's caller is not a sighting
        login = identity.login_name
        known = self._known.get(login)
        clock = time.monotonic()
        if (
            known is not None
            and known.groups == identity.groups
            and known.raw_key == identity.capmap_key
            and clock - known.confirmed < self._confirm
        ):
            return False
        capmap = _aperture(identity.capmap)
        now = datetime.now(UTC)
        self._known[login] = Attributes(
            groups=identity.groups,
            capmap=capmap,
            capmap_key=canonical_capmap(capmap),
            seen_at=now.timestamp(),
            raw_key=identity.capmap_key,
            confirmed=clock,
        )
        if login in self._pending or len(self._pending) < MAX_PENDING:
            self._pending[login] = stored.Sighting(
                login, identity.groups, canonical_capmap(capmap), source, now
            )
        else:
            log.warning("key owner sighting dropped: too many waiting to be stored", source=source)
        return True

    async def flush(self, db: Database) -> None:
        """Store the sightings taken since the last flush (kept for the next on failure)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            await stored.record(db, pending.values())
        except BaseException:
            for login, sighting in pending.items():
                self._pending.setdefault(login, sighting)
            raise

    async def reload(self, db: Database) -> set[str]:
        """Take what other instances stored; the logins whose attributes changed here."""
        since = datetime.fromtimestamp(time.time() - self.max_age, UTC)
        rows = await stored.seen_since(db, since)
        clock = time.monotonic()
        changed: set[str] = set()
        for row in rows:
            if row.login_name in self._pending:
                continue  # a sighting here is newer than anything stored
            known = self._known.get(row.login_name)
            if known is not None and known.seen_at > row.seen_at.timestamp():
                continue
            loaded = _loaded(row, clock)
            if known is not None and (known.groups, known.capmap_key) == (
                loaded.groups,
                loaded.capmap_key,
            ):
                if known.seen_at == loaded.seen_at:
                    continue
                loaded = replace(loaded, raw_key=known.raw_key)
            changed.add(row.login_name)
            self._known[row.login_name] = loaded
        return changed
