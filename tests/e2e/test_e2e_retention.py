"""Retention (`database.retention`): captures go, usage metrics stay.

irisgate's app in the test's process (`InProcessIrisgate`, the tailnet users on their
loopback addresses); requests are made through the official SDK and read back through the
management API. To have captures older than the retention period without waiting an
hour, the test moves a stored request's `started_at` into the past while irisgate is
stopped (the SQLite file is the store). The purge runs at start and then periodically.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ALICE_IP, Gateway, client_from, gateway_config, openai_client, wait_for_record

from irisgate.testing import FakeLLM, FakeLocalAPI, S3Server
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.s3 import ACCESS_KEY, REGION, SECRET_KEY

BUCKET = "irisgate-retention"


def config(upstream: str, database: dict[str, Any] | None, s3: S3Server | None = None) -> str:
    data = json.loads(gateway_config(upstream).split("\n", 1)[1])
    data["grants"][0]["app"]["tailscale.com/cap/aperture"].append({"read_metrics": True})
    if database is not None:
        data["database"] = database
    if s3 is not None:
        data["exporters"] = {
            "s3": {
                "bucket_name": BUCKET,
                "region": REGION,
                "access_key_id": ACCESS_KEY,
                "access_secret": SECRET_KEY,
                "endpoint": s3.url,
                "every": 1,
            }
        }
    return json.dumps(data)


def gateway(localapi: FakeLocalAPI, data_dir: Path, text: str) -> InProcessIrisgate:
    assert localapi.socket_path
    return InProcessIrisgate(
        text, data_dir=data_dir, identity="tailscale", tailscaled_socket=localapi.socket_path
    )


def chat(gw: Gateway, text: str) -> str:
    raw = openai_client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    request_id: str = raw.headers["x-irisgate-request-id"]
    wait_for_record(gw, request_id)
    return request_id


def record(gw: Gateway, request_id: str) -> dict[str, Any]:
    return wait_for_record(gw, request_id)


def age(data_dir: Path, request_id: str) -> None:
    """Move one stored request two days into the past (irisgate is stopped)."""
    with sqlite3.connect(data_dir / "irisgate.db") as db:
        db.execute(
            "UPDATE requests SET started_at = datetime(started_at, '-2 days') WHERE request_id = ?",
            (request_id,),
        )


def metric(gw: Gateway, name: str) -> float:
    text = client_from(ALICE_IP, gw).get("/metrics").text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def purge_ran(gw: Gateway) -> bool:
    return metric(gw, "irisgate_retention_last_run_timestamp_seconds") > 0


def test_zero_retention_never_writes_bodies(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    text = config(fake_llm.base_url, {"retention": {"duration": "0"}})
    with gateway(localapi, tmp_path, text) as gw:
        request_id = chat(gw, "forget me")
        stored = record(gw, request_id)
    assert stored["request_body"] in ("", None) and stored["response_body"] in ("", None)
    assert stored["request_headers"] == {} and stored["response_headers"] == {}
    assert stored["input_tokens"] > 0 and stored["output_tokens"] > 0  # metrics stay
    with sqlite3.connect(tmp_path / "irisgate.db") as db:
        bodies = db.execute("SELECT request_body, response_body FROM captures").fetchall()
    assert all(b"forget me" not in bytes(req) for req, _ in bodies)


def test_old_bodies_are_purged_and_usage_stays(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    with gateway(localapi, tmp_path, config(fake_llm.base_url, None)) as gw:
        old, new = chat(gw, "old question"), chat(gw, "new question")
    age(tmp_path, old)

    retention = {"retention": {"duration": "24h", "purge": ["bodies"]}}
    with gateway(localapi, tmp_path, config(fake_llm.base_url, retention)) as gw:
        wait_until(lambda: purge_ran(gw), "a purge round")
        purged, kept = record(gw, old), record(gw, new)
        assert metric(gw, 'irisgate_retention_purged_total{category="bodies"}') == 1

    assert purged["request_body"] == "" and purged["response_body"] == ""
    assert purged["request_headers"]  # only bodies were asked for
    assert purged["input_tokens"] > 0 and purged["cost_nanodollars"] > 0  # metrics stay
    assert "new question" in kept["request_body"] and kept["response_body"]


def test_require_export_purges_only_exported(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    with gateway(localapi, tmp_path, config(fake_llm.base_url, None)) as gw:
        old = chat(gw, "old question")
    age(tmp_path, old)
    retention = {"retention": {"duration": "1h", "require_export": True}}

    with gateway(localapi, tmp_path, config(fake_llm.base_url, retention)) as gw:
        wait_until(lambda: purge_ran(gw), "a purge round")
        kept = record(gw, old)
        assert "old question" in kept["request_body"]  # not exported: kept
        assert kept["exported_at"] is None

    with S3Server() as s3:
        s3.create_bucket(BUCKET)
        with gateway(localapi, tmp_path, config(fake_llm.base_url, retention, s3)) as gw:
            wait_until(lambda: s3.objects(BUCKET), "the export")
            wait_until(lambda: metric(gw, "irisgate_export_records_total") == 1, "the cursor")
        # the purge runs at start: this time the record has been exported
        with gateway(localapi, tmp_path, config(fake_llm.base_url, retention, s3)) as gw:
            wait_until(lambda: record(gw, old)["request_body"] in ("", None), "the purge")
            gone = record(gw, old)
    assert gone["captured"] is False  # no list of categories: the whole capture goes
    assert gone["input_tokens"] > 0
    assert gone["exported_at"].endswith("Z")  # when the exporter delivered it
