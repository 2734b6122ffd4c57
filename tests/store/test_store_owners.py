"""Key owners' attributes as last seen: the latest sighting wins, a repeat changes nothing
that other instances must reload, and two instances storing the same person at once both
succeed (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from irisgate.store import keys, owners
from irisgate.store.database import Database, open_database
from irisgate.store.owners import Sighting

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CAPS = '{"tailscale.com/cap/aperture":[{"role":"user"}]}'


def carol(groups: tuple[str, ...], at: datetime, capmap: str = "") -> Sighting:
    return Sighting("carol@example.com", groups, capmap, "tailscale", at)


async def test_the_latest_sighting_wins_and_changes_raise_the_generation(db: Database) -> None:
    before = await keys.generation(db)
    assert await owners.record(db, [carol(("group:eng",), T0, CAPS)]) == 1
    assert await keys.generation(db) == before + 1
    assert await owners.seen_since(db, T0 - timedelta(days=1)) == [carol(("group:eng",), T0, CAPS)]

    # the same attributes again: seen_at moves, nothing for other instances to reload
    later = T0 + timedelta(hours=1)
    assert await owners.record(db, [carol(("group:eng",), later, CAPS)]) == 0
    assert await keys.generation(db) == before + 1
    assert (await owners.seen_since(db, T0))[0].seen_at == later

    # fewer groups, seen later: they replace the old ones
    assert await owners.record(db, [carol((), later + timedelta(minutes=1))]) == 1
    assert await keys.generation(db) == before + 2
    (now,) = await owners.seen_since(db, T0)
    assert (now.groups, now.capmap) == ((), "")

    # an older sighting (another instance, late) does not undo a newer one
    assert await owners.record(db, [carol(("group:eng",), T0, CAPS)]) == 0
    assert (await owners.seen_since(db, T0))[0].groups == ()


async def test_attributes_older_than_the_bound_are_not_read(db: Database) -> None:
    await owners.record(db, [carol(("group:eng",), T0)])
    assert await owners.seen_since(db, T0 + timedelta(seconds=1)) == []


async def test_two_instances_storing_the_same_person_at_once(db: Database, db_url: str) -> None:
    other = await open_database(db_url)
    try:
        await asyncio.gather(
            owners.record(db, [carol(("group:eng",), T0)]),
            owners.record(other, [carol((), T0 + timedelta(seconds=1))]),
        )
    finally:
        await other.close()
    (stored,) = await owners.seen_since(db, T0 - timedelta(days=1))
    assert (stored.groups, stored.seen_at) == ((), T0 + timedelta(seconds=1))
