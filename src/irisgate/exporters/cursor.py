"""The export cursor: which request records an exporter has delivered, in the database.

Exactly once, across restarts, outages, crashes and several instances sharing a database:

1. `claim`: pick the oldest records not yet exported (`requests.exported_at IS NULL`, in id
   order, at most `limit`), and store their ids and the object key in the exporter's
   `export_state` row — only if no batch is pending there (a conditional update, so of two
   instances exactly one claims).
2. The caller uploads the batch under that key.
3. `complete`: in one transaction, mark exactly those records exported, advance `last_id`
   and clear the pending batch.

A crash or outage between 1 and 3 leaves the batch pending; the next `claim` (this instance
after a restart, or another one) returns the same ids under the same key, so the re-upload
overwrites the same object with the same records instead of adding a second copy. Marking
by id list (not by range) matters on PostgreSQL, where ids from concurrent transactions
become visible out of order: a row committed late with a lower id is simply in a later batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from irisgate.store.database import Database
from irisgate.store.tables import captures, conflict_insert, export_state, requests

#: ids per `IN (...)` list, well under SQLite's and asyncpg's parameter limits
_ID_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Batch:
    key: str  # object key, fixed when the batch was claimed
    ids: tuple[int, ...]
    rows: list[dict[str, Any]]  # `requests` joined with `captures` (see `_rows`)


async def claim(
    db: Database, exporter: str, limit: int, make_key: Callable[[int, int, datetime], str]
) -> Batch | None:
    """The pending batch of `exporter`, else a newly claimed one; None when there is nothing
    to export (or another instance claimed the records first)."""
    async with db.begin() as conn:
        state = await _state(conn, exporter)
        if state["batch_key"] is not None:
            ids = tuple(int(i) for i in state["batch_ids"].split(",") if i)
            return Batch(state["batch_key"], ids, await _rows(conn, ids))
        found = await conn.execute(
            select(requests.c.id)
            .where(requests.c.exported_at.is_(None))
            .order_by(requests.c.id)
            .limit(limit)
        )
        ids = tuple(int(i) for i in found.scalars())
        if not ids:
            return None
        key = make_key(ids[0], ids[-1], datetime.now(UTC))
        claimed = await conn.execute(
            update(export_state)
            .where(export_state.c.exporter == exporter, export_state.c.batch_key.is_(None))
            .values(batch_key=key, batch_ids=",".join(map(str, ids)), updated_at=_now())
        )
        if claimed.rowcount != 1:
            return None
        return Batch(key, ids, await _rows(conn, ids))


async def complete(db: Database, exporter: str, batch: Batch) -> bool:
    """Record `batch` as delivered. False when it was no longer pending (another instance
    completed it first: nothing changes)."""
    newest = max(batch.ids, default=0)
    async with db.begin() as conn:
        done = await conn.execute(
            update(export_state)
            .where(export_state.c.exporter == exporter, export_state.c.batch_key == batch.key)
            .values(
                batch_key=None,
                batch_ids=None,
                last_id=case(
                    (export_state.c.last_id > newest, export_state.c.last_id), else_=newest
                ),
                exported_total=export_state.c.exported_total + len(batch.ids),
                updated_at=_now(),
            )
        )
        if done.rowcount != 1:
            return False
        now = _now()
        for start in range(0, len(batch.ids), _ID_CHUNK):
            chunk = batch.ids[start : start + _ID_CHUNK]
            await conn.execute(
                update(requests)
                .where(requests.c.id.in_(chunk), requests.c.exported_at.is_(None))
                .values(exported_at=now)
            )
        return True


async def state(db: Database, exporter: str) -> dict[str, Any]:
    """`export_state` of `exporter` (created empty when missing)."""
    async with db.begin() as conn:
        return await _state(conn, exporter)


async def _state(conn: AsyncConnection, exporter: str) -> dict[str, Any]:
    query = select(export_state).where(export_state.c.exporter == exporter)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        await conn.execute(_insert_if_missing(conn, exporter))
        row = (await conn.execute(query)).mappings().one()
    return dict(row)


def _insert_if_missing(conn: AsyncConnection, exporter: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the connection's dialect (instances may race)."""
    values = {"exporter": exporter, "last_id": 0, "exported_total": 0}
    return (
        conflict_insert(conn.dialect.name, export_state).values(**values).on_conflict_do_nothing()
    )


async def _rows(conn: AsyncConnection, ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """The requests rows of `ids` with their captures, in id order."""
    capture_columns = [c for c in captures.c if c.name != "request_id"]
    rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        query = (
            select(requests, captures.c.request_id.label("capture_request_id"), *capture_columns)
            .select_from(
                requests.outerjoin(captures, and_(captures.c.request_id == requests.c.request_id))
            )
            .where(requests.c.id.in_(chunk))
            .order_by(requests.c.id)
        )
        rows.extend(dict(row) for row in (await conn.execute(query)).mappings())
    return rows


def _now() -> datetime:
    return datetime.now(UTC)
