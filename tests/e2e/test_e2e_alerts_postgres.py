"""Alerts on PostgreSQL: two irisgate instances on one database share a budget; both run
into its thresholds (each is refused only after learning the balance from the database, so
each sees the crossing) and the alert is raised once, delivered once. A database outage is
alerted once the database is back."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from conftest import ALICE_IP, BOB_IP, _socket_of, client_from, gateway_config
from sqlalchemy.engine import make_url
from test_e2e_alerts import alert_config, ask
from test_e2e_postgres import ADMIN_URL, _admin

from irisgate.runtime import Runtime
from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.fake_server import wait_until
from irisgate.testing.fake_webhook import FakeWebhook
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.postgres import PostgresCluster

pytestmark = pytest.mark.skipif(
    os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0",
    reason="IRISGATE_TEST_POSTGRES=0",
)
TEAM = {"team": {"capacity": "$0.0005", "rate": "$0/day"}}


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"irisgate_alerts_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_two_instances_raise_a_shared_budget_alert_once(
    pg_url: str, fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    with FakeWebhook() as webhook:
        config = alert_config(
            fake_llm.base_url,
            {
                "budgets": {"team": [50, 100]},
                "channels": {"ops": {"type": "webhook", "url": webhook.url("ops")}},
            },
            quotas=TEAM,
        )
        pair = [
            InProcessIrisgate(
                config,
                data_dir=tmp_path / f"gw{n}",
                identity="tailscale",
                tailscaled_socket=_socket_of(localapi),
                database=pg_url,
            )
            for n in range(2)
        ]
        with pair[0], pair[1]:
            refused = [False, False]
            for turn in range(200):  # in turns until both were refused
                n = turn % 2
                try:
                    ask(pair[n], BOB_IP)
                except anthropic.RateLimitError:
                    refused[n] = True
                if all(refused):
                    break
            assert all(refused)

            def states() -> list[tuple[str, str, str]]:
                listing = client_from(ALICE_IP, pair[1]).get("/api/alerts").json()
                return [
                    (a["threshold"], d["channel"], d["state"])
                    for a in listing["alerts"]
                    for d in a["deliveries"]
                ]

            assert wait_until(
                lambda: states() == [("100", "ops", "delivered"), ("50", "ops", "delivered")]
            )
            runtimes: list[Runtime] = [gw.client.app_state["runtime"] for gw in pair]
            assert sum(r.alerts.raised_total for r in runtimes) == 2
            assert sorted(p["alert"]["threshold"] for p in webhook.received("ops")) == ["100", "50"]
            assert webhook.attempts("ops") == 2
            first = client_from(ALICE_IP, pair[0]).get("/api/alerts").json()["alerts"]
            assert {(a["subject"], a["user"]) for a in first} == {("team", None)}


def test_a_database_outage_is_alerted_once_it_is_over(
    postgres_cluster: PostgresCluster, fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """Alerts live in the database: the outage's alert is raised (and cleared) when it can
    be written, and delivered then, saying since when the database was unavailable."""
    pg = postgres_cluster
    with FakeWebhook() as webhook:
        config = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])  # no budget
        config["alerts"] = {"channels": {"ops": {"type": "webhook", "url": webhook.url("ops")}}}
        with InProcessIrisgate(
            json.dumps(config),
            data_dir=tmp_path / "gw",
            identity="tailscale",
            tailscaled_socket=_socket_of(localapi),
            database=pg.url,
        ) as gw:
            ask(gw, BOB_IP)
            pg.stop()
            admin = client_from(ALICE_IP, gw)
            assert admin.get("/api/alerts").status_code == 503  # the store is down
            ask(gw, BOB_IP)  # still answered (spooled); the writer finds the database down
            runtime: Runtime = gw.client.app_state["runtime"]
            assert wait_until(lambda: runtime.db.availability.down)
            pg.start()
            assert wait_until(lambda: len(webhook.received("ops")) == 1, 60)
            posted = webhook.received("ops")[0]["alert"]
            assert (posted["kind"], posted["subject"], posted["severity"]) == (
                "storage",
                "database",
                "critical",
            )
            assert posted["message"].startswith("the database is unavailable (since ")

            def storage() -> list[dict[str, Any]]:
                alerts = admin.get("/api/alerts").json()["alerts"]
                return [a for a in alerts if a["kind"] == "storage"]

            assert wait_until(lambda: [a["cleared_at"] is not None for a in storage()] == [True])
