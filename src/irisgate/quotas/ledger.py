"""Quota balances in memory: admission with reservation, settlement, and the leases behind.

The request path never waits for the database in steady state. Each bucket this instance
uses holds a *lease*: a slice of the bucket's money taken from the database row (see
`irisgate.quotas.balances`). Admission and settlement are arithmetic on the lease:

    remaining = held (leased) - spent (settled, not yet reported) - reserved (in flight)

- admit: every chain the request charges must have remaining > 0 (summed over the chain);
  then the estimate is reserved. Checks and reservation run without an `await` between
  them, so concurrent requests see each other's reservations.
- settle: the reservation is released and the actual cost added to `spent`.
- a background task reports `spent` and tops leases up (or gives them back when a bucket
  goes idle) every `REPORT_SECONDS` while money moves and at once when a lease runs low: one
  short transaction for every bucket due (`balances.sync_many`, up to `SYNC_BATCH` buckets),
  so the transaction rate does not grow with the number of buckets; on shutdown every lease
  is returned and all spending reported.
- settled spending is appended to this process's journal (`irisgate.quotas.journal`) before
  anything else, and each report names the last journal entry it covers: what a crash or a
  database outage kept from being reported is debited when the journal is replayed.

Only a bucket this instance has never leased, or whose lease ran dry before the background
top-up, costs the request a database round trip (shared by all requests waiting for it).

Overshoot bound: a request is admitted while `remaining > 0` and reserves its estimate, so an
instance can spend beyond the money it leased by at most one request's estimate, plus what
in-flight requests cost beyond their estimates. With N instances the bucket overshoots by at
most N * (largest estimate) when estimates hold. Money leased to one instance is invisible to
the others, so a bucket can refuse while other instances still hold some of it: a lease is
at most capacity / `LEASE_DIVISOR` and at most the bucket's balance / (`LEASE_SHARE` x the
instances leasing it), plus what its in-flight requests reserve. Every report tells an
instance the balance and the number of instances leasing (`balances.Synced`), and once
less than half of the balance is outside the leases, the upkeep gives back what its lease
holds beyond that size: leases shrink as the bucket runs low, and a chain is refused only
when less than about a quarter of what is left is leased elsewhere unused. A first lease on
PostgreSQL is sized by the instances already leasing the bucket from the start
(`Report.share`, see `irisgate.quotas.firstlease`), so instances joining a shared bucket do
not all give their excess back at their first report.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import structlog

from irisgate.config.model import Quota
from irisgate.quotas import balances
from irisgate.quotas.amounts import dollars
from irisgate.quotas.balances import KEEP, BucketRow
from irisgate.quotas.bucketrows import BucketSpec
from irisgate.quotas.charges import Chain
from irisgate.quotas.inflight import InFlight
from irisgate.quotas.journal import FOLDER, Journal
from irisgate.quotas.replay import replay_orphans
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.quotas")

#: a lease is at most this fraction of the bucket's capacity (plus what is reserved in
#: flight)
LEASE_DIVISOR = 10
#: and at most the bucket's balance over this times the instances sharing it: together the
#: instances' unused leases stay under a quarter of what the bucket has left, so a request
#: is refused here only when little is left anywhere (see `Bucket.lease_size`)
LEASE_SHARE = 4
#: how often the upkeep looks for work (a lease running low is topped up this fast)
FLUSH_SECONDS = 0.25
#: settled spending is reported within this long (sooner when a lease runs low). It is
#: journaled meanwhile, so the interval trades nothing but how fresh other instances' view
#: of the balance is against one sync transaction per instance per interval.
REPORT_SECONDS = 1.0
#: a bucket unused this long gives its lease back
IDLE_SECONDS = 15.0
#: leases are renewed well inside bucketrows.LEASE_TTL
RENEW_SECONDS = 10.0
#: an exhausted bucket asks the database again at most this often
DRY_RECHECK_SECONDS = 1.0
#: top-up rounds an admission runs at most before refusing (see `Ledger._admit`)
TOP_UP_ROUNDS = 3
#: most buckets one sync transaction reports (an upkeep round with more uses several)
SYNC_BATCH = 1000


class QuotaRefused(Exception):
    """The request may not run: a bucket is exhausted or invalid. `str()` is for the caller."""

    def __init__(
        self, message: str, retry_after: int | None, templates: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.templates = templates  # the refusing buckets' templates (bounded metric labels)


class QuotaUnavailable(Exception):
    """The balance of a bucket cannot be learned: the database did not answer."""


@dataclass(slots=True)
class Bucket:
    """This instance's view of one bucket."""

    spec: BucketSpec
    quota: Quota
    held: int = 0
    spent: int = 0
    reserved: int = 0
    unleased: int = 0  # the database's money outside every lease, at the last sync
    total: int = 0  # the bucket's whole balance at the last sync
    synced: bool = False
    synced_at: float = 0.0
    used_at: float = 0.0
    dry_until: float = 0.0
    updated_at: datetime | None = None
    syncing: asyncio.Task[None] | None = None
    seq: int = 0  # the journal entry of the latest spending in `spent`
    sharers: int = 1  # instances leasing the bucket at the last sync, this one included
    inflight: InFlight = field(default_factory=InFlight)
    #: admissions, reservations and admin changes holding this object: while pinned it is
    #: neither idle nor forgotten, so no spending can land on an object the upkeep dropped
    pins: int = 0

    @property
    def remaining(self) -> int:
        return self.held - self.spent - self.reserved

    @property
    def balance(self) -> int:
        """The bucket's balance as this instance knows it (other instances' spending since
        their last report excepted)."""
        return self.total - self.spent

    @property
    def full_lease(self) -> int:
        """The lease while the bucket holds plenty: a tenth of its capacity."""
        return max(1, self.spec.capacity // LEASE_DIVISOR)

    @property
    def lease_size(self) -> int:
        """The lease to hold beyond what is reserved: `full_lease`, or less once the bucket's
        balance is under `LEASE_SHARE` leases per instance sharing it. Leases then shrink
        with the balance (the upkeep gives the excess back), so that N instances never sit
        on a small bucket's money while another refuses requests."""
        if not self.synced:
            return self.full_lease
        share = max(self.total, 0) // (LEASE_SHARE * self.sharers)
        return max(1, min(self.full_lease, share))


_reservation_keys = itertools.count()


@dataclass(slots=True)
class Reservation:
    parts: list[tuple[list[Bucket], list[int]]] = field(default_factory=list)
    key: int = field(default_factory=lambda: next(_reservation_keys))


def reserve_amount(quota: Quota, estimate: int | None, limited: bool) -> int:
    """What a request reserves in a chain starting with `quota`'s bucket: the estimate,
    except the bucket's `default_estimate` for an unpriced model, or for a request without an
    output limit when the config sets it (see `irisgate.quotas.estimate`)."""
    if estimate is None or (quota.default_estimate_given and not limited):
        return quota.default_estimate_nanodollars
    return estimate


def _dry_with_money(buckets: list[Bucket]) -> bool:
    """Whether a chain has nothing left here while the database holds money for it."""
    return sum(b.remaining for b in buckets) <= 0 and any(b.unleased > 0 for b in buckets)


def _pin(buckets: list[Bucket], by: int) -> None:
    for bucket in buckets:
        bucket.pins += by


def _split(buckets: list[Bucket], amount: int) -> list[int]:
    """`amount` over a chain: each bucket up to what it has left, the last takes the rest."""
    out: list[int] = []
    left = amount
    for bucket in buckets[:-1]:
        take = min(max(bucket.remaining, 0), left)
        out.append(take)
        left -= take
    out.append(left)
    return out


def _refusal(buckets: list[Bucket], now: float) -> QuotaRefused:
    """Why a chain with nothing left here refuses: exhausted only when its balance is gone;
    otherwise the money is reserved by requests in flight or leased to other instances."""
    names = " + ".join(b.spec.name for b in buckets)
    templates = tuple(b.spec.template for b in buckets)
    unspent = sum(b.balance for b in buckets)
    reserved = sum(b.reserved for b in buckets)
    if unspent <= 0:
        wait = retry_after(buckets)
        when = f"refills in {wait} s" if wait else "does not refill; ask an admin"
        return QuotaRefused(
            f"quota exceeded: bucket {names} is exhausted (balance {dollars(unspent)}, "
            f"{dollars(reserved)} reserved by requests in flight); {when}",
            wait,
            templates,
        )
    held: list[str] = []
    if reserved > 0:
        running = max(len(b.inflight) for b in buckets)
        settle = [b.inflight.next_settlement(now) for b in buckets if len(b.inflight)]
        wait = min(settle, default=1)
        held.append(
            f"{dollars(reserved)} reserved by {running} request(s) in flight, the first "
            f"expected to settle in about {wait} s"
        )
    else:
        wait = math.ceil(IDLE_SECONDS)
    elsewhere = sum(max(b.total - b.unleased - b.held, 0) for b in buckets)
    if elsewhere > 0:
        held.append(f"{dollars(elsewhere)} leased to other irisgate instances")
    return QuotaRefused(
        f"quota busy: bucket {names} has {dollars(unspent)} unspent but none free here: "
        f"{'; '.join(held) or 'held elsewhere'}; retry in {wait} s",
        wait,
        templates,
    )


def retry_after(buckets: list[Bucket]) -> int | None:
    """Whole seconds until refill makes the chain's combined balance positive; None: never."""
    deficit = -sum(b.remaining + min(b.unleased, 0) for b in buckets)
    rate = sum((Fraction(b.spec.rate, b.spec.period_s) for b in buckets), Fraction(0))
    if rate <= 0:
        return None
    return max(1, math.ceil((deficit + 1) / rate))


#: told each bucket's balance after a sync: (name, template, capacity, balance)
BalanceObserver = Callable[[str, str, int, int], None]


class Ledger:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        clock: Callable[[], float] = time.monotonic,
        observe: BalanceObserver | None = None,
    ) -> None:
        """`clock`: seconds on a monotonic scale, for leases' ages, idleness and waits.
        `observe`: told every synced bucket's balance (budget alerts); it must not block."""
        self._db = db
        self._clock = clock
        self._observe = observe
        self.instance = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        self._buckets: dict[str, Bucket] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.syncs = 0  # sync transactions committed (each covers any number of buckets)
        self._folder = data_dir / FOLDER
        self._journal: Journal | None = None
        self._replayed = False

    def start(self) -> None:
        self._journal = Journal(self._folder, self.instance)
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def stop(self) -> None:
        """Report all spending and give every lease back (the SIGTERM path)."""
        if self._task is not None:
            # let the upkeep loop finish its round: a sync cancelled half-way could leave it
            # unknown whether the database counted the spending it reported
            self._stopping = True
            self._wake.set()
            await self._task
        if not self._replayed:
            try:
                await self._replay()
            except Exception:  # the journals stay: the next start replays them
                log.exception("quota journals not replayed")
        for bucket in list(self._buckets.values()):
            if bucket.syncing is not None:
                with contextlib.suppress(Exception):
                    await bucket.syncing
        left = [(b, 0) for b in self._buckets.values() if b.held or b.spent]
        for start in range(0, len(left), SYNC_BATCH):
            batch = left[start : start + SYNC_BATCH]
            for attempt in range(3):
                try:
                    await self._sync(batch)
                    break
                except QuotaUnavailable:  # retried, then reported with the amounts
                    await asyncio.sleep(0.2 * (attempt + 1))
            else:
                log.error(
                    "quota spending could not be reported at shutdown; it stays journaled "
                    "and is reported by the next start on this data folder",
                    buckets=len(batch),
                    spent=sum(b.spent for b, _ in batch),
                    held=sum(b.held for b, _ in batch),
                )
        if self._journal is not None:
            reported = not any(b.spent for b in self._buckets.values())
            self._journal.close(reported=reported)
            self._journal = None
            if reported:
                with contextlib.suppress(Exception):  # only bookkeeping rows are left behind
                    await balances.forget_journal(self._db, self.instance)

    def bucket(self, name: str, template: str, quota: Quota) -> Bucket:
        bucket = self._buckets.get(name)
        if bucket is None or bucket.quota is not quota:
            spec = BucketSpec(
                name,
                template,
                quota.capacity_nanodollars,
                quota.rate_nanodollars,
                quota.rate_period_seconds,
            )
            if bucket is None:
                bucket = self._buckets[name] = Bucket(spec, quota)
            else:  # the config changed: same money, new limits
                bucket.spec, bucket.quota = spec, quota
        return bucket

    def known(self, name: str) -> Bucket | None:
        return self._buckets.get(name)

    async def admit(
        self, chains: tuple[Chain, ...], estimate: int | None, *, limited: bool = True
    ) -> Reservation:
        """Check every chain and reserve the estimate; raises QuotaRefused / QuotaUnavailable.
        `limited`: the estimate comes from the request's output limit (see `reserve_amount`)."""
        resolved: list[list[Bucket]] = []
        for chain in chains:
            buckets = []
            for link in chain:
                if link.quota is None:
                    raise QuotaRefused(
                        f"quota {link.template} is invalid, so requests charging it are "
                        f"refused: {link.problem}",
                        None,
                        (link.template,),
                    )
                buckets.append(self.bucket(link.name, link.template, link.quota))
            resolved.append(buckets)
        pinned = [b for bs in resolved for b in bs]
        _pin(pinned, 1)  # before the first await: the upkeep must not drop them meanwhile
        try:
            return await self._admit(resolved, estimate, limited)
        finally:
            _pin(pinned, -1)  # a reservation pins what it holds on its own

    async def _admit(
        self, resolved: list[list[Bucket]], estimate: int | None, limited: bool
    ) -> Reservation:
        stale = {id(b): b for bs in resolved for b in bs if self._needs_sync(b, self._clock())}
        if stale:
            await self._sync_together([(b, None) for b in stale.values()])
        # A lease can shrink under an admission while it waits for the database: the
        # upkeep's return of an idle lease (started before this admission pinned the bucket)
        # or its report may commit during a top-up of another bucket. A chain found dry
        # afterwards while its row still has money is topped up again, at most
        # `TOP_UP_ROUNDS` times, before it is refused.
        for _ in range(TOP_UP_ROUNDS):
            await self._top_up(resolved, estimate, limited)
            if not any(_dry_with_money(buckets) for buckets in resolved):
                break
        now = self._clock()
        for buckets in resolved:
            if sum(b.remaining for b in buckets) <= 0:
                raise _refusal(buckets, now)
        reservation = Reservation()
        for buckets in resolved:
            amount = reserve_amount(buckets[0].quota, estimate, limited)
            amounts = _split(buckets, amount)
            for bucket, part in zip(buckets, amounts, strict=True):
                bucket.reserved += part
                bucket.used_at = now
                bucket.inflight.begin(reservation.key, now)
            _pin(buckets, 1)
            reservation.parts.append((buckets, amounts))
        return reservation

    async def _top_up(
        self, resolved: list[list[Bucket]], estimate: int | None, limited: bool
    ) -> None:
        """Lease more from the database where the local leases fall short of a chain."""
        # An overdraft chain spends its first buckets before the next: one whose lease is
        # too short for this request while the database still holds money for it is topped
        # up first, or the request would borrow from the next bucket too early.
        short: dict[int, tuple[Bucket, int]] = {}
        for buckets in resolved:
            need = reserve_amount(buckets[0].quota, estimate, limited)
            for b in buckets[:-1]:
                if b.remaining < need and b.unleased > 0:
                    short[id(b)] = (b, max(b.lease_size, need) + b.reserved)
        if short:
            await self._sync_together(list(short.values()))
        # A chain that looks dry may still have money in the database that no lease holds
        # (the local leases ran out, or its first bucket was overdrawn by a request that cost
        # more than its estimate): take it before refusing.
        dry: dict[int, tuple[Bucket, int]] = {}
        for buckets in resolved:
            left = sum(b.remaining for b in buckets)
            if left > 0:
                continue
            for b in buckets:
                if b.unleased > 0:
                    dry[id(b)] = (b, b.lease_size + b.reserved - left)
        if dry:
            await self._sync_together(list(dry.values()))

    def settle(self, reservation: Reservation, cost: int) -> None:
        """Release the reservation and charge the actual cost to every chain (journaled
        first, see `irisgate.quotas.journal`)."""
        charges: list[tuple[Bucket, int]] = []
        now = self._clock()
        for buckets, amounts in reservation.parts:
            for bucket, part in zip(buckets, amounts, strict=True):
                bucket.reserved -= part
                bucket.inflight.end(reservation.key, now)
            charges += [(b, part) for b, part in zip(buckets, _split(buckets, cost), strict=True)]
            _pin(buckets, -1)
        reservation.parts = []
        charges = [(bucket, part) for bucket, part in charges if part]
        if not charges:
            return
        if self._journal is not None:
            seqs = self._journal.append([(bucket.spec, part) for bucket, part in charges])
        else:  # not started (never on the request path)
            seqs = [0] * len(charges)
        for (bucket, part), seq in zip(charges, seqs, strict=True):
            bucket.spent += part
            bucket.seq = seq
            if bucket.remaining < bucket.lease_size // 2:
                self._wake.set()

    async def adjust(
        self, name: str, template: str, quota: Quota, *, action: str, amount: int, who: str
    ) -> BucketRow:
        """An admin's refill or set; the bucket's next use here learns the new balance."""
        bucket = self.bucket(name, template, quota)
        bucket.pins += 1
        try:
            if bucket.syncing is not None or (bucket.synced and bucket.spent):
                # report what was spent before the change, so a set balance is what it says
                await self._sync_shared(bucket)
            row = await balances.adjust(
                self._db, bucket.spec, action=action, amount=amount, who=who, now=_utcnow()
            )
        finally:
            bucket.pins -= 1
        bucket.dry_until = 0.0
        bucket.total = row.balance
        if action == "set":  # the database revoked every lease, this one included
            bucket.held = 0
        self._wake.set()
        log.info("quota balance changed", bucket=name, action=action, amount=amount, by=who)
        return row

    def _needs_sync(self, bucket: Bucket, now: float) -> bool:
        return not bucket.synced or (bucket.remaining <= 0 and now >= bucket.dry_until)

    async def _sync_shared(self, bucket: Bucket, want: int | None = None) -> None:
        """Sync one bucket (see `_sync_together`); `want`: the lease to hold afterwards
        (default: a lease's size beyond what is reserved)."""
        await self._sync_together([(bucket, want)])

    async def _sync_together(self, wants: list[tuple[Bucket, int | None]]) -> None:
        """Sync these buckets in one transaction; one sync at a time per bucket: one already
        syncing is waited for instead. Raises QuotaUnavailable only for a bucket that has
        never been synced (the others keep working on what they know)."""
        fresh: dict[int, tuple[Bucket, int]] = {}
        running: dict[int, asyncio.Task[None]] = {}
        for bucket, want in wants:
            if bucket.syncing is not None:
                running[id(bucket.syncing)] = bucket.syncing
            elif id(bucket) not in fresh:
                lease = want if want is not None else bucket.lease_size + bucket.reserved
                fresh[id(bucket)] = (bucket, lease)
        tasks = list(running.values())
        if fresh:
            tasks.append(self._start_sync(list(fresh.values())))
        outcomes = await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, QuotaUnavailable):
                raise outcome
        unavailable = next((o for o in outcomes if isinstance(o, QuotaUnavailable)), None)
        if unavailable is not None and not all(bucket.synced for bucket, _ in wants):
            raise unavailable

    def _start_sync(self, wants: list[tuple[Bucket, int]]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._sync(wants))

        def done(_: asyncio.Task[None]) -> None:
            for bucket, _want in wants:
                if bucket.syncing is task:
                    bucket.syncing = None

        for bucket, _want in wants:
            bucket.syncing = task
        task.add_done_callback(done)
        return task

    async def _sync(self, wants: list[tuple[Bucket, int]]) -> None:
        """Report the buckets' spending and resize their leases, in one transaction."""
        taken = [(bucket, want, bucket.spent, bucket.seq) for bucket, want in wants]
        reports = [
            balances.Report(
                bucket.spec,
                spent,
                want,
                seq if spent else 0,
                new=not bucket.synced,
                share=LEASE_SHARE,
            )
            for bucket, want, spent, seq in taken
        ]
        try:
            results = await balances.sync_many(
                self._db, reports, instance=self.instance, now=_utcnow()
            )
        except Exception as exc:
            names = [bucket.spec.name for bucket, _ in wants[:3]]
            log.warning("quota sync failed", buckets=len(wants), first=names, error=repr(exc))
            raise QuotaUnavailable(f"quota store unavailable: {exc.__class__.__name__}") from exc
        self.syncs += 1
        now = self._clock()
        for bucket, _want, spent, _seq in taken:
            result = results[bucket.spec.name]
            bucket.spent -= spent
            bucket.held = result.held
            bucket.unleased, bucket.total = result.unleased, result.total
            bucket.sharers = result.sharers
            bucket.synced, bucket.synced_at, bucket.updated_at = True, now, result.updated_at
            if bucket.remaining <= 0:
                bucket.dry_until = now + DRY_RECHECK_SECONDS
            if self._observe is not None:
                spec = bucket.spec
                self._observe(spec.name, spec.template, spec.capacity, bucket.balance)

    async def _keep(self) -> None:
        """Report spending, keep leases topped up and renewed, give idle ones back."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if not self._replayed:
                    await self._replay()
                await self._keep_once(self._clock())
            except Exception:  # keep going: the next round retries what failed
                log.exception("quota upkeep failed")

    async def _keep_once(self, now: float) -> None:
        due: list[tuple[Bucket, int]] = []
        for bucket in list(self._buckets.values()):
            want = self._want(bucket, now)
            if want is not None and bucket.syncing is None:
                due.append((bucket, want))
        for start in range(0, len(due), SYNC_BATCH):
            task = self._start_sync(due[start : start + SYNC_BATCH])
            with contextlib.suppress(QuotaUnavailable):
                await task
        self._forget_idle(now)
        if self._journal is not None and not any(b.spent for b in self._buckets.values()):
            self._journal.clear()

    async def _replay(self) -> None:
        """Report the journals of processes that are gone (see `irisgate.quotas.replay`)."""

        def spec_of(name: str) -> BucketSpec | None:
            known = self._buckets.get(name)
            return known.spec if known is not None else None

        await replay_orphans(self._db, self._folder, self.instance, spec_of)
        self._replayed = True

    def _want(self, bucket: Bucket, now: float) -> int | None:
        """The lease a background sync should ask for now, or None when none is due."""
        if not bucket.synced:
            return None
        idle = now - bucket.used_at > IDLE_SECONDS and not (bucket.reserved or bucket.pins)
        if idle:
            return 0 if bucket.held or bucket.spent else None
        lease = bucket.lease_size
        want = lease + bucket.reserved
        due = now - bucket.synced_at
        if bucket.remaining < lease // 2 and now >= bucket.dry_until:
            return want
        if self._oversized(bucket, lease):
            return want  # the bucket runs low (or more instances share it): give back
        if bucket.spent and due >= REPORT_SECONDS:
            # the lease still holds enough: report out of it, leaving the bucket's row alone
            return KEEP if bucket.held >= bucket.spent else want
        return KEEP if bucket.held and due >= RENEW_SECONDS else None

    @staticmethod
    def _oversized(bucket: Bucket, lease: int) -> bool:
        """Whether the lease holds well beyond its size while the bucket's unleased money
        runs short (under half its balance): only then can the excess be missed by another
        instance, so only then is it given back (a sync locking the bucket's row)."""
        return (
            lease < bucket.full_lease
            and bucket.remaining > lease + lease // 2
            and bucket.unleased < bucket.total // 2
        )

    def _forget_idle(self, now: float) -> None:
        for name, bucket in list(self._buckets.items()):
            quiet = now - bucket.used_at > 10 * IDLE_SECONDS
            busy = bucket.held or bucket.spent or bucket.reserved or bucket.pins or bucket.syncing
            if quiet and not busy:
                del self._buckets[name]


def _utcnow() -> datetime:
    return datetime.now(UTC)
