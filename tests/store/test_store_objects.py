"""The `openai_objects` table on SQLite and PostgreSQL: who created a file or batch, its
newest object, the creator's pages newest first, and a batch's results charged once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from irisgate.store import objects
from irisgate.store.database import Database
from irisgate.store.objects import OwnedObject

START = datetime(2026, 12, 1, tzinfo=UTC)


def _file(object_id: str, login: str, minutes: int, **extra: object) -> OwnedObject:
    body = orjson.dumps({"id": object_id, "object": "file", "v": extra.pop("v", 1)})
    return OwnedObject(
        object_id=object_id,
        kind="file",
        provider="openai",
        login_name=login,
        purpose="batch",
        models=("gpt-4o-mini",),
        object=body,
        request_id="req_1",
        created_at=START + timedelta(minutes=minutes),
        **extra,  # type: ignore[arg-type]
    )


async def test_an_object_keeps_its_creator_and_takes_its_newest_state(db: Database) -> None:
    await objects.save(db, _file("file-a", "alice@example.com", 0))
    await objects.save(db, _file("file-a", "bob@example.com", 1, v=2))  # a retrieve's answer
    found = await objects.find(db, "file-a")
    assert found is not None
    assert found.login_name == "alice@example.com"
    assert found.models == ("gpt-4o-mini",)
    assert orjson.loads(found.object)["v"] == 2
    await objects.save(db, _file("file-a", "alice@example.com", 2, v=3, stub=True))
    again = await objects.find(db, "file-a")
    assert again is not None and orjson.loads(again.object)["v"] == 2  # a stub changes nothing
    await objects.remove(db, "file-a")
    assert await objects.find(db, "file-a") is None


async def test_pages_are_the_creators_newest_first(db: Database) -> None:
    for minute in range(5):
        await objects.save(db, _file(f"file-{minute}", "alice@example.com", minute))
    await objects.save(db, _file("file-bob", "bob@example.com", 10))
    first, more = await objects.owned_by(db, "alice@example.com", "file", limit=2, after=None)
    assert [o.object_id for o in first] == ["file-4", "file-3"] and more
    rest, more = await objects.owned_by(db, "alice@example.com", "file", limit=5, after="file-3")
    assert [o.object_id for o in rest] == ["file-2", "file-1", "file-0"] and not more
    assert await objects.owned_by(db, "alice@example.com", "batch", limit=5, after=None) == (
        [],
        False,
    )


async def test_results_are_charged_once(db: Database) -> None:
    await objects.save(db, _file("file-out", "alice@example.com", 0))
    assert await objects.mark_charged(db, "file-out")
    assert not await objects.mark_charged(db, "file-out")
    assert not await objects.mark_charged(db, "file-unknown")
    found = await objects.find(db, "file-out")
    assert found is not None and found.charged_at is not None
