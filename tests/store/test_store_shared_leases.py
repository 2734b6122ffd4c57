"""Eight instances (ledgers) joining one bucket on PostgreSQL: their first leases are sized by
the instances already leasing it, so their first reports take the spending out of the leases
and none gives money back through the bucket's row (a sync that locks it, which all of them
used to run at the same moment). Time is a fake clock and the upkeep runs when the test says."""

from __future__ import annotations

from pathlib import Path

import pytest

from irisgate.config.model import Quota
from irisgate.quotas import balances
from irisgate.quotas.charges import Link
from irisgate.quotas.ledger import Ledger
from irisgate.store.database import Database

D = 1_000_000_000  # one dollar in nanodollars
TEAM = Quota("team", 100 * D, 0, 86_400, "$0/day", "$100", default_estimate_nanodollars=D // 100)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_instances_joining_a_shared_bucket_keep_their_first_leases(
    db: Database, tmp_path: Path
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer: its first leases go through the general sync")
    clock = Clock()
    ledgers = [Ledger(db, tmp_path / f"i{n}", clock) for n in range(8)]
    team = (Link("team", "team", TEAM),)
    for n, ledger in enumerate(ledgers):  # each instance's first request, one after another
        reservation = await ledger.admit((team,), D // 100)
        ledger.settle(reservation, (n + 1) * D // 100)
    buckets = [ledger.known("team") for ledger in ledgers]
    assert all(b is not None for b in buckets)
    first = [b.held for b in buckets if b is not None]
    # a tenth of the capacity for the first, then 3/4 of what 2, 3 ... instances' leases
    # shrink to
    assert first == [10 * D] + [300 * D // (16 * k) for k in range(2, 9)]
    assert sum(first) < 50 * D  # less than half the bucket: no lease is oversized
    syncs = [ledger.syncs for ledger in ledgers]
    clock.now += 2  # the spending is due for its report
    for ledger in ledgers:
        await ledger._keep_once(clock())
    assert [ledger.syncs for ledger in ledgers] == [s + 1 for s in syncs]
    for n, bucket in enumerate(buckets):
        assert bucket is not None and bucket.spent == 0
        # reported out of the lease, which is otherwise kept: nothing was given back
        assert bucket.held == first[n] - (n + 1) * D // 100
    for ledger in ledgers:
        await ledger.stop()  # never started: reports and gives every lease back
    assert (await balances.rows(db))["team"].balance == 100 * D - 36 * D // 100
