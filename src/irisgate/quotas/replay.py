"""Replaying the journals of irisgate processes that are gone: the spending each journaled
and never reported is debited once (`balances.replay`, above the mark its last report left),
its leases given back, and the journal's file and marks dropped (see
`irisgate.quotas.journal`). Run by every ledger before its first upkeep and at shutdown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from irisgate.quotas import balances
from irisgate.quotas.amounts import dollars
from irisgate.quotas.bucketrows import BucketSpec
from irisgate.quotas.journal import Orphan, orphans
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.quotas")


async def replay_orphans(
    db: Database, folder: Path, instance: str, spec_of: Callable[[str], BucketSpec | None]
) -> None:
    """Replay every journal in `folder` but `instance`'s own whose process is gone;
    `spec_of(name)`: the bucket's spec as the current config has it (None: as journaled)."""
    found = orphans(folder, instance)
    try:
        for orphan in found:
            await _replay_one(db, orphan, spec_of)
    finally:
        for orphan in found:
            if orphan.path.exists():
                orphan.release()


async def _replay_one(
    db: Database, orphan: Orphan, spec_of: Callable[[str], BucketSpec | None]
) -> None:
    reported = await balances.marks(db, orphan.name)
    # summed as the file is read: a journal written through a long outage can be large
    unreported: dict[str, tuple[BucketSpec, int, int]] = {}
    for entry in orphan.entries():
        name = entry.spec.name
        if entry.seq <= reported.get(name, 0):
            continue
        _, spent, _ = unreported.get(name, (entry.spec, 0, 0))
        unreported[name] = (entry.spec, spent + entry.spent, entry.seq)
    debited = 0
    for name, (spec, spent, last) in unreported.items():
        done = await balances.replay(
            db,
            spec_of(name) or spec,
            journal=orphan.name,
            after=reported.get(name, 0),
            spent=spent,
            last=last,
            now=datetime.now(UTC),
        )
        if done:
            debited += spent
        else:
            log.error("quota journal changed while replayed", journal=orphan.name, bucket=name)
    returned = await balances.release(db, orphan.name)  # all it spent is debited
    orphan.done()
    await balances.forget_journal(db, orphan.name)
    log.info(
        "quota journal replayed",
        journal=orphan.name,
        buckets=len(unreported),
        debited=dollars(debited),
        leases_returned=dollars(returned),
    )
