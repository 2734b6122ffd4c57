"""Config versions: the chain, history, and optimistic concurrency between writers."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from irisgate.store import configs
from irisgate.store.configs import ConfigVersion, StaleVersion
from irisgate.store.database import Database, open_database


async def test_empty_store_has_no_latest(db: Database) -> None:
    assert await configs.latest(db) is None
    assert await configs.history(db) == []
    assert await configs.get(db, 1) is None


async def test_versions_chain_and_history(db: Database) -> None:
    first = await configs.insert(db, '{"a": 1}', "", "default", None)
    second = await configs.insert(db, '{"a": 2}', "alice@example.com", "api", first.id)
    third = await configs.insert(db, '{"a": 3}', "", "file:/etc/irisgate.hujson", second.id)

    assert (first.parent_id, second.parent_id, third.parent_id) == (None, first.id, second.id)
    assert third.hash == hashlib.sha256(b'{"a": 3}').hexdigest() == configs.content_hash('{"a": 3}')
    assert third.created_at.tzinfo is not None
    assert await configs.latest(db) == third
    assert await configs.get(db, second.id) == second

    history = await configs.history(db, limit=2)
    assert [v.id for v in history] == [third.id, second.id]
    assert all(v.content is None for v in history)
    assert history[1].source == "api"
    assert history[1].created_by == "alice@example.com"
    assert history[1].created_at == second.created_at


async def test_insert_on_a_stale_parent_is_refused(db: Database) -> None:
    first = await configs.insert(db, "v1", "", "default", None)
    second = await configs.insert(db, "v2", "", "api", first.id)

    with pytest.raises(StaleVersion) as refused:
        await configs.insert(db, "v2'", "", "api", first.id)
    assert refused.value.parent_id == first.id
    assert refused.value.latest == second

    with pytest.raises(StaleVersion):
        await configs.insert(db, "another root", "", "default", None)
    assert await configs.latest(db) == second


async def test_concurrent_writers_on_the_same_parent_one_wins(db_url: str) -> None:
    # Separate Database objects stand for separate instances sharing one database.
    instances = [await open_database(db_url) for _ in range(4)]
    try:
        root = await configs.insert(instances[0], "v1", "", "default", None)
        outcomes = await asyncio.gather(
            *(
                configs.insert(db, f"edit by {n}", f"user{n}", "api", root.id)
                for n, db in enumerate(instances)
            ),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, ConfigVersion)]
        losers = [o for o in outcomes if isinstance(o, StaleVersion)]
        assert len(winners) == 1, outcomes
        assert len(losers) == len(instances) - 1, outcomes
        assert await configs.latest(instances[1]) == winners[0]
    finally:
        for db in instances:
            await db.close()


async def test_concurrent_first_versions_one_wins(db_url: str) -> None:
    instances = [await open_database(db_url) for _ in range(3)]
    try:
        outcomes = await asyncio.gather(
            *(configs.insert(db, "default", "", "default", None) for db in instances),
            return_exceptions=True,
        )
        assert sum(isinstance(o, ConfigVersion) for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, StaleVersion) for o in outcomes) == 2, outcomes
    finally:
        for db in instances:
            await db.close()


@pytest.mark.parametrize("parent", ["root", "none"])
async def test_the_database_settles_a_race_the_check_missed(
    db: Database, monkeypatch: pytest.MonkeyPatch, parent: str
) -> None:
    """Both writers read the same latest version before either inserted: the unique
    constraint (or the single-root index) refuses the second insert."""
    if parent == "root":
        root: ConfigVersion | None = await configs.insert(db, "v1", "", "default", None)
        winner = await configs.insert(db, "v2", "", "api", root.id if root else None)
    else:
        root = None
        winner = await configs.insert(db, "v1", "", "default", None)
    real_latest = configs.latest
    calls = 0

    async def latest_as_read_before_the_other_insert(db: Database) -> ConfigVersion | None:
        nonlocal calls
        calls += 1
        return root if calls == 1 else await real_latest(db)

    monkeypatch.setattr(configs, "latest", latest_as_read_before_the_other_insert)
    with pytest.raises(StaleVersion) as refused:
        await configs.insert(db, "v2'", "", "api", root.id if root else None)
    assert refused.value.latest == winner
    monkeypatch.undo()
    assert await configs.latest(db) == winner
