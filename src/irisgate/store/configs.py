"""Configuration versions: the repository behind config history and convergence.

Versions form a chain: each new version names the one it replaced (`parent_id`), and the
newest is the one in force. Writers use optimistic concurrency: they read `latest()`, build
a new version from it, and `insert(..., parent_id=latest.id)`. When someone else got there
first, `insert` raises `StaleVersion` and the writer re-reads and decides again. The database
enforces it (a unique `parent_id`, and a single root), so the rule holds across instances
that share one PostgreSQL database.

Control-plane code only: nothing here runs on the request path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import RowMapping, select
from sqlalchemy import insert as sa_insert
from sqlalchemy.exc import IntegrityError

from irisgate.store.database import Database
from irisgate.store.tables import config_versions


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    """One stored configuration version.

    `content` is None in `history()` listings (they skip the text to stay small).
    `source` says where it came from: `"default"`, `"file:<path>"`, `"api"`, ...
    """

    id: int
    parent_id: int | None
    hash: str
    content: str | None
    created_at: datetime
    created_by: str
    source: str


class StaleVersion(Exception):
    """The version a writer meant to replace is no longer the newest.

    `parent_id` is what the writer passed; `latest` is the newest version as read after the
    conflict (None only if the table is still empty).
    """

    def __init__(self, parent_id: int | None, latest: ConfigVersion | None) -> None:
        newest = latest.id if latest is not None else None
        super().__init__(f"config version {parent_id} is not the latest (the latest is {newest})")
        self.parent_id = parent_id
        self.latest = latest


def content_hash(content: str) -> str:
    """SHA-256 of the UTF-8 bytes of `content`, as 64 lowercase hex digits."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


_SUMMARY_COLUMNS = (
    config_versions.c.id,
    config_versions.c.parent_id,
    config_versions.c.hash,
    config_versions.c.created_at,
    config_versions.c.created_by,
    config_versions.c.source,
)


async def latest(db: Database) -> ConfigVersion | None:
    """The newest version (the one in force), or None when there is none yet."""
    query = select(config_versions).order_by(config_versions.c.id.desc()).limit(1)
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _version(row) if row is not None else None


async def latest_summary(db: Database) -> ConfigVersion | None:
    """The newest version without its content: a cheap poll for "has anything changed?"."""
    query = select(*_SUMMARY_COLUMNS).order_by(config_versions.c.id.desc()).limit(1)
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _version(row) if row is not None else None


async def get(db: Database, id: int) -> ConfigVersion | None:
    """The version with this id, content included, or None."""
    query = select(config_versions).where(config_versions.c.id == id)
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _version(row) if row is not None else None


async def history(db: Database, limit: int = 50) -> list[ConfigVersion]:
    """Up to `limit` versions, newest first, without their content."""
    query = (
        select(*_SUMMARY_COLUMNS)
        .order_by(config_versions.c.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_version(row) for row in rows]


async def insert(
    db: Database,
    content: str,
    created_by: str,
    source: str,
    parent_id: int | None,
) -> ConfigVersion:
    """Store `content` as the version that replaces `parent_id` (None: the first version).

    Raises `StaleVersion` when `parent_id` is not the newest version, including when another
    writer (in this process or another instance) inserted a replacement of the same parent
    between our check and our insert: the database's unique constraint decides, and exactly
    one of such concurrent writers succeeds. Identical content is stored again if asked; the
    caller compares `content_hash` with the latest to skip no-op versions.
    """
    current = await latest(db)
    if (current.id if current is not None else None) != parent_id:
        raise StaleVersion(parent_id, current)
    version = ConfigVersion(
        id=0,
        parent_id=parent_id,
        hash=content_hash(content),
        content=content,
        created_at=datetime.now(UTC),
        created_by=created_by,
        source=source,
    )
    values = {
        "parent_id": version.parent_id,
        "hash": version.hash,
        "content": version.content,
        "created_at": version.created_at,
        "created_by": version.created_by,
        "source": version.source,
    }
    try:
        async with db.begin() as conn:
            result = await conn.execute(sa_insert(config_versions).values(values))
    except IntegrityError as exc:
        # Another writer replaced the same parent first (unique parent_id or single root).
        raise StaleVersion(parent_id, await latest(db)) from exc
    new_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    if not isinstance(new_id, int):
        raise RuntimeError(f"the database returned no id for the new config version: {new_id!r}")
    return replace(version, id=new_id)


def _version(values: RowMapping) -> ConfigVersion:
    return ConfigVersion(
        id=int(values["id"]),
        parent_id=values["parent_id"],
        hash=values["hash"],
        content=values.get("content"),
        created_at=values["created_at"],
        created_by=values["created_by"],
        source=values["source"],
    )
