"""API keys in the database: made, listed, revoked, and the generation instances poll.

Every change of `api_keys` that matters to other instances (a key made or revoked) raises
`api_key_generation.generation` in the same transaction, so an instance that polls that one
number knows when to reload its key ring. Secrets are never here: only their SHA-256.

Control-plane code only: the request path reads the key ring in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import RowMapping, and_, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from irisgate.store.database import Database
from irisgate.store.tables import api_key_generation, api_keys, conflict_insert


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    secret_hash: str
    prefix: str
    name: str
    owner: str
    service: bool
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str
    models: tuple[str, ...]
    quota: str
    last_used_at: datetime | None


async def generation(db: Database) -> int:
    """The number every change raises: a cheap poll for "has any key changed?"."""
    async with db.connect() as conn:
        value = await conn.scalar(select(api_key_generation.c.generation))
    return int(value or 0)


async def bump(conn: AsyncConnection) -> None:
    """Raise the generation (its one row, id 1, is made by the first change)."""
    statement = conflict_insert(conn.dialect.name, api_key_generation).values(id=1, generation=1)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[api_key_generation.c.id],
            set_={"generation": api_key_generation.c.generation + 1},
        )
    )


async def insert(db: Database, key: StoredKey) -> None:
    values = {
        "id": key.id,
        "secret_hash": key.secret_hash,
        "prefix": key.prefix,
        "name": key.name,
        "owner": key.owner,
        "service": key.service,
        "created_by": key.created_by,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "models": orjson.dumps(list(key.models)).decode() if key.models else "",
        "quota": key.quota,
    }
    async with db.begin() as conn:
        await conn.execute(sa_insert(api_keys).values(values))
        await bump(conn)


async def active(db: Database) -> list[StoredKey]:
    """Every key not revoked (expired ones too: the ring refuses them by their expiry)."""
    query = select(api_keys).where(api_keys.c.revoked_at.is_(None))
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_key(row) for row in rows]


async def by_hash(db: Database, digest: str) -> StoredKey | None:
    query = select(api_keys).where(api_keys.c.secret_hash == digest)
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _key(row) if row is not None else None


async def get(db: Database, key_id: str) -> StoredKey | None:
    query = select(api_keys).where(api_keys.c.id == key_id)
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _key(row) if row is not None else None


async def listed(db: Database, owner: str | None, *, limit: int = 1000) -> list[StoredKey]:
    """Keys of `owner` (every owner's when None), newest first, revoked ones included."""
    query = select(api_keys).order_by(api_keys.c.created_at.desc()).limit(limit)
    if owner is not None:
        query = query.where(api_keys.c.owner == owner)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_key(row) for row in rows]


async def revoke(db: Database, key_id: str, at: datetime, by: str) -> bool:
    """Revoke a key; False when there is no such key or it was revoked already."""
    where = and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    async with db.begin() as conn:
        result = await conn.execute(
            update(api_keys).where(where).values(revoked_at=at, revoked_by=by)
        )
        if result.rowcount != 1:
            return False
        await bump(conn)
    return True


async def set_quota(db: Database, key_id: str, quota: str) -> StoredKey | None:
    """Give a key (not revoked) the budget of quota template `quota` ("" for none); the key
    as it now is, None when there is no such key or it is revoked."""
    where = and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    async with db.begin() as conn:
        result = await conn.execute(update(api_keys).where(where).values(quota=quota))
        if result.rowcount != 1:
            return None
        await bump(conn)
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings()
        return _key(row.one())


async def mark_used(db: Database, used: Iterable[tuple[str, datetime]]) -> None:
    """Record when keys were last used (no generation change: nothing to reload)."""
    async with db.begin() as conn:
        for key_id, at in used:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=at)
            )


def _key(row: RowMapping) -> StoredKey:
    models = tuple(str(m) for m in orjson.loads(row["models"])) if row["models"] else ()
    return StoredKey(
        id=row["id"],
        secret_hash=row["secret_hash"],
        prefix=row["prefix"],
        name=row["name"],
        owner=row["owner"],
        service=bool(row["service"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
        models=models,
        quota=row["quota"],
        last_used_at=row["last_used_at"],
    )
