"""The alert rows on both backends: several instances (here: several database pools) raising
the same alert at once make one row and one set of deliveries; clearing re-arms it as the
next episode; a due delivery is claimed by one instance only, and comes back when the claim
expires or a failure schedules a retry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from irisgate.alerts import table
from irisgate.alerts.delivery import backoff
from irisgate.alerts.signal import Signal
from irisgate.store.database import Database, open_database

CROSSED = Signal(
    "budget", "team", "80", severity="warning", message="team reached 80 %", login_name=""
)


async def test_instances_raising_one_alert_together_make_one_row(db: Database) -> None:
    others = [await open_database(db.url) for _ in range(3)]
    try:
        now = datetime.now(UTC)
        ids = await asyncio.gather(
            *(
                table.raise_alert(pool, CROSSED, ["ops", "mail"], now)
                for pool in [db, *others]
                for _ in range(5)
            )
        )
    finally:
        for pool in others:
            await pool.close()
    winners = [i for i in ids if i is not None]
    assert len(winners) == 1
    rows = await table.listing(db, login_name=None, reader="admin", limit=10, before=None)
    assert [(r["kind"], r["subject"], r["threshold"], r["episode"]) for r in rows] == [
        ("budget", "team", "80", 1)
    ]
    assert sorted(d["channel"] for d in rows[0]["deliveries"]) == ["mail", "ops"]


async def test_clearing_re_arms_the_alert_as_its_next_episode(db: Database) -> None:
    now = datetime.now(UTC)
    first = await table.raise_alert(db, CROSSED, [], now)
    assert first is not None
    assert await table.raise_alert(db, CROSSED, [], now) is None  # still raised
    assert await table.raised(db, now) == {("budget", "team", "80")}
    assert await table.clear_alert(db, CROSSED.cleared(), now) == 1
    assert await table.clear_alert(db, CROSSED.cleared(), now) == 0
    assert await table.raised(db, now) == set()
    second = await table.raise_alert(db, CROSSED, [], now)
    assert second is not None and second != first
    rows = await table.listing(db, login_name=None, reader="admin", limit=10, before=None)
    assert [(r["episode"], r["cleared_at"] is not None) for r in rows] == [(2, False), (1, True)]


async def test_a_due_delivery_is_claimed_once_and_retried_when_it_failed(db: Database) -> None:
    now = datetime.now(UTC)
    await table.raise_alert(db, CROSSED, ["ops"], now)
    other = await open_database(db.url)
    try:
        claims = await asyncio.gather(table.claim(db, now), table.claim(other, now))
        assert sorted(len(c) for c in claims) == [0, 1]
        due = next(c for c in claims if c)[0]
        assert (due.channel, due.attempts, due.alert["subject"]) == ("ops", 0, "team")
        assert await table.claim(other, now) == []  # claimed: nobody else takes it
        later = now + timedelta(seconds=table.CLAIM_SECONDS + 1)
        assert [d.id for d in await table.claim(other, later)] == [due.id]  # claim expired
        await table.failed(
            db, due.id, "HTTP 503", retry_at=later + timedelta(seconds=30), now=later
        )
        assert await table.claim(db, later + timedelta(seconds=29)) == []
        again = await table.claim(db, later + timedelta(seconds=30))
        assert [(d.id, d.attempts) for d in again] == [(due.id, 1)]
        await table.failed(db, due.id, "HTTP 503 again", retry_at=None, now=later)
        failed = await table.failed_deliveries(db, limit=10)
        assert [(d["state"], d["attempts"], d["last_error"]) for d in failed] == [
            ("failed", 2, "HTTP 503 again")
        ]
        assert await table.claim(db, later + timedelta(days=1)) == []  # given up for good
    finally:
        await other.close()


def test_back_off_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 30, 600) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]
    assert backoff(10_000, 1, 3600) == 3600
