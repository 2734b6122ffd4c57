"""`irisgate serve --workers 2`: two processes on one port and one database, each a whole
instance. Which process answered is told by `/healthz`'s pid; a client keeps its keep-alive
connection, so it stays with the worker that accepted it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from conftest import ALICE_IP, _socket_of, gateway_config, http_from
from conftest import wait_for_record as record_of
from test_e2e_postgres import pg_url  # noqa: F401  # the throwaway-database fixture
from test_e2e_quotas import buckets, quota_config

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

PROMPT = [{"role": "user", "content": "hello there world"}]
QUOTAS = {"daily:<user>": {"capacity": "$1.00", "rate": "$0/day"}}
CAPACITY = 1_000_000_000


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def pinned(url: str, want: int = 2, tries: int = 400) -> dict[int, httpx2.Client]:
    """One client per worker: new connections until `want` different pids answered."""
    clients: dict[int, httpx2.Client] = {}
    for _ in range(tries):
        client = http_from(ALICE_IP, url)
        pid = client.get("/healthz").json()["pid"]
        if pid in clients:
            client.close()
        else:
            clients[pid] = client
        if len(clients) == want:
            return clients
    raise AssertionError(f"only {sorted(clients)} answered in {tries} connections")


def openai_on(client: httpx2.Client) -> openai.OpenAI:
    base = str(client.base_url).rstrip("/")
    return openai.OpenAI(base_url=base + "/v1", api_key="-", http_client=client, max_retries=0)


@pytest.fixture
def workers(fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path) -> Iterator[Any]:
    started: list[IrisgateServer] = []

    def run(config: str, *args: str, database: str | None = None) -> IrisgateServer:
        gw = IrisgateServer(
            config,
            data_dir=tmp_path / "data",
            identity="tailscale",
            tailscaled_socket=_socket_of(localapi),
            database=database,
            extra_args=args,
        )
        started.append(gw.start())
        return gw

    yield run
    for gw in started:
        gw.stop()


def test_two_workers_answer_on_one_port_and_follow_a_config_change_made_through_either(
    workers: Any, fake_llm: FakeLLM
) -> None:
    gw = workers(gateway_config(fake_llm.base_url), "--workers", "2")
    assert gw.process is not None
    clients = pinned(gw.url)
    assert set(clients) == children_of(gw.process.pid)  # the parent's two workers
    (first, a), (_, b) = clients.items()
    assert first != gw.process.pid

    loaded = a.get("/api/config").json()
    config = json.loads(loaded["config"].split("\n", 1)[1])
    config["providers"]["local"]["models"].append("llama-new")
    put = a.put("/api/config", json={"config": json.dumps(config), "hash": loaded["hash"]})
    assert put.status_code == 200, put.text
    version = put.json()["version"]
    assert fake_llm.wait_for(
        lambda: b.get("/api/config").json()["version"] == version, timeout=30
    )
    answer = openai_on(b).chat.completions.create(model="llama-new", messages=PROMPT)  # type: ignore[arg-type]
    assert answer.choices[0].message.content


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_quota_is_spent_exactly_across_workers_and_sigterm_stops_all_with_records(
    workers: Any, fake_llm: FakeLLM, database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if database == "postgresql" else None
    config = quota_config(fake_llm.base_url, QUOTAS, g0=[{"quotas": [{"bucket": "daily:<user>"}]}])
    gw = workers(config, "--workers", "2", "--shutdown-grace", "0.5", database=url)
    assert gw.process is not None
    clients = pinned(gw.url)
    ids = []
    for _ in range(3):
        for client in clients.values():
            raw = openai_on(client).chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=PROMPT,  # type: ignore[arg-type]
            )
            ids.append(raw.headers["x-irisgate-request-id"])

    gate = threading.Event()  # one stream per worker, held open across the SIGTERM
    fake_llm.stream_gate, fake_llm.gate_after_events = gate, 3
    held = []
    try:
        for client in clients.values():
            stream = openai_on(client).chat.completions.create(
                model="gpt-4o-mini",
                messages=PROMPT,  # type: ignore[arg-type]
                stream=True,
            )
            held.append(stream)
            ids.append(stream.response.headers["x-irisgate-request-id"])
        assert fake_llm.wait_for(lambda: fake_llm.gated_streams == 2, timeout=30)
        gw.process.send_signal(signal.SIGTERM)
        for stream in held:
            with pytest.raises(openai.APIConnectionError):
                list(stream)
        assert gw.process.wait(60) == 0
    finally:
        gate.set()
    for pid in clients:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert gw.logs().count("worker stopped") == 2
    assert "could not be reported" not in gw.logs()

    single = workers(config, database=url)  # the same database, one process
    records = [record_of(single, rid) for rid in ids]
    cut = [r for r in records if r["cancelled"]]
    assert len(cut) == 2
    assert all(r["error"].startswith("shutdown") and r["cost_nanodollars"] > 0 for r in cut)
    spent = sum(r["cost_nanodollars"] for r in records)
    bucket = buckets(single)["daily:alice@example.com"]
    assert bucket["balance_nanodollars"] == CAPACITY - spent


def test_a_dead_worker_is_replaced_port_0_is_served_and_orphans_stop(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    log_path = tmp_path / "irisgate.log"
    args = [sys.executable, "-m", "irisgate", "serve", "--listen", "127.0.0.1:0"]
    args += ["--workers", "2", "--identity", "dev", "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "IRISGATE_LOG_FORMAT": "json"}
    with log_path.open("ab") as log:
        parent = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    try:
        logs = lambda: log_path.read_text(encoding="utf-8")  # noqa: E731
        assert fake_llm.wait_for(lambda: "irisgate listening" in logs(), timeout=30), logs()
        port = int(re.search(r'"port": (\d+)', logs()).group(1))  # type: ignore[union-attr]
        assert port != 0
        url = f"http://127.0.0.1:{port}"
        assert fake_llm.wait_for(lambda: len(children_of(parent.pid)) == 2, timeout=30)
        first = pinned(url)
        assert set(first) == children_of(parent.pid)

        victim = next(iter(first))
        os.kill(victim, signal.SIGKILL)
        assert fake_llm.wait_for(lambda: "worker died" in logs(), timeout=30)
        assert fake_llm.wait_for(
            lambda: len(children_of(parent.pid) - set(first)) == 1, timeout=30
        )
        (replacement,) = children_of(parent.pid) - set(first)

        def replacement_answers() -> bool:
            try:
                return replacement in pinned(url, tries=50)
            except AssertionError:  # still starting: only the other worker answered
                return False

        assert fake_llm.wait_for(replacement_answers, timeout=60)
        workers = children_of(parent.pid)
        parent.kill()  # kill -9: nobody passes a signal on; the workers notice by themselves
        parent.wait()
        assert fake_llm.wait_for(lambda: all(map(gone, workers)), timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert f'"pid": {victim}, "status": -9' in logs()
    assert logs().count("the supervising process is gone") == 2


def gone(pid: int) -> bool:
    """Exited (a zombie counts: its parent is gone and nobody may reap it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"



@pytest.mark.parametrize("value", ["0", "-2", "two", "65"])
def test_a_bad_worker_count_stops_the_start_naming_the_flag(value: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "irisgate", "serve", "--workers", value],
        env={**os.environ, "IRISGATE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers must be a number from 1 to 64" in done.stderr
