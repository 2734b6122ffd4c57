"""The alert watch on a real database (SQLite), one round at a time: what its probes report
(the database's availability as the store tracks it, the spool, provider health) becomes
raised and cleared alerts; the spend-spike rule over daily spend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest

from irisgate.access.health import Health, ProviderView
from irisgate.alerts import table
from irisgate.alerts.spikes import TOTAL, spike_signals
from irisgate.alerts.watch import AlertWatch, Probes
from irisgate.config.model import AlertSettings, SpendSpike
from irisgate.store.database import Database, open_database

D = 1_000_000_000


@dataclass
class World:
    database_down: bool = False
    database_outages: int = 0
    spool_full: bool = False
    health: Health = field(default_factory=lambda: Health(threshold=2, cool_down=60))

    def providers(self) -> list[ProviderView]:
        return self.health.views([("openai", 1)], version=1)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path}/irisgate.db")
    yield database
    await database.close()


def watch_of(db: Database, world: World, settings: AlertSettings | None = None) -> AlertWatch:
    probes = Probes(
        world.providers,
        lambda: world.database_down,
        lambda: world.spool_full,
        database_outages=lambda: world.database_outages,
    )
    return AlertWatch(db, lambda: settings or AlertSettings(), probes)


async def raised(db: Database) -> set[tuple[str, str, str]]:
    from datetime import UTC, datetime

    return await table.raised(db, datetime.now(UTC))


async def test_storage_outages_are_raised_then_cleared(db: Database) -> None:
    world = World()
    watch = watch_of(db, world)
    await watch.run_once()
    assert await raised(db) == set()
    world.spool_full = True
    await watch.run_once()
    assert await raised(db) == {("storage", "spool", "")}
    rows = await table.listing(db, login_name=None, reader="admin", limit=5, before=None)
    assert rows[0]["severity"] == "critical"
    assert rows[0]["message"].startswith("the capture spool is unavailable and full")
    await watch.run_once()  # still full: nothing new
    assert len(await table.listing(db, login_name=None, reader="a", limit=5, before=None)) == 1
    world.spool_full = False
    await watch.run_once()
    assert await raised(db) == set()
    world.spool_full = True  # a second outage is a second alert
    await watch.run_once()
    rows = await table.listing(db, login_name=None, reader="admin", limit=5, before=None)
    assert [r["episode"] for r in rows] == [2, 1]


async def test_a_database_outage_shorter_than_a_round_is_alerted(db: Database) -> None:
    world = World()
    watch = watch_of(db, world)
    await watch.run_once()
    world.database_outages = 1  # down and up again between two rounds
    await watch.run_once()
    rows = await table.listing(db, login_name=None, reader="admin", limit=5, before=None)
    assert [(r["kind"], r["subject"], r["cleared_at"] is not None) for r in rows] == [
        ("storage", "database", True)
    ]
    assert rows[0]["message"].startswith("the database is unavailable (since ")
    await watch.run_once()  # the same outage: nothing new
    assert len(await table.listing(db, login_name=None, reader="a", limit=5, before=None)) == 1


async def test_an_open_circuit_and_a_dropped_key_are_provider_alerts(db: Database) -> None:
    world = World()
    watch = watch_of(db, world)
    world.health.report("openai", 0, "failed", error="HTTP 503")
    world.health.report("openai", 0, "failed", error="HTTP 503")  # the threshold: open
    world.health.report("openai", 0, "unauthorized", version=1)
    await watch.run_once()
    assert await raised(db) == {("provider", "openai", ""), ("provider", "openai key 0", "")}
    world.health.report("openai", 0, "ok")  # the circuit closes
    await watch.run_once()
    assert await raised(db) == {("provider", "openai key 0", "")}


async def test_turned_off_rules_raise_nothing(db: Database) -> None:
    world = World(database_down=True)
    world.health.report("openai", 0, "failed")
    world.health.report("openai", 0, "failed")
    off = AlertSettings(providers=False, storage=False, upstream_errors=None)
    await watch_of(db, world, off).run_once()
    assert await raised(db) == set()


def test_a_spend_spike_per_user_and_in_total() -> None:
    today = date(2026, 12, 7)
    rule = SpendSpike(multiple=3, days=7, minimum_nanodollars=D)
    spend = {(today - timedelta(days=n), "alice@example.com"): D for n in range(1, 8)}
    spend |= {(today - timedelta(days=n), "bob@example.com"): D for n in range(1, 8)}
    spend[(today, "alice@example.com")] = 4 * D  # 4x her average of $1
    spend[(today, "bob@example.com")] = 2 * D  # 2x: no spike
    signals = spike_signals(spend, today, rule)
    assert [(s.subject, s.threshold, s.login_name) for s in signals] == [
        ("alice@example.com", "2026-12-07", "alice@example.com")
    ]  # the total ($6 against an average of $2) is 3x, not more
    assert "more than 3 times the daily average of the 7 days before ($1.00)" in signals[0].message
    spend[(today, "bob@example.com")] = 3 * D
    subjects = [s.subject for s in spike_signals(spend, today, rule)]
    assert subjects == [TOTAL, "alice@example.com"]  # $7 > 3 x $2
    # a new user's first day is a spike once it reaches the minimum
    fresh = {(today, "carol@example.com"): D // 2}
    assert spike_signals(fresh, today, rule) == []
    fresh[(today, "carol@example.com")] = D
    assert [s.subject for s in spike_signals(fresh, today, rule)] == [TOTAL, "carol@example.com"]


async def test_the_export_backlog_rule(db: Database) -> None:
    from datetime import UTC, datetime

    from irisgate.alerts.backlog import backlog_signal, oldest_unexported

    assert await oldest_unexported(db) is None  # nothing recorded: nothing behind
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert not backlog_signal(None, 3600, now).active
    assert not backlog_signal(now - timedelta(hours=2), 3600, now).active  # within 3 runs
    behind = backlog_signal(now - timedelta(hours=4), 3600, now)
    assert behind.active and behind.key == ("export", "s3 backlog", "")
    assert "oldest record not exported is from 2026-12-07 08:00 UTC (4.0 h ago" in behind.message
    assert backlog_signal(now - timedelta(minutes=61), 60, now).active  # at least an hour
    assert not backlog_signal(now - timedelta(minutes=59), 60, now).active
