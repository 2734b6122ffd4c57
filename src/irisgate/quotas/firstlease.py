"""First leases on PostgreSQL: a bucket's row created or debited without queueing.

The first time an instance uses a bucket (or uses it again after it gave its lease back),
it has no lease and nothing to report: it only wants a lease. Through the general sync
(`balances._sync_all`) that takes a transaction of several round trips holding the
bucket's row lock: when many instances start using the same new bucket at once (a shared
team bucket, say, as they start), each waits for the others' transactions, one after the
other, first on the insert that creates the row and then on the row lock.

Here the whole first lease is ONE statement run outside any transaction (autocommit), so a
row is locked only while that statement runs, never across a round trip:

    WITH took AS (INSERT INTO quota_buckets … ON CONFLICT (name) DO UPDATE
                  SET balance = balance - want WHERE balance >= want RETURNING …),
         leased AS (INSERT INTO quota_leases … SELECT … FROM took ON CONFLICT … RETURNING …)
    SELECT … FROM took JOIN leased …

Only buckets this instance holds no lease of take this way (the others are resized by the
general sync). A new bucket's row is created full less the lease; an existing row gives the
lease only if its balance covers it whole (the condition is checked on the row as locked, so
concurrent takers never overdraw it). A bucket whose row cannot give the whole lease
(running low, or owed refill that only the general sync credits) is not returned and goes
through the general sync, as does every report with spending. The statement neither
credits refill nor reclaims dead instances' leases: the next general sync of the bucket
does both, exactly as it would have.

`wanted` carries each bucket's lease in the excluded row: the insert proposes `balance =
capacity - want`, so `want = excluded.capacity - excluded.balance` in the conflict branch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from irisgate.store.database import Database

#: rows (name, template, capacity, want) in name order: rows are locked in that order, as
#: the general sync locks them, so no two syncs deadlock
_FIRST_LEASE = text(
    """
WITH wanted AS (
    SELECT * FROM unnest(
        CAST(:names AS text[]), CAST(:templates AS text[]),
        CAST(:capacities AS bigint[]), CAST(:wants AS bigint[])
    ) AS w(name, template, capacity, want)
    -- a lease this instance holds already is resized by the general sync
    WHERE NOT EXISTS (
        SELECT 1 FROM quota_leases h WHERE h.bucket = w.name AND h.instance = :instance
    )
),
took AS (
    INSERT INTO quota_buckets AS b
        (name, template, balance_nanodollars, capacity_nanodollars, refilled_at, updated_at)
    SELECT name, template, capacity - want, capacity, :now, :now FROM wanted ORDER BY name
    ON CONFLICT (name) DO UPDATE
        SET balance_nanodollars = b.balance_nanodollars
                - (excluded.capacity_nanodollars - excluded.balance_nanodollars),
            updated_at = excluded.updated_at
        WHERE b.balance_nanodollars
                >= excluded.capacity_nanodollars - excluded.balance_nanodollars
    RETURNING b.name, b.balance_nanodollars
),
leased AS (
    INSERT INTO quota_leases AS l (bucket, instance, held_nanodollars, renewed_at)
    SELECT took.name, :instance, wanted.want, :now FROM took JOIN wanted USING (name)
    ON CONFLICT (bucket, instance) DO UPDATE
        SET held_nanodollars = l.held_nanodollars + excluded.held_nanodollars,
            renewed_at = excluded.renewed_at
    RETURNING l.bucket, l.held_nanodollars
)
SELECT took.name, took.balance_nanodollars, leased.held_nanodollars,
    (SELECT coalesce(sum(o.held_nanodollars), 0) FROM quota_leases o
        WHERE o.bucket = took.name AND o.instance <> :instance AND o.renewed_at >= :live),
    (SELECT count(*) FROM quota_leases o
        WHERE o.bucket = took.name AND o.instance <> :instance AND o.renewed_at >= :live)
FROM took JOIN leased ON leased.bucket = took.name
"""
)


async def first_leases(
    db: Database,
    wants: list[tuple[str, str, int, int]],
    *,
    instance: str,
    now: datetime,
    live_since: datetime,
) -> list[tuple[str, int, int, int, int]]:
    """Lease `want` of each bucket `(name, template, capacity, want)` (0 < want <=
    capacity, each name once) in one autocommitted statement; returns, for the buckets
    whose row gave the whole lease, `(name, unleased balance, this instance's lease, other
    instances' live leases, their number)`. Leases renewed before `live_since` are dead
    and not counted."""
    rows = sorted(wants)
    params = {
        "names": [r[0] for r in rows],
        "templates": [r[1] for r in rows],
        "capacities": [r[2] for r in rows],
        "wants": [r[3] for r in rows],
        "instance": instance,
        "now": now,
        "live": live_since,
    }
    async with db.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = await auto.execute(_FIRST_LEASE, params)
        return [
            (str(name), int(balance), int(held), int(others), int(count))
            for name, balance, held, others, count in result
        ]
