"""Quota balances in the database: the authority every instance leases from.

A bucket row holds `balance_nanodollars`, the money outside every lease, credited with refill
up to `refilled_at`. An instance never spends the row directly: it *syncs*, in one short
transaction that holds the row lock (`SELECT … FOR UPDATE` on PostgreSQL, the database-wide
write lock of `BEGIN IMMEDIATE` on SQLite):

1. its settled spending since the last sync is taken out of its lease row; spending beyond
   the lease is debited from the balance (which may go negative);
2. refill is credited, capped so that balance + every lease never exceeds capacity;
3. its lease is topped up to the wanted size from a positive balance, or the excess given
   back.

Leases of instances that stopped renewing them (crashed) for `LEASE_TTL` are put back into
the balance by whoever syncs the bucket next. Manual changes (refill, set) run in the same
kind of transaction and are logged in `quota_changes`.

A sync that reports journaled spending (see `irisgate.quotas.journal`) also stores the
sequence number of the last journal entry it covers in `quota_journal`; `replay` debits a
dead process's journal entries above that number, so no spending is counted twice or lost.
Its lease, if not reclaimed yet, is given back in the same transaction: reclaimed or not,
the money it spent is debited once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from irisgate.quotas.firstlease import first_leases
from irisgate.quotas.refill import refilled
from irisgate.store.database import Database
from irisgate.store.tables import (
    conflict_insert,
    quota_buckets,
    quota_changes,
    quota_journal,
    quota_leases,
)

_T = TypeVar("_T")

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


@dataclass(frozen=True, slots=True)
class Synced:
    held: int  # this instance's lease after the sync
    #: the row's balance outside every lease, and unleased + every lease (the bucket's
    #: balance as the database knows it). A lease-only report (`KEEP`) reads them without
    #: locking the row: as committed when the report ran
    unleased: int
    total: int
    updated_at: datetime
    #: instances holding a lease of the bucket, this one included (at least 1): leases are
    #: sized by it, so that the instances together never hold much of a bucket running low
    sharers: int = 1


@dataclass(frozen=True, slots=True)
class BucketRow:
    name: str
    template: str
    balance: int  # unleased + every lease
    updated_at: datetime
    refilled_at: datetime | None = None


#: `Report.want` for "report the spending, keep the rest of the lease as it is": when the
#: lease covers the spending, only this instance's lease row changes, and the bucket's row,
#: which every instance using the bucket needs, is neither locked nor written (only read)
KEEP = -1


@dataclass(frozen=True, slots=True)
class Report:
    """One bucket's part of a sync: spending to report and the lease wanted afterwards
    (`KEEP`: what is left of it). `seq`: the last journal entry `spent` covers (0: none)."""

    spec: BucketSpec
    spent: int
    want: int
    seq: int = 0
    #: the row may not exist yet (False: the caller synced this bucket before, so it does;
    #: the insert that would create it is skipped, as it waits for any instance writing it)
    new: bool = True


async def sync(
    db: Database,
    spec: BucketSpec,
    *,
    instance: str,
    spent: int,
    want: int,
    now: datetime,
    seq: int = 0,
) -> Synced:
    """Report `spent` and resize this instance's lease towards `want` (see module doc)."""
    report = Report(spec, spent, want, seq)
    return (await sync_many(db, [report], instance=instance, now=now))[spec.name]


async def sync_many(
    db: Database, reports: list[Report], *, instance: str, now: datetime
) -> dict[str, Synced]:
    """`sync` of several buckets (each at most once) in one transaction, with a handful of
    statements whatever their number: each statement covers every bucket. Rows are locked
    in name order, so instances syncing overlapping sets never deadlock."""
    out: dict[str, Synced] = {}
    first = [r for r in reports if _first_lease(r)] if db.dialect == "postgresql" else []
    if first:  # one autocommitted statement: no queue between instances (`firstlease`)
        leased = await first_leases(
            db,
            [(r.spec.name, r.spec.template, r.spec.capacity, r.want) for r in first],
            instance=instance,
            now=now,
            live_since=now - LEASE_TTL,
        )
        for name, balance, held, others, count in leased:
            out[name] = Synced(held, balance, balance + held + others, now, count + 1)
        reports = [r for r in reports if r.spec.name not in out]
    if reports:
        sync_ = partial(_sync_all, dialect=db.dialect, reports=reports, instance=instance, now=now)
        out.update(await _in_transaction(db, sync_))
    return out


def _first_lease(report: Report) -> bool:
    """Whether `report` only asks a bucket this instance does not hold for a lease it can
    take from the row in one statement (see `irisgate.quotas.firstlease`)."""
    return report.new and not report.spent and 0 < report.want <= report.spec.capacity


async def marks(db: Database, journal: str) -> dict[str, int]:
    """The last entry of `journal` already reported, per bucket."""
    query = select(quota_journal.c.bucket, quota_journal.c.seq).where(
        quota_journal.c.journal == journal
    )
    async with db.connect() as conn:
        return {bucket: int(seq) for bucket, seq in await conn.execute(query)}


async def replay(
    db: Database,
    spec: BucketSpec,
    *,
    journal: str,
    after: int,
    spent: int,
    last: int,
    now: datetime,
) -> bool:
    """Debit `spent`, a dead process's journal entries `after` < seq <= `last` of one bucket,
    and give its lease back. False (nothing done) when the bucket's mark is no longer
    `after`: the entries were counted differently meanwhile."""
    replay_ = partial(
        _replay, dialect=db.dialect, spec=spec, journal=journal, after=after, spent=spent
    )
    return await _in_transaction(db, partial(replay_, last=last, now=now))


async def release(db: Database, instance: str) -> int:
    """Give every lease `instance` still holds back to its bucket; returns the money. Only
    for an instance that is gone and whose spending has all been reported (its journal
    replayed): the lease then holds nothing that was spent."""
    return await _in_transaction(db, partial(_release, instance=instance))


def _release(conn: Connection, *, instance: str) -> int:
    held = select(quota_leases.c.bucket).where(quota_leases.c.instance == instance)
    lock = (
        select(quota_buckets.c.name)
        .where(quota_buckets.c.name.in_(held.scalar_subquery()))
        .order_by(quota_buckets.c.name)
        .with_for_update()
    )
    if not conn.execute(lock).all():
        return 0
    freed = conn.execute(
        delete(quota_leases)
        .where(quota_leases.c.instance == instance)
        .returning(quota_leases.c.bucket, quota_leases.c.held_nanodollars)
    ).all()
    back = update(quota_buckets).where(quota_buckets.c.name == bindparam("b_name"))
    conn.execute(
        back.values(balance_nanodollars=quota_buckets.c.balance_nanodollars + bindparam("b_held")),
        [{"b_name": bucket, "b_held": int(amount)} for bucket, amount in freed],
    )
    return sum(int(amount) for _, amount in freed)


async def forget_journal(db: Database, journal: str) -> None:
    """Drop a journal's marks once its file is gone (replayed, or all reported)."""
    statement = delete(quota_journal).where(quota_journal.c.journal == journal)
    await _in_transaction(db, lambda conn: conn.execute(statement))


async def adjust(
    db: Database, spec: BucketSpec, *, action: str, amount: int, who: str, now: datetime
) -> BucketRow:
    """A manual change: `refill` adds `amount` (capped at capacity), `set` sets the balance.

    Acts on the balance as a whole (leases included). A refill goes to the unleased part; a
    set revokes every lease: each instance learns at its next sync (within a fraction of a
    second while it spends) that it holds nothing, and what it spent meanwhile is debited.
    """
    adjust_ = partial(
        _adjust, dialect=db.dialect, spec=spec, action=action, amount=amount, who=who, now=now
    )
    return await _in_transaction(db, adjust_)


async def _in_transaction(db: Database, fn: Callable[[Connection], _T]) -> _T:
    """`fn(connection)` in one write transaction. On SQLite in a write thread, in one
    hand-over (`Database.write_in_thread`): through aiosqlite each of its statements would
    wait for a busy event loop while holding the database's write lock, which the capture
    writer needs too."""
    if db.writes_in_thread:
        return await db.write_in_thread(fn)
    async with db.begin() as conn:
        return await conn.run_sync(fn)


def _sync(
    conn: Connection,
    *,
    dialect: str,
    spec: BucketSpec,
    instance: str,
    spent: int,
    want: int,
    now: datetime,
    mark: int = 0,
) -> Synced:
    reports = [Report(spec, spent, want, mark)]
    return _sync_all(conn, dialect=dialect, reports=reports, instance=instance, now=now)[spec.name]


def _sync_all(
    conn: Connection, *, dialect: str, reports: list[Report], instance: str, now: datetime
) -> dict[str, Synced]:
    names = [r.spec.name for r in reports]
    if len(set(names)) != len(names):
        raise ValueError("a bucket may appear only once in a sync")
    out = _report_within_leases(conn, [r for r in reports if r.want == KEEP], instance, now)
    _mark_all(conn, dialect, instance, {r.spec.name: r.seq for r in reports if r.seq})
    reports = sorted((r for r in reports if r.spec.name not in out), key=lambda r: r.spec.name)
    if not reports:
        return out
    _insert_missing(dialect, conn, [r.spec for r in reports if r.new], now)
    locked, leases, reclaimed = _locked_with_leases(
        dialect, conn, [r.spec for r in reports], instance, now
    )
    rows: list[tuple[BucketSpec, int, datetime]] = []
    for report in reports:
        spec = report.spec
        balance, since = locked[spec.name]
        others_leases = leases.get(spec.name, {})
        balance += reclaimed.get(spec.name, 0)
        held = others_leases.pop(instance, 0) - report.spent
        if held < 0:
            balance += held
            held = 0
        others = sum(others_leases.values())
        total, since = refilled(
            balance + held + others,
            spec.capacity,
            rate=spec.rate,
            period_s=spec.period_s,
            since=since,
            now=now,
        )
        balance = total - held - others
        want = held if report.want == KEEP else report.want
        if held < want:
            take = min(want - held, max(balance, 0))
            balance, held = balance - take, held + take
        elif held > want:
            balance, held = balance + held - want, want
        rows.append((spec, balance, since))
        out[spec.name] = Synced(
            held=held,
            unleased=balance,
            total=balance + held + others,
            updated_at=now,
            sharers=len(others_leases) + 1,
        )
    _write_all(conn, rows, now)
    _write_leases(conn, instance, {r.spec.name: out[r.spec.name].held for r in reports}, now)
    return out


def _report_within_leases(
    conn: Connection, reports: list[Report], instance: str, now: datetime
) -> dict[str, Synced]:
    """Take each report's spending out of this instance's lease, renewing it, where the lease
    covers it: one statement, writing only this instance's lease rows. The buckets it
    returns are done; the others (no lease: revoked or reclaimed; or too small) need the
    bucket's row.

    The statement also reads, without locking anything, each bucket's unleased balance and
    the other instances' leases: so an instance that only reports still learns, every
    report, how low the bucket is and how many instances share it (and shrinks its lease)."""
    if not reports:
        return {}
    lease = quota_leases
    other = quota_leases.alias("other")
    # the spending by bucket as one expression: the same statement on both databases
    spent = case({r.spec.name: r.spent for r in reports}, value=lease.c.bucket)
    others = (other.c.bucket == lease.c.bucket) & (other.c.instance != instance)
    others_held = (
        select(func.coalesce(func.sum(other.c.held_nanodollars), 0))
        .where(others)
        .correlate(lease)
        .scalar_subquery()
    )
    sharers = select(func.count()).select_from(other).where(others).correlate(lease)
    unleased = (
        select(quota_buckets.c.balance_nanodollars)
        .where(quota_buckets.c.name == lease.c.bucket)
        .correlate(lease)
        .scalar_subquery()
    )
    statement = (
        update(lease)
        .where(lease.c.instance == instance)
        .where(lease.c.bucket.in_([r.spec.name for r in reports]))
        .where(lease.c.held_nanodollars >= spent)
        .values(held_nanodollars=lease.c.held_nanodollars - spent, renewed_at=now)
        .returning(
            lease.c.bucket,
            lease.c.held_nanodollars,
            unleased,
            others_held,
            sharers.scalar_subquery(),
        )
    )
    return {
        bucket: Synced(
            held=int(held),
            unleased=int(balance or 0),
            total=int(balance or 0) + int(held) + int(held_elsewhere),
            updated_at=now,
            sharers=int(count) + 1,
        )
        for bucket, held, balance, held_elsewhere, count in conn.execute(statement)
    }


def _replay(
    conn: Connection,
    *,
    dialect: str,
    spec: BucketSpec,
    journal: str,
    after: int,
    spent: int,
    last: int,
    now: datetime,
) -> bool:
    _locked_row(dialect, conn, spec, now)  # first: the mark read next cannot change under us
    query = select(quota_journal.c.seq).where(
        (quota_journal.c.journal == journal) & (quota_journal.c.bucket == spec.name)
    )
    if (conn.execute(query).scalar() or 0) != after:
        return False
    _sync(
        conn,
        dialect=dialect,
        spec=spec,
        instance=journal,
        spent=spent,
        want=0,
        now=now,
        mark=last,
    )
    return True


def _mark_all(conn: Connection, dialect: str, journal: str, seqs: dict[str, int]) -> None:
    if not seqs:
        return
    insert_ = conflict_insert(dialect, quota_journal).values(
        [{"journal": journal, "bucket": bucket, "seq": seq} for bucket, seq in seqs.items()]
    )
    conn.execute(
        insert_.on_conflict_do_update(
            index_elements=["journal", "bucket"], set_={"seq": insert_.excluded.seq}
        )
    )


def _adjust(
    conn: Connection,
    *,
    dialect: str,
    spec: BucketSpec,
    action: str,
    amount: int,
    who: str,
    now: datetime,
) -> BucketRow:
    balance, since = _locked_row(dialect, conn, spec, now)
    live, reclaimed = _leases(conn, spec.name, None, now)
    balance, leases = balance + reclaimed, sum(live.values())
    before, since = refilled(
        balance + leases,
        spec.capacity,
        rate=spec.rate,
        period_s=spec.period_s,
        since=since,
        now=now,
    )
    if action == "refill":
        after = max(before, min(spec.capacity, before + amount))
        _write(conn, spec, after - leases, since, now)
    else:  # set: leases are revoked, so no instance keeps spending money taken before
        after = min(amount, spec.capacity)
        conn.execute(delete(quota_leases).where(quota_leases.c.bucket == spec.name))
        _write(conn, spec, after, since, now)
    conn.execute(
        insert(quota_changes).values(
            bucket=spec.name,
            changed_at=now,
            changed_by=who,
            action=action,
            amount_nanodollars=amount,
            balance_before_nanodollars=before,
            balance_after_nanodollars=after,
        )
    )
    return BucketRow(spec.name, spec.template, after, now, since)


async def rows(db: Database) -> dict[str, BucketRow]:
    """Every bucket row with its balance (leases included), as last written."""
    held = (
        select(quota_leases.c.bucket, func.sum(quota_leases.c.held_nanodollars).label("held"))
        .group_by(quota_leases.c.bucket)
        .subquery()
    )
    query = select(
        quota_buckets.c.name,
        quota_buckets.c.template,
        quota_buckets.c.balance_nanodollars,
        func.coalesce(held.c.held, 0),
        quota_buckets.c.updated_at,
        quota_buckets.c.refilled_at,
    ).outerjoin(held, held.c.bucket == quota_buckets.c.name)
    async with db.connect() as conn:
        result = await conn.execute(query)
        return {
            name: BucketRow(name, template, int(balance) + int(leased), updated, refilled)
            for name, template, balance, leased, updated, refilled in result
        }


async def changes(db: Database, bucket: str | None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest manual changes of one bucket, or of every bucket when `bucket` is None."""
    query = select(quota_changes).order_by(quota_changes.c.id.desc()).limit(limit)
    if bucket is not None:
        query = query.where(quota_changes.c.bucket == bucket)
    async with db.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


def _locked_row(
    dialect: str, conn: Connection, spec: BucketSpec, now: datetime
) -> tuple[int, datetime]:
    """(balance, refilled_at) of the bucket's row, created full when missing, locked."""
    return _locked_rows(dialect, conn, [spec], now)[spec.name]


def _locked_rows(
    dialect: str, conn: Connection, specs: list[BucketSpec], now: datetime, *, create: bool = True
) -> dict[str, tuple[int, datetime]]:
    """(balance, refilled_at) of each bucket's row, created full when missing (`create`),
    locked in name order."""
    specs = sorted(specs, key=lambda spec: spec.name)
    if create:
        _insert_missing(dialect, conn, specs, now)
    query = (
        select(
            quota_buckets.c.name, quota_buckets.c.balance_nanodollars, quota_buckets.c.refilled_at
        )
        .where(quota_buckets.c.name.in_([spec.name for spec in specs]))
        .order_by(quota_buckets.c.name)
        .with_for_update()
    )
    return {name: (int(balance), since) for name, balance, since in conn.execute(query)}


def _insert_missing(dialect: str, conn: Connection, specs: list[BucketSpec], now: datetime) -> None:
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


def _locked_with_leases(
    dialect: str, conn: Connection, specs: list[BucketSpec], instance: str, now: datetime
) -> tuple[dict[str, tuple[int, datetime]], dict[str, dict[str, int]], dict[str, int]]:
    """`_locked_rows`, then the leases of those buckets read after the lock is held (a join
    in the locking statement would read them as they were before waiting for the lock):
    (balance and refilled_at by bucket, live leases by bucket and instance, money of dead
    leases by bucket). The dead leases (not renewed for `LEASE_TTL`, never `instance`'s
    own) are deleted by `_write_leases`, with this instance's own."""
    locked = _locked_rows(dialect, conn, specs, now, create=False)
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


def _leases(
    conn: Connection, bucket: str, instance: str | None, now: datetime
) -> tuple[dict[str, int], int]:
    """(live leases of `bucket` by instance, money of the dead leases removed first)."""
    leases, reclaimed = _leases_of(conn, [bucket], instance, now)
    return leases.get(bucket, {}), reclaimed.get(bucket, 0)


def _leases_of(
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


def _write(
    conn: Connection, spec: BucketSpec, balance: int, since: datetime, now: datetime
) -> None:
    _write_all(conn, [(spec, balance, since)], now)


def _write_all(
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


def _write_leases(conn: Connection, instance: str, held: dict[str, int], now: datetime) -> None:
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
