"""The gateway's quota stage: which requests are checked, how a refusal is answered, what a
settlement teaches and reports. In process, over a real config snapshot and SQLite store."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from irisgate.config.schema import build_config
from irisgate.gateway.errors import GatewayError
from irisgate.gateway.formats.registry import OPENAI_CHAT
from irisgate.identity import Identity
from irisgate.quotas.gate import QuotaGate
from irisgate.snapshot import Snapshot
from irisgate.store.database import Database, open_database
from irisgate.telemetry.metrics import Metrics

D = 1_000_000_000
ALICE = Identity("alice@example.com", node_id="n1")
BOB = Identity("bob@example.com", node_id="n2")
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def snapshot(team_capacity: str = "$1", rate: str = "$0/day") -> Snapshot:
    text = json.dumps(
        {
            "providers": {
                "openai": {
                    "baseurl": "http://127.0.0.1:9",
                    "apikey": "k",
                    "models": ["gpt-4o-mini"],
                    "compatibility": {"openai_chat": True},
                }
            },
            "quotas": {
                "team": {"capacity": team_capacity, "rate": rate},
                "me:<user>": {"capacity": "$10", "rate": "$0/day"},
            },
            "grants": [
                {
                    "src": ["alice@example.com"],
                    "app": {
                        "tailscale.com/cap/aperture": [
                            {"role": "user", "models": "**"},
                            {"quotas": [{"bucket": "team"}, {"bucket": "me:<user>"}]},
                        ]
                    },
                },
                {
                    "src": ["bob@example.com"],
                    "app": {"tailscale.com/cap/aperture": [{"role": "user", "models": "**"}]},
                },
            ],
        }
    )
    config, issues = build_config(text, {})
    assert not [i for i in issues if i.severity == "error"], issues
    return Snapshot(1, "h", text, config)


@pytest.fixture(scope="session")
async def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "irisgate.db"
    database = await open_database(f"sqlite:///{path}")
    await database.close()
    return path


@pytest.fixture
async def db(tmp_path: Path, migrated: Path) -> AsyncIterator[Database]:
    shutil.copyfile(migrated, tmp_path / "irisgate.db")
    database = await open_database(f"sqlite:///{tmp_path}/irisgate.db", migrate=False)
    yield database
    await database.close()


@pytest.fixture
def gate(db: Database, tmp_path: Path) -> QuotaGate:
    quotas = QuotaGate(db, tmp_path / "data", max_reservation=100 * D)
    quotas.metrics = Metrics()
    return quotas


async def admit(gate: QuotaGate, snap: Snapshot, who: Identity, body: dict[str, Any]) -> Any:
    access = snap.grants.access_for(who)
    route = snap.routes.resolve(body["model"], OPENAI_CHAT.flag, OPENAI_CHAT.title, access)
    return await gate.admit(
        snap,
        access=access,
        identity=who,
        route=route,
        format_basis=OPENAI_CHAT.cost_basis,
        body=body,
        body_size=len(json.dumps(body)),
    )


def sample(gate: QuotaGate, name: str, **labels: str) -> float | None:
    assert gate.metrics is not None
    return gate.metrics.registry.get_sample_value(name, labels)


async def test_a_caller_without_quotas_is_not_checked(gate: QuotaGate) -> None:
    assert await admit(gate, snapshot(), BOB, BODY) is None
    assert gate.describe(None) == {}


async def test_admission_reserves_in_every_bucket_and_settlement_reports_shared_ones(
    gate: QuotaGate,
) -> None:
    snap = snapshot()
    admission = await admit(gate, snap, ALICE, {**BODY, "max_tokens": 100})
    assert admission is not None and admission.guess.limited
    assert [[link.name for link in c] for c in admission.chains] == [
        ["team"],
        ["me:alice@example.com"],
    ]
    described = gate.describe(admission)
    assert described["team"] == {"current": D, "capacity": D, "rate": "$0/day"}
    assert described["me:alice@example.com"]["capacity"] == 10 * D
    gate.settle(admission, D // 4, output_tokens=50)
    assert gate.describe(admission)["team"]["current"] == 3 * D // 4
    # the shared bucket's balance is a metric; a per-user bucket's name never is a label
    assert sample(gate, "irisgate_quota_balance_dollars", bucket="team") == 0.75
    assert sample(gate, "irisgate_quota_balance_dollars", bucket="me:alice@example.com") is None
    assert gate.typical.of("openai/gpt-4o-mini") != 50  # a request with a limit teaches nothing


async def test_an_answer_without_an_output_limit_teaches_the_typical_length(
    gate: QuotaGate,
) -> None:
    admission = await admit(gate, snapshot(), ALICE, BODY)
    assert admission is not None and not admission.guess.limited
    gate.settle(admission, None, output_tokens=777)  # unpriced: costs nothing
    assert gate.typical.of("openai/gpt-4o-mini") == 777
    assert gate.describe(admission)["team"]["current"] == D


async def test_a_refusal_is_a_429_with_retry_after_and_counted(gate: QuotaGate) -> None:
    snap = snapshot(team_capacity="$0.000001", rate="$1/day")
    first = await admit(gate, snap, ALICE, {**BODY, "max_tokens": 100})
    gate.settle(first, D)  # far beyond the bucket
    with pytest.raises(GatewayError) as caught:
        await admit(gate, snap, ALICE, {**BODY, "max_tokens": 100})
    error = caught.value
    assert error.status == 429
    assert error.message.startswith("quota exceeded: bucket team is exhausted")
    assert int(error.headers["Retry-After"]) > 0
    assert sample(gate, "irisgate_quota_rejections_total", bucket="team") == 1


async def test_a_bucket_that_never_refills_refuses_without_retry_after(gate: QuotaGate) -> None:
    snap = snapshot(team_capacity="$0.000001")
    first = await admit(gate, snap, ALICE, {**BODY, "max_tokens": 100})
    gate.settle(first, D)
    with pytest.raises(GatewayError) as caught:
        await admit(gate, snap, ALICE, {**BODY, "max_tokens": 100})
    assert caught.value.status == 429 and "Retry-After" not in caught.value.headers


async def test_an_unreachable_store_is_a_503(tmp_path: Path) -> None:
    empty = await open_database(f"sqlite:///{tmp_path}/empty.db", migrate=False)
    try:
        gate = QuotaGate(empty, tmp_path / "data", max_reservation=D)
        with pytest.raises(GatewayError) as caught:
            await admit(gate, snapshot(), ALICE, BODY)
        assert caught.value.status == 503
        assert caught.value.message.startswith("quota store unavailable")
    finally:
        await empty.close()
