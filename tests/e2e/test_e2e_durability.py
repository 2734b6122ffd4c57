"""No answered request is lost: `kill -9` under load, a database outage under load, SIGTERM
during an outage (docs/durability.md).

Clients keep sending requests (plain and streamed) and note the request id of every one that
got a complete answer. Afterwards each of those must be in the database exactly once, and
the daily rollups must count each once (a record replayed from the spool must not add its
tokens and cost a second time). The outage tests stop and start a private PostgreSQL server
(irisgate.testing.postgres); the machine's shared one is never touched.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import openai
import pytest
from conftest import ALICE_IP, gateway_config, http_from, openai_client
from prometheus_client.parser import text_string_to_metric_families

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.postgres import PostgresCluster
from irisgate.testing.server import IrisgateServer

CLIENTS = 4


class Load:
    """`CLIENTS` threads sending requests until stopped; `answered` holds the request id of
    every request whose complete answer arrived (status 200, body to its end)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered: list[str] = []
        self.failed = 0
        self._lock = threading.Lock()
        self._running = True
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[str]:
        self._running = False
        for thread in self._threads:
            thread.join(30)
        with self._lock:
            return list(self.answered)

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def wait_for(self, total: int, within: float = 60) -> None:
        wait_until(lambda: self.count() >= total, within, f"{total} answered requests")

    def _client(self, number: int) -> None:
        transport = httpx2.HTTPTransport(local_address=ALICE_IP)
        with httpx2.Client(base_url=self.url, transport=transport, timeout=10) as client:
            sent = 0
            while self._running:
                sent += 1
                stream = (sent + number) % 2 == 0
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"client {number} request {sent}"}],
                    "stream": stream,
                }
                if stream:
                    body["stream_options"] = {"include_usage": True}
                try:
                    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                        for _ in resp.iter_raw():
                            pass
                        complete = resp.status_code == 200
                        request_id = resp.headers.get("x-irisgate-request-id", "")
                except (httpx2.HTTPError, OSError):
                    with self._lock:
                        self.failed += 1
                    time.sleep(0.01)
                    continue
                if complete:
                    with self._lock:
                        self.answered.append(request_id)


def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        time.sleep(0.05)


def gateway(
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    data_dir: Path,
    database_url: str | None = None,
    *extra_args: str,
    **overrides: Any,
) -> IrisgateServer:
    config = json.loads(gateway_config(fake_llm.base_url, **overrides).split("\n", 1)[1])
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append({"read_metrics": True})
    assert localapi.socket_path
    return IrisgateServer(
        json.dumps(config),
        data_dir=data_dir,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        database=database_url,
        extra_args=extra_args,
    )


def metric(gw: IrisgateServer, name: str) -> float:
    text = http_from(ALICE_IP, gw.url).get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"no metric {name}")


# -- what the database holds ---------------------------------------------------------------

_STORED = "SELECT request_id FROM requests"
# the rollups must count every stored record exactly once
_ROLLUP_CHECK = (
    "SELECT (SELECT count(*) FROM requests), (SELECT coalesce(sum(requests), 0) FROM "
    "usage_daily), (SELECT coalesce(sum(cost_nanodollars), 0) FROM requests), "
    "(SELECT coalesce(sum(cost_nanodollars), 0) FROM usage_daily)"
)


def sqlite_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{data_dir / 'irisgate.db'}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql))


def postgres_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def assert_stored_once(rows: Callable[[str], list[tuple[Any, ...]]], answered: list[str]) -> None:
    """Every answered request is stored (waiting for the replay), each exactly once."""
    assert len(answered) == len(set(answered))

    def missing() -> set[str]:
        return set(answered) - {row[0] for row in rows(_STORED)}

    wait_until(lambda: not missing(), 60, "every answered request stored")
    stored = [row[0] for row in rows(_STORED)]
    assert len(stored) == len(set(stored))
    [(count, rolled_up, cost, rolled_up_cost)] = rows(_ROLLUP_CHECK)
    assert (rolled_up, rolled_up_cost) == (count, cost)


# -- kill -9 --------------------------------------------------------------------------------


def test_kill_9_under_load_loses_no_answered_request(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    fake_llm.chunk_delay = 0.001  # streams take a few ms: some are cut off by the kill
    data = tmp_path / "data"
    gw = gateway(fake_llm, localapi, data).start()
    load = Load(gw.url).start()
    try:
        load.wait_for(200)
        assert gw.process is not None
        gw.process.kill()
        gw.process.wait()
    finally:
        answered = load.stop()
        gw.stop()
    assert len(answered) >= 200
    assert list((data / "spool").glob("records-*.spool"))  # left behind for the next start

    with gateway(fake_llm, localapi, data) as again:
        assert_stored_once(lambda sql: sqlite_rows(data, sql), answered)
        wait_until(lambda: metric(again, "irisgate_spool_records") == 0, 30, "spool drained")
        assert "of a process that is gone: storing its" in again.logs()
        # the replayed files are gone
        wait_until(lambda: len(list((data / "spool").glob("*.spool"))) == 1, 30, "files removed")
    assert again.process is not None and again.process.returncode == 0


def test_a_spool_file_cut_short_by_a_machine_crash_is_read_up_to_the_damage(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """A torn last entry (what a power cut can leave; `kill -9` cannot) is skipped and
    named in the log; the start-up goes on and stores nothing twice."""
    gw = gateway(fake_llm, localapi, tmp_path).start()
    try:
        client = http_from(ALICE_IP, gw.url)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        answered = [
            client.post("/v1/chat/completions", json=body).headers["x-irisgate-request-id"]
            for _ in range(3)
        ]
        assert_stored_once(lambda sql: sqlite_rows(tmp_path, sql), answered)
        assert gw.process is not None
        gw.process.kill()
        gw.process.wait()
    finally:
        gw.stop()
    [spool_file] = (tmp_path / "spool").glob("*.spool")  # still holds the stored entries
    spool_file.write_bytes(spool_file.read_bytes()[:-7])

    with gateway(fake_llm, localapi, tmp_path) as again:
        wait_until(lambda: not spool_file.exists(), 30, "the damaged file replayed and removed")
        assert re.search(r"the last \d+ bytes are damaged .* and were skipped", again.logs())
        assert_stored_once(lambda sql: sqlite_rows(tmp_path, sql), answered)


def test_a_sibling_never_reads_a_live_spool_and_stores_a_dead_ones(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """Two processes sharing one data folder (as several workers do): each spool file is
    read back only once its owner is gone, by the one still alive."""
    data = tmp_path / "data"
    first = gateway(fake_llm, localapi, data).start()
    with gateway(fake_llm, localapi, data) as second:
        load = Load(first.url).start()
        try:
            load.wait_for(200)
            assert "of a process that is gone" not in second.logs()  # first's files are live
            assert first.process is not None
            first.process.kill()
            first.process.wait()
        finally:
            answered = load.stop()
            first.stop()
        assert_stored_once(lambda sql: sqlite_rows(data, sql), answered)
        assert "of a process that is gone: storing its" in second.logs()
    assert second.process is not None and second.process.returncode == 0


def test_with_zero_retention_no_body_reaches_the_spool(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """The spool holds what the database would: with `duration: "0"` no prompt touches the
    disk, not even for the moment before the record is stored (fsync on, too)."""
    zero = {"retention": {"duration": "0"}}
    with gateway(fake_llm, localapi, tmp_path, None, "--spool-fsync", "1", database=zero) as gw:
        resp = http_from(ALICE_IP, gw.url).post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "p4ssw0rd-42"}]},
        )
        assert resp.status_code == 200
        request_id = resp.headers["x-irisgate-request-id"]
        assert_stored_once(lambda sql: sqlite_rows(tmp_path, sql), [request_id])
        files = list((tmp_path / "spool").glob("*.spool"))
        spooled = b"".join(f.read_bytes() for f in files)
        assert request_id.encode() in spooled  # the record went through the spool
        assert b"p4ssw0rd-42" not in spooled
        assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
        assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
    assert list((tmp_path / "spool").glob("*.spool")) == []  # a clean stop leaves nothing


# -- a PostgreSQL outage ------------------------------------------------------------------


def test_an_outage_under_load_spools_answers_503_and_stores_everything_after(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    pg = postgres_cluster
    data = tmp_path / "data"
    with gateway(fake_llm, localapi, data, database_url=pg.url) as gw:
        admin = http_from(ALICE_IP, gw.url)
        load = Load(gw.url).start()
        try:
            load.wait_for(100)
            pg.stop()
            load.wait_for(load.count() + 150)  # requests are still answered meanwhile
            # nothing waits in memory: every record is in the spool
            wait_until(lambda: metric(gw, "irisgate_spool_records") > 0, 30, "spooled")
            wait_until(
                lambda: metric(gw, "irisgate_capture_queue_depth") == 0, 30, "memory let go"
            )
            resp = admin.get("/api/requests")
            assert resp.status_code == 503
            assert resp.json() == {"error": "the database is unavailable; try again shortly"}
            ready = admin.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["spool"].startswith("ok: ")
            pg.start()
            wait_until(lambda: admin.get("/api/requests").status_code == 200, 60, "API back")
            load.wait_for(load.count() + 100)
        finally:
            answered = load.stop()
        assert_stored_once(lambda sql: postgres_rows(pg.url, sql), answered)
        wait_until(lambda: metric(gw, "irisgate_spool_records") == 0, 30, "spool drained")
        logs = gw.logs()
    assert gw.process is not None and gw.process.returncode == 0
    # said once each, however many requests and polls ran into the outage
    assert len(re.findall(r"the database \S+ is unavailable", logs)) == 1, logs[-3000:]
    assert len(re.findall(r"the database \S+ is available again", logs)) == 1
    assert "Traceback" not in logs


def test_sigterm_during_an_outage_leaves_everything_in_the_spool(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    pg = postgres_cluster
    data = tmp_path / "data"
    gw = gateway(fake_llm, localapi, data, database_url=pg.url).start()
    load = Load(gw.url).start()
    try:
        load.wait_for(100)
        pg.stop()
        load.wait_for(load.count() + 150)
        assert gw.stop() == 0  # SIGTERM: it does not wait for the database
    finally:
        answered = load.stop()
        gw.stop()
        if not pg.running():
            pg.start()
    waiting = re.findall(r"(\d+) request records wait in the spool", gw.logs())
    assert len(waiting) == 1 and int(waiting[0]) > 0, gw.logs()[-3000:]

    with gateway(fake_llm, localapi, data, database_url=pg.url):
        assert_stored_once(lambda sql: postgres_rows(pg.url, sql), answered)


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> None:
    """Each PostgreSQL test starts from an empty schema on the module's private server."""
    if "postgres_cluster" not in request.fixturenames:
        return
    pg: PostgresCluster = request.getfixturevalue("postgres_cluster")
    if not pg.running():
        pg.start()
    async def reset() -> None:
        conn = await asyncpg.connect(pg.url, timeout=10)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()

    asyncio.run(reset())


def test_a_full_spool_refuses_new_requests_until_the_database_is_back(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    pg = postgres_cluster
    with gateway(fake_llm, localapi, tmp_path, pg.url, "--spool-max-mb", "1") as gw:
        client = openai_client(gw)
        admin = http_from(ALICE_IP, gw.url)
        answered: list[str] = []
        refused: list[openai.APIStatusError] = []

        def ask() -> str:
            """A request with a 100 KB prompt: "" when answered, else the error's message."""
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "x" * 100_000}],
                )
            except openai.APIStatusError as exc:
                refused.append(exc)
                return exc.message
            answered.append(raw.headers["x-irisgate-request-id"])
            return ""

        assert ask() == ""
        pg.stop()
        for _ in range(40):  # 1 MiB holds about ten of these records
            refusal = ask()
            if refusal:
                break
        assert "the record spool is full" in refusal
        assert refused[-1].status_code == 503
        assert refused[-1].response.headers["retry-after"] == "30"
        assert 5 <= len(answered) <= 20
        assert admin.get("/readyz").json()["checks"]["spool"].startswith("full: ")
        assert metric(gw, "irisgate_spool_full") == 1
        pg.start()
        wait_until(lambda: ask() == "", 60, "requests served again")
        assert_stored_once(lambda sql: postgres_rows(pg.url, sql), answered)
        wait_until(lambda: metric(gw, "irisgate_spool_records") == 0, 30, "spool drained")
        # what is stored leaves the spool: it is not full of stored records
        assert metric(gw, "irisgate_spool_full") == 0
        assert metric(gw, "irisgate_spool_bytes") < 1 << 20
        logs = gw.logs()
    # each change said once
    assert logs.count("the spool is full") >= 1
    assert logs.count("the spool is full") == logs.count("the spool has room again")
