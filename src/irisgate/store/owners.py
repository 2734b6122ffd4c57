"""Key owners' attributes in the database: groups and aperture capabilities as last seen.

One row per login (`owner_attributes`). A sighting whose groups or capabilities differ from
the row's replaces them and raises `api_key_generation` in the same transaction, so every
instance's key ring reloads and a key's owner loses (or gains) a group within the ring's
convergence bound; a sighting that only confirms them moves `seen_at` and nothing else.

Control-plane code only: the key ring reads these rows when it loads, never per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, update

from irisgate.store.database import Database
from irisgate.store.keys import bump
from irisgate.store.tables import conflict_insert, owner_attributes


@dataclass(frozen=True, slots=True)
class Sighting:
    """A person as seen on a verified connection."""

    login_name: str
    groups: tuple[str, ...]
    #: canonical JSON of the aperture capabilities ("" for none)
    capmap: str
    source: str  # tailscale or oidc
    seen_at: datetime


async def record(db: Database, sightings: Iterable[Sighting]) -> int:
    """Store sightings (the latest of each login wins); the number whose attributes changed.
    An older sighting than the stored one is ignored: another instance saw the person since."""
    t = owner_attributes.c
    changed = 0
    async with db.begin() as conn:
        for seen in sightings:
            groups = orjson.dumps(list(seen.groups)).decode()
            query = select(t.groups, t.capmap, t.seen_at).where(t.login_name == seen.login_name)
            row = (await conn.execute(query)).first()
            if row is None:
                first = conflict_insert(conn.dialect.name, owner_attributes).values(
                    login_name=seen.login_name,
                    groups=groups,
                    capmap=seen.capmap,
                    source=seen.source,
                    seen_at=seen.seen_at,
                )
                inserted = await conn.execute(first.on_conflict_do_nothing())
                if inserted.rowcount == 1:
                    changed += 1
                    continue
                # another instance stored this person a moment ago: compare with theirs
                row = (await conn.execute(query)).one()
            if row.seen_at > seen.seen_at:
                continue
            same = row.groups == groups and row.capmap == seen.capmap
            values = {"seen_at": seen.seen_at, "source": seen.source}
            if not same:
                values |= {"groups": groups, "capmap": seen.capmap}
                changed += 1
            await conn.execute(
                update(owner_attributes).where(t.login_name == seen.login_name).values(values)
            )
        if changed:
            await bump(conn)
    return changed


async def seen_since(db: Database, since: datetime) -> list[Sighting]:
    """Every person seen after `since` (older attributes are too stale to act on)."""
    t = owner_attributes.c
    query = select(owner_attributes).where(t.seen_at > since)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        Sighting(
            login_name=row["login_name"],
            groups=tuple(str(g) for g in orjson.loads(row["groups"] or "[]")),
            capmap=row["capmap"],
            source=row["source"],
            seen_at=row["seen_at"],
        )
        for row in rows
    ]
