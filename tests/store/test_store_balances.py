"""Quota balances in the database: leases, reported spending, refill, manual changes, and the
money of instances that died holding a lease. Time is passed in, so no test waits for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from irisgate.quotas import balances
from irisgate.quotas.balances import LEASE_TTL, BucketSpec
from irisgate.store.database import Database

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SPEC = BucketSpec("team", "team", capacity=1000, rate=0, period_s=86400)


async def test_a_new_bucket_starts_full_and_leases_come_out_of_it(db: Database) -> None:
    got = await balances.sync(db, SPEC, instance="a", spent=0, want=100, now=T0)
    assert (got.held, got.unleased, got.total) == (100, 900, 1000)
    got = await balances.sync(db, SPEC, instance="a", spent=30, want=100, now=T0)
    assert (got.held, got.unleased, got.total) == (100, 870, 970)
    rows = await balances.rows(db)
    assert rows["team"].balance == 970


async def test_spending_beyond_the_lease_is_debited_and_the_balance_may_go_negative(
    db: Database,
) -> None:
    await balances.sync(db, SPEC, instance="a", spent=0, want=1000, now=T0)
    got = await balances.sync(db, SPEC, instance="a", spent=1040, want=100, now=T0)
    assert (got.held, got.unleased, got.total) == (0, -40, -40)


async def test_two_instances_share_one_balance_and_give_leases_back(db: Database) -> None:
    await balances.sync(db, SPEC, instance="a", spent=0, want=600, now=T0)
    got_b = await balances.sync(db, SPEC, instance="b", spent=0, want=600, now=T0)
    assert got_b.held == 400  # only what A left
    await balances.sync(db, SPEC, instance="a", spent=250, want=0, now=T0)
    got = await balances.sync(db, SPEC, instance="b", spent=400, want=0, now=T0)
    assert (got.held, got.total) == (0, 350)


async def test_concurrent_syncs_never_lose_spending(db: Database) -> None:
    await asyncio.gather(
        *(
            balances.sync(db, SPEC, instance=f"i{n % 3}", spent=n % 3, want=10, now=T0)
            for n in range(30)
        )
    )
    for name in ("i0", "i1", "i2"):
        await balances.sync(db, SPEC, instance=name, spent=0, want=0, now=T0)
    assert (await balances.rows(db))["team"].balance == 1000 - 30


async def test_a_dead_instances_lease_returns_after_the_ttl(db: Database) -> None:
    await balances.sync(db, SPEC, instance="dead", spent=0, want=300, now=T0)
    soon = await balances.sync(db, SPEC, instance="b", spent=0, want=1000, now=T0)
    assert soon.held == 700
    later = T0 + LEASE_TTL + timedelta(seconds=1)
    got = await balances.sync(db, SPEC, instance="b", spent=0, want=1000, now=later)
    assert (got.held, got.total) == (1000, 1000)


async def test_refill_is_credited_and_capped_with_leases_counted(db: Database) -> None:
    spec = BucketSpec("daily:a", "daily:<user>", capacity=1000, rate=100, period_s=3600)
    await balances.sync(db, spec, instance="a", spent=0, want=200, now=T0)
    await balances.sync(db, spec, instance="a", spent=500, want=200, now=T0)
    got = await balances.sync(
        db, spec, instance="a", spent=0, want=200, now=T0 + timedelta(hours=2)
    )
    assert got.total == 700
    got = await balances.sync(db, spec, instance="a", spent=0, want=200, now=T0 + timedelta(days=9))
    assert got.total == 1000


async def test_manual_changes_are_capped_audited_and_set_revokes_leases(db: Database) -> None:
    await balances.sync(db, SPEC, instance="a", spent=0, want=100, now=T0)
    await balances.sync(db, SPEC, instance="a", spent=600, want=100, now=T0)
    row = await balances.adjust(db, SPEC, action="refill", amount=1000, who="alice", now=T0)
    assert row.balance == 1000
    row = await balances.adjust(db, SPEC, action="set", amount=250, who="bob", now=T0)
    assert row.balance == 250
    assert (await balances.rows(db))["team"].balance == 250  # A's lease is gone
    got = await balances.sync(db, SPEC, instance="a", spent=20, want=0, now=T0)
    assert got.total == 230  # what A spent after the set is still charged
    changes = await balances.changes(db, "team")
    assert [(c["action"], c["changed_by"], c["amount_nanodollars"]) for c in changes] == [
        ("set", "bob", 250),
        ("refill", "alice", 1000),
    ]
    assert (changes[1]["balance_before_nanodollars"], changes[1]["balance_after_nanodollars"]) == (
        400,
        1000,
    )


async def test_one_sync_reports_many_buckets_as_separate_syncs_would(db: Database) -> None:
    specs = [BucketSpec(f"user-{n}", "user-<user>", 1000, 0, 86400) for n in range(50)]
    first = [balances.Report(spec, spent=0, want=100) for spec in specs]
    await balances.sync_many(db, first, instance="a", now=T0)
    second = [balances.Report(spec, spent=n, want=100, seq=n + 1) for n, spec in enumerate(specs)]
    got = await balances.sync_many(db, second, instance="a", now=T0)
    assert {name: (s.held, s.total) for name, s in got.items()} == {
        f"user-{n}": (100, 1000 - n) for n in range(50)
    }
    assert await balances.marks(db, "a") == {f"user-{n}": n + 1 for n in range(50)}
    rows = await balances.rows(db)
    assert sum(row.balance for row in rows.values()) == 50 * 1000 - sum(range(50))


async def test_instances_syncing_the_same_buckets_in_any_order_never_deadlock(
    db: Database,
) -> None:
    specs = [BucketSpec(f"b{n}", "b<user>", 1000, 0, 86400) for n in range(20)]

    async def spend(instance: str, order: list[BucketSpec]) -> None:
        for _ in range(5):
            reports = [balances.Report(spec, spent=1, want=10) for spec in order]
            await balances.sync_many(db, reports, instance=instance, now=T0)

    await balances.sync_many(
        db, [balances.Report(spec, 0, 0) for spec in specs], instance="setup", now=T0
    )
    await asyncio.gather(spend("a", specs), spend("b", specs[::-1]), spend("c", specs))
    for name in ("a", "b", "c"):  # the first round's 1 came out of a lease of 0
        await balances.sync_many(
            db, [balances.Report(spec, 0, 0) for spec in specs], instance=name, now=T0
        )
    rows = await balances.rows(db)
    assert all(rows[spec.name].balance == 1000 - 15 for spec in specs)


async def test_spending_within_the_lease_is_reported_without_the_buckets_row(
    db: Database,
) -> None:
    await balances.sync(db, SPEC, instance="a", spent=0, want=300, now=T0)
    before = (await balances.rows(db))["team"].updated_at
    later = T0 + timedelta(seconds=5)
    got = await balances.sync(db, SPEC, instance="a", spent=120, want=balances.KEEP, now=later)
    # the row is read (not locked, not written): the balance as the database has it
    assert (got.held, got.unleased, got.total, got.sharers) == (180, 700, 880, 1)
    rows = await balances.rows(db)
    assert rows["team"].balance == 880
    assert rows["team"].updated_at == before, "the bucket's row was not written"
    # another instance leases too: the next report counts it among the sharers
    other = await balances.sync(db, SPEC, instance="b", spent=0, want=100, now=later)
    assert (other.held, other.total, other.sharers) == (100, 880, 2)
    got = await balances.sync(db, SPEC, instance="a", spent=0, want=balances.KEEP, now=later)
    assert (got.held, got.unleased, got.total, got.sharers) == (180, 600, 880, 2)
    await balances.sync(db, SPEC, instance="b", spent=0, want=0, now=later)
    # more than the lease holds: the bucket's row pays the rest, the lease is what is left
    got = await balances.sync(db, SPEC, instance="a", spent=200, want=balances.KEEP, now=later)
    assert (got.held, got.total) == (0, 680)
    # a revoked lease (an admin set the balance): the spending is still debited
    await balances.sync(db, SPEC, instance="a", spent=0, want=100, now=later)
    await balances.adjust(db, SPEC, action="set", amount=500, who="admin", now=later)
    got = await balances.sync(db, SPEC, instance="a", spent=30, want=balances.KEEP, now=later)
    assert (got.held, got.total) == (0, 470)


async def test_many_instances_leasing_a_new_bucket_at_once_each_get_a_whole_lease(
    db: Database,
) -> None:
    # eight instances start using the same bucket at the same moment: the row is created
    # once, each takes its lease out of it, and nothing is created or debited twice
    got = await asyncio.gather(
        *(
            balances.sync_many(db, [balances.Report(SPEC, 0, 100)], instance=f"i{n}", now=T0)
            for n in range(8)
        )
    )
    assert [g["team"].held for g in got] == [100] * 8
    assert sorted(g["team"].unleased for g in got) == list(range(200, 1000, 100))
    assert all(1 <= g["team"].sharers <= 8 for g in got)  # as each one's statement saw it
    # three more: two get a whole lease, the last only what is left
    more = [
        await balances.sync(db, SPEC, instance=f"j{n}", spent=0, want=90, now=T0) for n in range(3)
    ]
    assert [(m.held, m.unleased, m.total, m.sharers) for m in more] == [
        (90, 110, 1000, 9),
        (90, 20, 1000, 10),
        (20, 0, 1000, 11),
    ]
    assert (await balances.rows(db))["team"].balance == 1000
    for n in range(8):  # spend 10 of each lease and give it back
        await balances.sync(db, SPEC, instance=f"i{n}", spent=10, want=0, now=T0)
    assert (await balances.rows(db))["team"].balance == 920
