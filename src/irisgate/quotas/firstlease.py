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

A first lease is sized by the instances already leasing the bucket (`share` > 0): when
there are `n` of them, at most `3 (unleased + their leases) / (4 x share x (n + 1))`, three
quarters of the size all their leases shrink to once this one joins
(`ledger.Bucket.lease_size`), as read in the statement's snapshot (before any row lock). So
the first leases of instances joining one after another hold together less than half of the
bucket (a tenth of it for the first, then `3 / (16 k)` for k = 2 .. N: 42 % for 8 instances,
49 % for 12), and no instance's first report finds its lease oversized (see
`ledger.Ledger._oversized`); nor does it need a top-up (that is for a lease under half its
size). Before, each took a tenth of the capacity, eight of them 80 % of it, and each one's
first report gave the excess back through the general sync, all at the same moment,
queueing on the bucket's row. Instances whose statements run at the same moment do not see
each other's leases (the snapshot predates them) and may still take more.

`wanted` carries each bucket's lease in the excluded row: the insert proposes `balance =
capacity - want`, so `want = excluded.capacity - excluded.balance` in the conflict branch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from irisgate.store.database import Database

#: rows (name, template, capacity, want, share) in name order: rows are locked in that order, as
#: the general sync locks them, so no two syncs deadlock
_FIRST_LEASE = text(
    """
WITH wanted AS (
    SELECT * FROM unnest(
        CAST(:names AS text[]), CAST(:templates AS text[]),
        CAST(:capacities AS bigint[]), CAST(:wants AS bigint[]), CAST(:shares AS bigint[])
    ) AS w(name, template, capacity, want, share)
    -- a lease this instance holds already is resized by the general sync
    WHERE NOT EXISTS (
        SELECT 1 FROM quota_leases h WHERE h.bucket = w.name AND h.instance = :instance
    )
),
sized AS (  -- 3/4 of what the leases of the instances sharing the bucket shrink to
    SELECT w.name, w.template, w.capacity,
        CASE WHEN w.share > 0 AND o.n > 0 THEN LEAST(w.want, GREATEST(1,
            3 * (coalesce(b.balance_nanodollars, 0) + o.held) / (4 * w.share * (o.n + 1))))
        ELSE w.want END AS want
    FROM wanted w
    LEFT JOIN quota_buckets b ON b.name = w.name
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, CAST(coalesce(sum(h.held_nanodollars), 0) AS bigint) AS held
        FROM quota_leases h
        WHERE h.bucket = w.name AND h.instance <> :instance AND h.renewed_at >= :live
    ) AS o
),
took AS (
    INSERT INTO quota_buckets AS b
        (name, template, balance_nanodollars, capacity_nanodollars, refilled_at, updated_at)
    SELECT name, template, capacity - want, capacity, :now, :now FROM sized ORDER BY name
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
    SELECT took.name, :instance, sized.want, :now FROM took JOIN sized USING (name)
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
    wants: list[tuple[str, str, int, int, int]],
    *,
    instance: str,
    now: datetime,
    live_since: datetime,
) -> list[tuple[str, int, int, int, int]]:
    """Lease `want` of each bucket `(name, template, capacity, want, share)` (0 < want <=
    capacity, each name once; `share` > 0: less when other instances lease the bucket, see
    the module doc) in one autocommitted statement; returns, for the buckets
    whose row gave the whole lease, `(name, unleased balance, this instance's lease, other
    instances' live leases, their number)`. Leases renewed before `live_since` are dead
    and not counted."""
    rows = sorted(wants)
    params = {
        "names": [r[0] for r in rows],
        "templates": [r[1] for r in rows],
        "capacities": [r[2] for r in rows],
        "wants": [r[3] for r in rows],
        "shares": [r[4] for r in rows],
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
