"""Statements on a bucket's row and its lease rows, shared by the syncs, manual changes and
journal replays of `irisgate.quotas.balances` (which owns the transactions they run in):
rows created full when missing, locked in name order (so no two transactions deadlock),
leases read after the lock is held, dead leases reclaimed, new balances and leases written,
each a single statement whatever the number of buckets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from irisgate.store.tables import conflict_insert, quota_buckets, quota_leases

#: a lease not renewed for this long belongs to a dead instance and is reclaimed
LEASE_TTL = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """What the config says about one concrete bucket (its template expanded)."""

    name: str
    template: str
    capacity: int
    rate: int
    period_s: int


def locked_row(
    dialect: str, conn: Connection, spec: BucketSpec, now: datetime
) -> tuple[int, datetime]:
    """(balance, refilled_at) of the bucket's row, created full when missing, locked."""
    return locked_rows(dialect, conn, [spec], now)[spec.name]


def locked_rows(
    dialect: str, conn: Connection, specs: list[BucketSpec], now: datetime, *, create: bool = True
) -> dict[str, tuple[int, datetime]]:
    """(balance, refilled_at) of each bucket's row, created full when missing (`create`),
    locked in name order."""
    specs = sorted(specs, key=lambda spec: spec.name)
    if create:
        insert_missing(dialect, conn, specs, now)
    query = (
        select(
            quota_buckets.c.name, quota_buckets.c.balance_nanodollars, quota_buckets.c.refilled_at
        )
        .where(quota_buckets.c.name.in_([spec.name for spec in specs]))
        .order_by(quota_buckets.c.name)
        .with_for_update()
    )
    return {name: (int(balance), since) for name, balance, since in conn.execute(query)}


def insert_missing(dialect: str, conn: Connection, specs: list[BucketSpec], now: datetime) -> None:
    """Create the rows of buckets never seen, full (existing rows are left alone)."""
    if not specs:
        return
    specs = sorted(specs, key=lambda spec: spec.name)
    conn.execute(
        conflict_insert(dialect, quota_buckets)
        .values(
            [
                {
                    "name": spec.name,
                    "template": spec.template,
                    "balance_nanodollars": spec.capacity,
                    "capacity_nanodollars": spec.capacity,
                    "refilled_at": now,
                    "updated_at": now,
                }
                for spec in specs
            ]
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )


def locked_with_leases(
    dialect: str, conn: Connection, specs: list[BucketSpec], instance: str, now: datetime
) -> tuple[dict[str, tuple[int, datetime]], dict[str, dict[str, int]], dict[str, int]]:
    """`_locked_rows`, then the leases of those buckets read after the lock is held (a join
    in the locking statement would read them as they were before waiting for the lock):
    (balance and refilled_at by bucket, live leases by bucket and instance, money of dead
    leases by bucket). The dead leases (not renewed for `LEASE_TTL`, never `instance`'s
    own) are deleted by `_write_leases`, with this instance's own."""
    locked = locked_rows(dialect, conn, specs, now, create=False)
    query = select(
        quota_leases.c.bucket,
        quota_leases.c.instance,
        quota_leases.c.held_nanodollars,
        quota_leases.c.renewed_at,
    ).where(quota_leases.c.bucket.in_(list(locked)))
    live: dict[str, dict[str, int]] = {}
    reclaimed: dict[str, int] = {}
    cutoff = now - LEASE_TTL
    for name, owner, held, renewed in conn.execute(query):
        if owner != instance and renewed < cutoff:
            reclaimed[name] = reclaimed.get(name, 0) + int(held)
        else:
            live.setdefault(name, {})[owner] = int(held)
    return locked, live, reclaimed


def leases(
    conn: Connection, bucket: str, instance: str | None, now: datetime
) -> tuple[dict[str, int], int]:
    """(live leases of `bucket` by instance, money of the dead leases removed first)."""
    leases, reclaimed = leases_of(conn, [bucket], instance, now)
    return leases.get(bucket, {}), reclaimed.get(bucket, 0)


def leases_of(
    conn: Connection, buckets: list[str], instance: str | None, now: datetime
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """(live leases by bucket and instance, money of the dead leases removed first by bucket).

    A lease is dead when not renewed for `LEASE_TTL` (never the caller's own); the caller
    adds the reclaimed money back to the balance it writes."""
    stale = (
        delete(quota_leases)
        .where(quota_leases.c.bucket.in_(buckets))
        .where(quota_leases.c.renewed_at < now - LEASE_TTL)
        .returning(quota_leases.c.bucket, quota_leases.c.held_nanodollars)
    )
    if instance is not None:
        stale = stale.where(quota_leases.c.instance != instance)
    reclaimed: dict[str, int] = {}
    for bucket, held in conn.execute(stale):
        reclaimed[bucket] = reclaimed.get(bucket, 0) + int(held)
    query = select(
        quota_leases.c.bucket, quota_leases.c.instance, quota_leases.c.held_nanodollars
    ).where(quota_leases.c.bucket.in_(buckets))
    live: dict[str, dict[str, int]] = {}
    for bucket, owner, held in conn.execute(query):
        live.setdefault(bucket, {})[owner] = int(held)
    return live, reclaimed


def write(conn: Connection, spec: BucketSpec, balance: int, since: datetime, now: datetime) -> None:
    write_all(conn, [(spec, balance, since)], now)


def write_all(
    conn: Connection, rows: list[tuple[BucketSpec, int, datetime]], now: datetime
) -> None:
    """Every bucket row's new balance: one statement, executed for all rows at once."""
    if not rows:
        return
    statement = (
        update(quota_buckets)
        .where(quota_buckets.c.name == bindparam("b_name"))
        .values(
            balance_nanodollars=bindparam("b_balance"),
            refilled_at=bindparam("b_since"),
            updated_at=now,
            capacity_nanodollars=bindparam("b_capacity"),
            template=bindparam("b_template"),
        )
    )
    conn.execute(
        statement,
        [
            {
                "b_name": spec.name,
                "b_balance": balance,
                "b_since": since,
                "b_capacity": spec.capacity,
                "b_template": spec.template,
            }
            for spec, balance, since in rows
        ],
    )


def write_leases(conn: Connection, instance: str, held: dict[str, int], now: datetime) -> None:
    """This instance's leases of the given buckets: replaced, dropped when empty; the dead
    leases of other instances (reclaimed by the caller, see `_locked_with_leases`) go too."""
    mine_or_dead = (quota_leases.c.instance == instance) | (
        quota_leases.c.renewed_at < now - LEASE_TTL
    )
    conn.execute(
        delete(quota_leases).where(quota_leases.c.bucket.in_(list(held))).where(mine_or_dead)
    )
    rows = [
        {"bucket": bucket, "instance": instance, "held_nanodollars": amount, "renewed_at": now}
        for bucket, amount in held.items()
        if amount
    ]
    if rows:
        conn.execute(insert(quota_leases).values(rows))
