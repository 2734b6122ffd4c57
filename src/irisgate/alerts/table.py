"""The rows of alerts, who read them, and their deliveries (see `irisgate.alerts`).

Every write is one short transaction. `raise_alert` inserts the next episode of an alert
with `ON CONFLICT DO NOTHING`: two instances that both see a crossing try the same episode
and one insert wins; only the winner queues the deliveries (in the same transaction, so an
alert is never left without them). `claim` takes due deliveries for one instance with
`UPDATE … RETURNING`, on PostgreSQL over rows locked `FOR UPDATE SKIP LOCKED`, so two
instances never send the same delivery at once; a claim expires (`CLAIM_SECONDS`), so the
deliveries of an instance that died are taken up by another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection

from irisgate.alerts.signal import Signal
from irisgate.store.database import Database
from irisgate.store.tables import alert_deliveries, alert_reads, alerts, conflict_insert

_T = TypeVar("_T")
#: how long an instance holds the deliveries it claimed before another may take them
CLAIM_SECONDS = 120
#: most deliveries one claim takes
CLAIM_BATCH = 20
#: the longest error text kept for a delivery
ERROR_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed delivery with what it delivers."""

    id: int
    channel: str
    attempts: int  # before this one
    alert: dict[str, Any]


async def _write(db: Database, fn: Callable[[Connection], _T]) -> _T:
    if db.writes_in_thread:
        return await db.write_in_thread(fn)
    async with db.begin() as conn:
        return await conn.run_sync(fn)


async def raise_alert(
    db: Database, signal: Signal, channels: Iterable[str], now: datetime
) -> int | None:
    """Raise `signal`'s alert unless it is raised and not cleared: the new alert's id, or
    None when it was raised already (here or by another instance)."""
    return await _write(db, partial(_raise, signal=signal, channels=tuple(channels), now=now))


def _raise(
    conn: Connection, *, signal: Signal, channels: tuple[str, ...], now: datetime
) -> int | None:
    latest = conn.execute(
        select(alerts.c.episode, alerts.c.cleared_at)
        .where(_same(signal))
        .order_by(alerts.c.episode.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.cleared_at is None:
        return None
    episode = 1 if latest is None else latest.episode + 1
    statement = (
        conflict_insert(conn.dialect.name, alerts)
        .values(
            kind=signal.kind,
            subject=signal.subject,
            threshold=signal.threshold,
            episode=episode,
            severity=signal.severity,
            message=signal.message,
            login_name=signal.login_name,
            raised_at=now,
        )
        .on_conflict_do_nothing(index_elements=["kind", "subject", "threshold", "episode"])
        .returning(alerts.c.id)
    )
    alert_id = conn.execute(statement).scalar()
    if alert_id is None:
        return None
    if channels:
        conn.execute(
            alert_deliveries.insert(),
            [{"alert_id": alert_id, "channel": c, "next_attempt_at": now} for c in channels],
        )
    return int(alert_id)


async def clear_alert(db: Database, signal: Signal, now: datetime) -> int:
    """Mark `signal`'s raised alert cleared (re-armed); how many rows that changed."""

    def clear(conn: Connection) -> int:
        result = conn.execute(
            update(alerts)
            .where(_same(signal), alerts.c.cleared_at.is_(None))
            .values(cleared_at=now)
        )
        return int(result.rowcount)

    return await _write(db, clear)


def _same(signal: Signal) -> Any:
    return and_(
        alerts.c.kind == signal.kind,
        alerts.c.subject == signal.subject,
        alerts.c.threshold == signal.threshold,
    )


async def raised(db: Database, now: datetime) -> set[tuple[str, str, str]]:
    """The keys of the alerts raised and not cleared (spend spikes: of the last two days
    only; one of an older day is never signalled again)."""
    recent = or_(alerts.c.kind != "spend_spike", alerts.c.raised_at >= now - timedelta(days=2))
    async with db.connect() as conn:
        rows = await conn.execute(
            select(alerts.c.kind, alerts.c.subject, alerts.c.threshold).where(
                alerts.c.cleared_at.is_(None), recent
            )
        )
        return {(r.kind, r.subject, r.threshold) for r in rows}


async def listing(
    db: Database, *, login_name: str | None, reader: str, limit: int, before: int | None
) -> list[dict[str, Any]]:
    """Alerts newest first: `login_name`'s own (None: all of them), each with whether
    `reader` read it and, for admins' lists, its deliveries."""
    read = (
        select(alert_reads.c.alert_id)
        .where(alert_reads.c.alert_id == alerts.c.id, alert_reads.c.login_name == reader)
        .exists()
    )
    query = select(alerts, read.label("read")).order_by(alerts.c.id.desc()).limit(limit)
    if login_name is not None:
        query = query.where(alerts.c.login_name == login_name)
    if before is not None:
        query = query.where(alerts.c.id < before)
    async with db.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
        if login_name is None and rows:
            deliveries = await conn.execute(
                select(alert_deliveries)
                .where(alert_deliveries.c.alert_id.in_([r["id"] for r in rows]))
                .order_by(alert_deliveries.c.id)
            )
            by_alert: dict[int, list[dict[str, Any]]] = {}
            for d in deliveries:
                by_alert.setdefault(d.alert_id, []).append(_delivery(d._mapping))
            for row in rows:
                row["deliveries"] = by_alert.get(row["id"], [])
    return rows


async def unread(db: Database, *, login_name: str | None, reader: str) -> int:
    """How many alerts of the list `listing` gives `reader` are unread."""
    read = (
        select(alert_reads.c.alert_id)
        .where(alert_reads.c.alert_id == alerts.c.id, alert_reads.c.login_name == reader)
        .exists()
    )
    query = select(func.count()).select_from(alerts).where(~read)
    if login_name is not None:
        query = query.where(alerts.c.login_name == login_name)
    async with db.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def failed_deliveries(db: Database, limit: int) -> list[dict[str, Any]]:
    """Deliveries given up, and those failing and still retried, newest first."""
    query = (
        select(alert_deliveries, alerts.c.kind, alerts.c.subject, alerts.c.message)
        .join(alerts, alerts.c.id == alert_deliveries.c.alert_id)
        .where(alert_deliveries.c.delivered_at.is_(None), alert_deliveries.c.last_error != "")
        .order_by(alert_deliveries.c.id.desc())
        .limit(limit)
    )
    async with db.connect() as conn:
        return [
            {
                **_delivery(r._mapping),
                "alert_id": r.alert_id,
                "kind": r.kind,
                "subject": r.subject,
                "message": r.message,
            }
            for r in await conn.execute(query)
        ]


def _delivery(row: Any) -> dict[str, Any]:
    state = "delivered" if row["delivered_at"] else "failed" if row["failed_at"] else "pending"
    return {
        "id": row["id"],
        "channel": row["channel"],
        "state": state,
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "next_attempt_at": None
        if row["delivered_at"] or row["failed_at"]
        else row["next_attempt_at"],
        "delivered_at": row["delivered_at"],
        "failed_at": row["failed_at"],
    }


async def mark_read(
    db: Database, *, reader: str, ids: list[int] | None, login_name: str | None, now: datetime
) -> int:
    """Mark alerts read for `reader`: those of `ids` (None: every alert of the reader's
    list), only among alerts `login_name` may see (None: all). How many became read."""

    def mark(conn: Connection) -> int:
        query = select(alerts.c.id)
        if login_name is not None:
            query = query.where(alerts.c.login_name == login_name)
        if ids is not None:
            query = query.where(alerts.c.id.in_(ids))
        visible = [row.id for row in conn.execute(query)]
        if not visible:
            return 0
        statement = (
            conflict_insert(conn.dialect.name, alert_reads)
            .values([{"alert_id": i, "login_name": reader, "read_at": now} for i in visible])
            .on_conflict_do_nothing(index_elements=["alert_id", "login_name"])
        )
        return int(conn.execute(statement).rowcount)

    return await _write(db, mark)


async def claim(db: Database, now: datetime) -> list[Due]:
    """Take up to CLAIM_BATCH due deliveries for this instance (see the module doc)."""

    def take(conn: Connection) -> list[tuple[int, int, str, int]]:
        due = (
            select(alert_deliveries.c.id)
            .where(_claimable(now))
            .order_by(alert_deliveries.c.next_attempt_at, alert_deliveries.c.id)
            .limit(CLAIM_BATCH)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        )
        ids = [row.id for row in conn.execute(due)]
        if not ids:
            return []
        taken = conn.execute(
            update(alert_deliveries)
            .where(alert_deliveries.c.id.in_(ids), _claimable(now))
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .returning(
                alert_deliveries.c.id,
                alert_deliveries.c.alert_id,
                alert_deliveries.c.channel,
                alert_deliveries.c.attempts,
            )
        )
        return [(r.id, r.alert_id, r.channel, r.attempts) for r in taken]

    taken = await _write(db, take)
    if not taken:
        return []
    async with db.connect() as conn:
        rows = await conn.execute(select(alerts).where(alerts.c.id.in_({t[1] for t in taken})))
        by_id = {row.id: dict(row._mapping) for row in rows}
    return [Due(i, channel, attempts, by_id[alert_id]) for i, alert_id, channel, attempts in taken]


def _claimable(now: datetime) -> Any:
    return and_(
        alert_deliveries.c.delivered_at.is_(None),
        alert_deliveries.c.failed_at.is_(None),
        alert_deliveries.c.next_attempt_at <= now,
        or_(alert_deliveries.c.claimed_until.is_(None), alert_deliveries.c.claimed_until < now),
    )


async def delivered(db: Database, delivery: int, now: datetime) -> None:
    await _write(
        db,
        lambda conn: conn.execute(
            update(alert_deliveries)
            .where(alert_deliveries.c.id == delivery)
            .values(
                delivered_at=now,
                attempts=alert_deliveries.c.attempts + 1,
                claimed_until=None,
            )
        ),
    )


async def failed(
    db: Database, delivery: int, error: str, *, retry_at: datetime | None, now: datetime
) -> None:
    """Record a failed attempt: retried at `retry_at`, or given up when it is None."""
    values: dict[str, Any] = {
        "attempts": alert_deliveries.c.attempts + 1,
        "last_error": error[:ERROR_LIMIT],
        "claimed_until": None,
    }
    if retry_at is None:
        values["failed_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    await _write(
        db,
        lambda conn: conn.execute(
            update(alert_deliveries).where(alert_deliveries.c.id == delivery).values(values)
        ),
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
