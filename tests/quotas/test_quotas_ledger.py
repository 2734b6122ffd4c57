"""The quota ledger's admission and settlement, branch by branch, on a real SQLite database.

In process: `Ledger` over irisgate's own store (a migrated SQLite file), with a clock the
test moves. Each test is one situation a caller would meet: a first request leasing money,
a chain spilling into its overdraft, a bucket exhausted or busy, the store unavailable.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from irisgate.access.grants import Access
from irisgate.config.model import Capability, Config, Quota, QuotaRef
from irisgate.identity import Identity
from irisgate.quotas import balances
from irisgate.quotas.charges import Chain, Link, charges_for, expand, template_of
from irisgate.quotas.inflight import SEED_SECONDS, InFlight
from irisgate.quotas.ledger import (
    LEASE_DIVISOR,
    Ledger,
    QuotaRefused,
    QuotaUnavailable,
    reserve_amount,
    retry_after,
)
from irisgate.store.database import Database, open_database

D = 1_000_000_000  # one dollar in nanodollars
DAY = 86_400


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
async def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating costs about a second)."""
    path = tmp_path_factory.mktemp("ledger") / "irisgate.db"
    database = await open_database(f"sqlite:///{path}")
    await database.close()
    return path


@pytest.fixture
async def db(tmp_path: Path, migrated: Path) -> AsyncIterator[Database]:
    (tmp_path / "data").mkdir()
    shutil.copyfile(migrated, tmp_path / "data" / "irisgate.db")
    database = await open_database(f"sqlite:///{tmp_path}/data/irisgate.db", migrate=False)
    yield database
    await database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(db: Database, tmp_path: Path, clock: Clock) -> Ledger:
    return Ledger(db, tmp_path / "data", clock)


def quota(
    name: str,
    capacity: int = 100 * D,
    *,
    rate: int = 0,
    default: int = D // 100,
    given: bool = False,
) -> Quota:
    return Quota(
        name,
        capacity,
        rate,
        DAY,
        "$0/day",
        "$100",
        default_estimate_nanodollars=default,
        default_estimate_given=given,
    )


def chain(*quotas: Quota) -> Chain:
    return tuple(Link(q.template, q.template, q) for q in quotas)


async def balance(db: Database, name: str) -> int:
    """The bucket's balance as the database has it (leases included)."""
    return (await balances.rows(db))[name].balance


# Admission


async def test_a_first_request_leases_a_tenth_and_reserves_its_estimate(
    ledger: Ledger, db: Database
) -> None:
    team = quota("team")
    reservation = await ledger.admit((chain(team),), 5 * D)
    bucket = ledger.known("team")
    assert bucket is not None
    assert (bucket.held, bucket.reserved, bucket.remaining) == (10 * D, 5 * D, 5 * D)
    assert (bucket.unleased, bucket.total, bucket.balance) == (90 * D, 100 * D, 100 * D)
    assert ledger.syncs == 1
    assert await balance(db, "team") == 100 * D  # the lease is still the bucket's money
    assert len(bucket.inflight) == 1 and bucket.pins == 1
    # the next request fits in the lease: no database round trip
    second = await ledger.admit((chain(team),), 2 * D)
    assert ledger.syncs == 1 and bucket.reserved == 7 * D
    ledger.settle(second, 2 * D)
    ledger.settle(reservation, 5 * D)


async def test_settle_releases_the_reservation_and_charges_the_cost(ledger: Ledger) -> None:
    reservation = await ledger.admit((chain(quota("team")),), 5 * D)
    bucket = ledger.known("team")
    assert bucket is not None
    ledger.settle(reservation, 3 * D)
    assert (bucket.reserved, bucket.spent, bucket.remaining) == (0, 3 * D, 7 * D)
    assert bucket.balance == 97 * D
    assert len(bucket.inflight) == 0 and bucket.pins == 0
    ledger.settle(reservation, 3 * D)  # settled once: a second settle charges nothing
    assert bucket.spent == 3 * D


async def test_a_request_that_cost_nothing_is_released_without_a_charge(ledger: Ledger) -> None:
    reservation = await ledger.admit((chain(quota("team")),), 5 * D)
    ledger.settle(reservation, 0)
    bucket = ledger.known("team")
    assert bucket is not None
    assert (bucket.reserved, bucket.spent, bucket.seq) == (0, 0, 0)


@pytest.mark.parametrize(
    ("estimate", "limited", "given", "reserved"),
    [
        (5 * D, True, False, 5 * D),  # the request's own estimate
        (None, True, False, D // 100),  # an unpriced model: the bucket's default estimate
        (5 * D, False, False, 5 * D),  # no output limit, no default set: still the estimate
        (5 * D, False, True, D // 100),  # no output limit and the file set a default
        (5 * D, True, True, 5 * D),  # an output limit: the estimate, default or not
    ],
)
async def test_what_a_request_reserves(
    ledger: Ledger, estimate: int | None, limited: bool, given: bool, reserved: int
) -> None:
    team = quota("team", given=given)
    assert reserve_amount(team, estimate, limited) == reserved
    reservation = await ledger.admit((chain(team),), estimate, limited=limited)
    bucket = ledger.known("team")
    assert bucket is not None and bucket.reserved == reserved
    ledger.settle(reservation, 0)


async def test_an_invalid_quota_refuses_every_request_charging_it(ledger: Ledger) -> None:
    broken = Link("team", "team", None, 'bucket "team" is not defined in quotas')
    with pytest.raises(QuotaRefused) as caught:
        await ledger.admit((chain(quota("ok")), (broken,)), D)
    assert caught.value.message == (
        'quota team is invalid, so requests charging it are refused: bucket "team" is not '
        "defined in quotas"
    )
    assert (caught.value.retry_after, caught.value.templates) == (None, ("team",))
    assert ledger.syncs == 0  # refused before anything is leased


async def test_chains_are_each_charged_the_full_cost(ledger: Ledger) -> None:
    reservation = await ledger.admit((chain(quota("team")), chain(quota("me"))), 2 * D)
    assert ledger.syncs == 1  # both new buckets leased in one transaction
    ledger.settle(reservation, 3 * D)
    team, me = ledger.known("team"), ledger.known("me")
    assert team is not None and me is not None
    assert team.spent == me.spent == 3 * D


async def test_an_overdraft_chain_spends_its_first_bucket_before_the_next(ledger: Ledger) -> None:
    own, shared = quota("own", capacity=D), quota("shared")
    # the first bucket's lease ($0.10) is short of the estimate while its row still has
    # money: it is topped up first instead of borrowing from the next bucket
    reservation = await ledger.admit((chain(own, shared),), D // 2)
    first, second = ledger.known("own"), ledger.known("shared")
    assert first is not None and second is not None
    assert first.held == D // 2 and (first.reserved, second.reserved) == (D // 2, 0)
    assert ledger.syncs == 2
    # it cost more than its estimate: what the first bucket has left, then the next
    ledger.settle(reservation, 8 * D // 10)
    assert (first.spent, second.spent) == (D // 2, 3 * D // 10)
    # the first bucket's row still has money: the next request is reserved there again
    again = await ledger.admit((chain(own, shared),), D // 10)
    assert (first.reserved, second.reserved) == (D // 10, 0)
    ledger.settle(again, 0)


async def test_an_exhausted_bucket_refuses_until_refill(ledger: Ledger, clock: Clock) -> None:
    tiny = quota("tiny", capacity=10 * D)
    reservation = await ledger.admit((chain(tiny),), D)
    ledger.settle(reservation, 10 * D)  # the whole bucket, beyond its $1 lease
    with pytest.raises(QuotaRefused) as caught:
        await ledger.admit((chain(tiny),), D)
    assert caught.value.message == (
        "quota exceeded: bucket tiny is exhausted (balance $0.00, $0.00 reserved by requests "
        "in flight); does not refill; ask an admin"
    )
    assert caught.value.retry_after is None and caught.value.templates == ("tiny",)
    syncs = ledger.syncs
    # within the recheck interval an exhausted bucket does not ask the database again
    with pytest.raises(QuotaRefused):
        await ledger.admit((chain(tiny),), D)
    assert ledger.syncs == syncs
    clock.now += 1.5
    with pytest.raises(QuotaRefused):
        await ledger.admit((chain(tiny),), D)
    assert ledger.syncs == syncs + 1


async def test_an_exhausted_bucket_that_refills_says_when(ledger: Ledger) -> None:
    slow = quota("slow", capacity=10 * D, rate=1)  # one nanodollar a day
    reservation = await ledger.admit((chain(slow),), D)
    ledger.settle(reservation, 10 * D)
    with pytest.raises(QuotaRefused) as caught:
        await ledger.admit((chain(slow),), D)
    assert caught.value.retry_after == DAY  # the first nanodollar
    assert caught.value.message.endswith(f"refills in {DAY} s")


async def test_money_reserved_in_flight_makes_a_bucket_busy_not_exhausted(
    ledger: Ledger, clock: Clock
) -> None:
    small = quota("small", capacity=D)
    first = await ledger.admit((chain(small),), D)  # reserves the whole bucket
    clock.now += 2
    with pytest.raises(QuotaRefused) as caught:
        await ledger.admit((chain(small),), D)
    assert caught.value.message == (
        "quota busy: bucket small has $1.00 unspent but none free here: $1.00 reserved by 1 "
        "request(s) in flight, the first expected to settle in about 3 s; retry in 3 s"
    )
    assert caught.value.retry_after == 3
    ledger.settle(first, D // 4)
    clock.now += 2  # past the recheck: the next request learns what the first gave back
    again = await ledger.admit((chain(small),), D // 4)
    ledger.settle(again, 0)


async def test_money_leased_to_another_instance_is_named_in_the_refusal(
    ledger: Ledger, db: Database, tmp_path: Path, clock: Clock
) -> None:
    other = Ledger(db, tmp_path / "other", clock)
    small = quota("small", capacity=D)
    held = await other.admit((chain(small),), D // 10)  # leases a tenth of the bucket
    spent = await ledger.admit((chain(small),), 9 * D // 10)
    ledger.settle(spent, 9 * D // 10)
    clock.now += 2
    with pytest.raises(QuotaRefused) as caught:
        await ledger.admit((chain(small),), D // 10)
    assert caught.value.message == (
        "quota busy: bucket small has $0.10 unspent but none free here: $0.10 leased to "
        "other irisgate instances; retry in 15 s"
    )
    assert caught.value.retry_after == 15
    other.settle(held, 0)


async def test_concurrent_first_requests_share_one_lease_transaction(ledger: Ledger) -> None:
    team = quota("team")
    done = await asyncio.gather(*(ledger.admit((chain(team),), D) for _ in range(5)))
    assert ledger.syncs == 1
    bucket = ledger.known("team")
    assert bucket is not None and bucket.reserved == 5 * D and bucket.pins == 5
    for reservation in done:
        ledger.settle(reservation, D)
    assert bucket.pins == 0 and bucket.spent == 5 * D


async def test_a_bucket_that_ran_dry_leases_what_the_database_still_has(
    ledger: Ledger, db: Database
) -> None:
    team = quota("team", capacity=10 * D)
    first = await ledger.admit((chain(team),), D)  # a $1 lease
    ledger.settle(first, 3 * D)  # cost more than the lease: remaining is negative
    bucket = ledger.known("team")
    assert bucket is not None and bucket.remaining == -2 * D
    again = await ledger.admit((chain(team),), D)
    assert bucket.remaining == 0 and bucket.reserved == D and bucket.spent == 0
    assert bucket.total == 7 * D and await balance(db, "team") == 7 * D
    ledger.settle(again, D)


async def test_a_dry_lease_with_money_left_in_the_row_is_topped_up_before_refusing(
    ledger: Ledger, clock: Clock
) -> None:
    team = quota("team", capacity=10 * D)
    # a bucket the upkeep found idle gave its lease back; within the recheck interval the
    # lease looks dry, but the row still has the money
    reservation = await ledger.admit((chain(team),), D)
    ledger.settle(reservation, 0)
    bucket = ledger.known("team")
    assert bucket is not None
    clock.now += 20
    ledger.start()  # its upkeep returns the idle lease
    try:
        assert await until(lambda: bucket.held == 0 and bucket.syncing is None)
        assert bucket.unleased == 10 * D and bucket.dry_until > clock()
        syncs = ledger.syncs
        again = await ledger.admit((chain(team),), D)
        assert ledger.syncs == syncs + 1 and bucket.held == D
        ledger.settle(again, 0)
    finally:
        await ledger.stop()


async def test_a_config_change_keeps_the_bucket_and_its_money(ledger: Ledger) -> None:
    reservation = await ledger.admit((chain(quota("team")),), D)
    bucket = ledger.known("team")
    bigger = quota("team", capacity=1000 * D)
    assert ledger.bucket("team", "team", bigger) is bucket
    assert bucket is not None and bucket.spec.capacity == 1000 * D and bucket.quota is bigger
    assert bucket.reserved == D
    ledger.settle(reservation, 0)


async def test_the_store_unavailable_refuses_a_new_bucket_only(
    tmp_path: Path, clock: Clock
) -> None:
    # a database without the quota tables: every sync fails
    broken = await open_database(f"sqlite:///{tmp_path}/empty.db", migrate=False)
    try:
        ledger = Ledger(broken, tmp_path / "data", clock)
        with pytest.raises(QuotaUnavailable, match="quota store unavailable"):
            await ledger.admit((chain(quota("team")),), D)
        bucket = ledger.known("team")
        assert bucket is not None and bucket.pins == 0  # nothing pinned by a failed admit
    finally:
        await broken.close()


async def test_a_known_bucket_keeps_working_while_the_store_is_away(
    ledger: Ledger, db: Database
) -> None:
    team = quota("team", capacity=10 * D)
    first = await ledger.admit((chain(team),), D)
    ledger.settle(first, 2 * D)  # the lease is overdrawn: the next request wants a sync
    async with db.begin() as conn:  # the store breaks: every sync fails from now on
        await conn.exec_driver_sql("DROP TABLE quota_leases")
    with pytest.raises(QuotaRefused) as caught:  # refused on what it knows, not unavailable
        await ledger.admit((chain(team),), D)
    assert caught.value.message == (
        "quota busy: bucket team has $8.00 unspent but none free here: held elsewhere; "
        "retry in 15 s"
    )


async def until(predicate: Callable[[], bool]) -> bool:
    """Let the loop run (the ledger's upkeep works) until `predicate` holds; its last value
    after 30 s at most."""
    for _ in range(3000):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


# Settlement with the journal, and the upkeep it wakes


async def test_settled_spending_is_journaled_and_reported_when_the_lease_runs_low(
    ledger: Ledger, db: Database
) -> None:
    ledger.start()
    try:
        team = quota("team", capacity=10 * D)
        reservation = await ledger.admit((chain(team),), D // 10)
        bucket = ledger.known("team")
        assert bucket is not None
        syncs = ledger.syncs
        ledger.settle(reservation, 9 * D // 10)  # leaves less than half a lease: wakes upkeep
        assert bucket.seq == 1  # the journal entry that covers it
        assert await until(lambda: ledger.syncs > syncs and bucket.spent == 0)
        assert bucket.balance == 91 * D // 10
    finally:
        await ledger.stop()
    assert await balance(db, "team") == 91 * D // 10  # reported, every lease given back


async def test_spending_the_lease_covers_is_reported_out_of_it_within_a_second(
    ledger: Ledger, db: Database, clock: Clock
) -> None:
    team = quota("team", capacity=10 * D)
    reservation = await ledger.admit((chain(team),), D // 10)
    ledger.settle(reservation, D // 10)  # the $1 lease still holds $0.90: nothing due yet
    bucket = ledger.known("team")
    assert bucket is not None
    ledger.start()
    try:
        clock.now += 1.5
        assert await until(lambda: bucket.spent == 0)
        assert bucket.held == 9 * D // 10  # taken out of the lease, the row left alone
        assert bucket.total == 99 * D // 10 and bucket.balance == 99 * D // 10
        syncs = ledger.syncs
        clock.now += 11  # a lease is renewed well inside its time to live
        assert await until(lambda: ledger.syncs > syncs)
        assert bucket.held == 9 * D // 10
    finally:
        await ledger.stop()
    assert await balance(db, "team") == 99 * D // 10


async def test_an_idle_bucket_gives_its_lease_back_and_is_forgotten_later(
    ledger: Ledger, db: Database, clock: Clock
) -> None:
    reservation = await ledger.admit((chain(quota("team", capacity=10 * D)),), D)
    ledger.settle(reservation, D)
    bucket = ledger.known("team")
    assert bucket is not None
    ledger.start()
    try:
        clock.now += 16
        assert await until(lambda: bucket.held == 0 and bucket.spent == 0)
        assert await balance(db, "team") == 9 * D
        clock.now += 150
        assert await until(lambda: ledger.known("team") is None)
    finally:
        await ledger.stop()


async def test_stopping_reports_spending_and_returns_leases(ledger: Ledger, db: Database) -> None:
    reservation = await ledger.admit((chain(quota("team", capacity=10 * D)),), D)
    ledger.settle(reservation, D // 2)
    await ledger.stop()  # never started: still reports what it knows
    assert await balance(db, "team") == 19 * D // 2
    rows = await balances.rows(db)
    assert rows["team"].balance == 19 * D // 2


async def test_an_admins_refill_and_set_reach_the_next_request(
    ledger: Ledger, db: Database
) -> None:
    team = quota("team", capacity=10 * D)
    first = await ledger.admit((chain(team),), D)
    ledger.settle(first, 4 * D)  # beyond the lease: reported before the change
    row = await ledger.adjust("team", "team", team, action="refill", amount=D, who="admin")
    assert row.balance == 7 * D
    bucket = ledger.known("team")
    assert bucket is not None and bucket.spent == 0 and bucket.total == 7 * D
    row = await ledger.adjust("team", "team", team, action="set", amount=0, who="admin")
    assert row.balance == 0 and bucket.held == 0  # a set revokes every lease, this one too
    with pytest.raises(QuotaRefused, match="exhausted"):
        await ledger.admit((chain(team),), D)
    await ledger.adjust("team", "team", team, action="set", amount=5 * D, who="admin")
    again = await ledger.admit((chain(team),), D)  # the change lifted the dry wait
    ledger.settle(again, D)
    assert bucket.balance == 4 * D


# The pieces admission is made of


def test_retry_after_counts_the_deficit_at_the_chains_refill_rate(ledger: Ledger) -> None:
    a, b = ledger.bucket("a", "a", quota("a", rate=DAY)), ledger.bucket("b", "b", quota("b"))
    assert retry_after([b]) is None  # no refill
    assert retry_after([a]) == 1  # nothing owed: the next second
    a.spent = 10  # remaining -10 at 1 nanodollar a second: 11 s until it is positive
    assert retry_after([a, b]) == 11
    b.unleased = -5  # the row is overdrawn too
    assert retry_after([a, b]) == 16


def test_in_flight_settlement_is_expected_after_the_typical_duration() -> None:
    inflight = InFlight()
    assert inflight.next_settlement(100.0) == SEED_SECONDS  # nothing in flight yet
    inflight.begin(1, 100.0)
    assert inflight.next_settlement(101.0) == SEED_SECONDS - 1
    inflight.end(1, 110.0)  # lasted 10 s: the typical moves a fifth of the way
    inflight.begin(2, 200.0)
    assert inflight.next_settlement(200.0) == 6
    assert inflight.next_settlement(300.0) == 1  # overdue: at least a second
    inflight.end(99, 300.0)  # unknown: ignored
    assert len(inflight) == 1


def test_the_lease_is_a_tenth_of_the_capacity_and_never_zero(ledger: Ledger) -> None:
    assert ledger.bucket("a", "a", quota("a", capacity=100 * D)).lease_size == 10 * D
    assert ledger.bucket("b", "b", quota("b", capacity=5)).lease_size == 1
    assert LEASE_DIVISOR == 10


# Which buckets a request charges


def _access(*refs: QuotaRef, models: tuple[str, ...] = ()) -> Access:
    return Access("user", (Capability(models=models, quotas=refs),))


def test_charges_expand_user_and_node_and_follow_overdrafts() -> None:
    config = Config(
        {},
        (),
        quotas={"me:<user>": quota("me:<user>"), "node:<node>": quota("node:<node>")},
        broken_quotas={"bad": "capacity must be positive"},
    )
    alice = Identity("alice@example.com", node_id="n1")
    access = Access(
        "user",
        (
            Capability(quotas=(QuotaRef("me:<user>", ("node:<node>",)),)),
            Capability(models=("openai/*",), quotas=(QuotaRef("me:<user>", ("node:<node>",)),)),
            Capability(models=("openai/*",), quotas=(QuotaRef("bad"), QuotaRef("nowhere"))),
            Capability(models=("other/*",), quotas=(QuotaRef("node:<node>"),)),
        ),
    )
    chains = charges_for(config, access, alice, "openai/gpt-4o")
    assert [[link.name for link in c] for c in chains] == [
        ["me:alice@example.com", "node:n1"],  # the same chain twice is charged once
        ["bad"],
        ["nowhere"],
    ]
    assert chains[1][0].quota is None and chains[1][0].problem == "capacity must be positive"
    assert chains[2][0].problem == 'bucket "nowhere" is not defined in quotas'
    assert charges_for(config, access, alice, "openai/gpt-4o") is chains  # kept per access
    nodeless = Identity("bob@example.com")  # a caller without a node: a bucket of their own
    (link,) = charges_for(config, _access(QuotaRef("node:<node>")), nodeless, "x/y")[0]
    assert link.name == "node:user:bob@example.com" and link.quota is not None
    assert charges_for(config, Access("user", ()), alice, "openai/gpt-4o") == ()
    assert expand("team:<user>@<node>", alice) == "team:alice@example.com@n1"


def test_a_bucket_name_leads_back_to_its_template() -> None:
    config = Config({}, (), quotas={"team": quota("team"), "me:<user>": quota("me:<user>")})
    assert template_of(config, "team") == "team"
    assert template_of(config, "me:alice@example.com") == "me:<user>"
    assert template_of(config, "me:") is None
    assert template_of(config, "unknown") is None


async def test_an_admission_racing_an_idle_lease_return_is_not_refused(
    ledger: Ledger, db: Database, clock: Clock
) -> None:
    # Two chains: `mine` gave its idle lease back a moment ago (its lease looks dry, its row
    # has the money), `team` is about to give its own back. The admission tops `mine` up;
    # meanwhile the upkeep's return of `team` commits, leaving `team` without a lease though
    # its row holds $10: the admission must lease again, not refuse "held elsewhere".
    mine, team = quota("mine", capacity=10 * D), quota("team", capacity=10 * D)
    first = await ledger.admit((chain(mine),), D)
    ledger.settle(first, 0)
    clock.now += 0.5
    second = await ledger.admit((chain(team),), D)
    ledger.settle(second, 0)
    clock.now += 14.7  # `mine` is idle (15.2 s), `team` not yet (14.7 s)
    await ledger._keep_once(clock())
    a, b = ledger.known("mine"), ledger.known("team")
    assert a is not None and b is not None
    assert a.held == 0 and a.dry_until > clock() and a.unleased == 10 * D
    clock.now += 0.6  # `team` is idle now; `mine` is still within its dry recheck
    returning = asyncio.create_task(ledger._keep_once(clock()))
    await asyncio.sleep(0)  # the upkeep has started returning `team`'s lease
    assert b.syncing is not None and b.held == D
    reservation = await ledger.admit((chain(mine), chain(team)), D)
    await returning
    assert b.syncing is None and b.held >= D and b.reserved == D
    ledger.settle(reservation, D)
    await ledger.stop()
    assert await balance(db, "team") == 9 * D and await balance(db, "mine") == 9 * D
