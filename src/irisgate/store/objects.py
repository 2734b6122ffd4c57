"""The `openai_objects` table: OpenAI files and batches and who created them.

Written on the request path of the calls that create, change or delete such an object (low
volume, and the owner must be known to every instance before the client can use the id);
read by the calls that name one and by the list calls, which irisgate answers from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, or_, select, update

from irisgate.store.database import Database
from irisgate.store.tables import openai_objects


@dataclass(frozen=True, slots=True)
class OwnedObject:
    """One file or batch, as irisgate recorded it."""

    object_id: str
    kind: str  # file | batch
    provider: str
    login_name: str
    key_id: str = ""
    purpose: str = ""
    models: tuple[str, ...] = ()
    batch_id: str | None = None
    object: bytes = b"{}"  # the object as last relayed (JSON)
    request_id: str = ""
    created_at: datetime | None = None
    charged_at: datetime | None = None
    #: a placeholder object (a batch's output file before anyone retrieved it): saved only
    #: when the id is new, never over the object a retrieve gave
    stub: bool = False

    @property
    def charges(self) -> bool:
        """A batch output file whose results are not charged yet (gateway/objects.py)."""
        return self.purpose == "batch_output" and self.charged_at is None


def _row(obj: OwnedObject) -> dict[str, Any]:
    return {
        "object_id": obj.object_id,
        "kind": obj.kind,
        "provider": obj.provider,
        "login_name": obj.login_name,
        "key_id": obj.key_id,
        "purpose": obj.purpose,
        "models": orjson.dumps(list(obj.models)).decode(),
        "batch_id": obj.batch_id,
        "object": obj.object.decode(),
        "request_id": obj.request_id,
        "created_at": obj.created_at or datetime.now(UTC),
        "charged_at": obj.charged_at,
    }


def _owned(row: Any) -> OwnedObject:
    models = orjson.loads(row["models"])
    return OwnedObject(
        object_id=row["object_id"],
        kind=row["kind"],
        provider=row["provider"],
        login_name=row["login_name"],
        key_id=row["key_id"],
        purpose=row["purpose"],
        models=tuple(m for m in models if isinstance(m, str)) if isinstance(models, list) else (),
        batch_id=row["batch_id"],
        object=row["object"].encode(),
        request_id=row["request_id"],
        created_at=row["created_at"],
        charged_at=row["charged_at"],
    )


async def save(db: Database, obj: OwnedObject) -> None:
    """Insert `obj`; an id already known keeps its creator and only takes the new object
    (a stub changes nothing)."""
    async with db.begin() as conn:
        found = await conn.execute(
            select(openai_objects.c.object_id).where(openai_objects.c.object_id == obj.object_id)
        )
        if found.first() is None:
            await conn.execute(openai_objects.insert().values(**_row(obj)))
        elif not obj.stub:
            await conn.execute(
                update(openai_objects)
                .where(openai_objects.c.object_id == obj.object_id)
                .values(object=obj.object.decode())
            )


async def find(db: Database, object_id: str) -> OwnedObject | None:
    async with db.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(openai_objects).where(openai_objects.c.object_id == object_id)
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else _owned(row)


async def remove(db: Database, object_id: str) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(openai_objects).where(openai_objects.c.object_id == object_id))


async def mark_charged(db: Database, object_id: str) -> bool:
    """Mark a batch output file's results charged; False when they already were (by this
    or another instance), so that results are charged once however often they are read."""
    async with db.begin() as conn:
        result = await conn.execute(
            update(openai_objects)
            .where(openai_objects.c.object_id == object_id, openai_objects.c.charged_at.is_(None))
            .values(charged_at=datetime.now(UTC))
        )
    return bool(result.rowcount)


async def owned_by(
    db: Database, login_name: str, kind: str, *, limit: int, after: str | None
) -> tuple[list[OwnedObject], bool]:
    """The `kind` objects of `login_name`, newest first, after the object `after` (a
    cursor: the last id of the previous page), at most `limit`; and whether more follow."""
    table = openai_objects
    query = select(table).where(table.c.login_name == login_name, table.c.kind == kind)
    if after is not None:
        cursor = await find(db, after)
        if cursor is not None and cursor.created_at is not None:
            query = query.where(
                or_(
                    table.c.created_at < cursor.created_at,
                    and_(
                        table.c.created_at == cursor.created_at,
                        table.c.object_id < cursor.object_id,
                    ),
                )
            )
    query = query.order_by(table.c.created_at.desc(), table.c.object_id.desc()).limit(limit + 1)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    found = [_owned(row) for row in rows]
    return found[:limit], len(found) > limit
