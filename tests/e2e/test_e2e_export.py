"""Usage export to S3: irisgate exporting to a real S3 server (moto), read back with boto3
and decoded with the record schema. Every record arrives exactly once, across an S3 outage
and a crash between upload and cursor update. irisgate's app runs in the test's process
(`InProcessIrisgate`) except where its process is the point: its log, a crash, SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import ALICE_IP, BOB_IP, Gateway, client_from, gateway_config, openai_client

from irisgate.testing import FakeLLM, FakeLocalAPI, S3Server
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.s3 import ACCESS_KEY, REGION, SECRET_KEY
from irisgate.testing.server import IrisgateServer

BUCKET = "irisgate-usage"
PREFIX = "team/usage"
KEY_PATTERN = re.compile(
    r"team/usage/ts-aperture-export-(\d+)-(\d+)-(\d+)\.(cbor\.zstd|jsonl\.gz|parquet)"
)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """The module's S3 server, empty but for the bucket (running, whatever the test before)."""
    s3_server.reset().create_bucket(BUCKET)
    return s3_server


def export_config(upstream: str, s3: S3Server, **s3_fields: Any) -> str:
    config = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config["exporters"] = {
        "s3": {
            "bucket_name": BUCKET,
            "region": REGION,
            "access_key_id": ACCESS_KEY,
            "access_secret": "env:TEST_S3_SECRET",
            "endpoint": s3.url,
            "prefix": PREFIX,
            "every": 1,
            **s3_fields,
        }
    }
    # alice may read the metrics; bob may not
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append({"read_metrics": True})
    return json.dumps(config, indent=2)


def gateway(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, data_dir: Path, config: str, **env: str
) -> InProcessIrisgate:
    """irisgate's app in this process (see `process` for one of its own)."""
    assert localapi.socket_path
    return InProcessIrisgate(
        config,
        data_dir=data_dir,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"TEST_S3_SECRET": SECRET_KEY, **env},
    )


def process(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, data_dir: Path, config: str, **env: str
) -> IrisgateServer:
    """An irisgate process, for its log, a crash or a signal."""
    assert localapi.socket_path
    return IrisgateServer(
        config,
        data_dir=data_dir,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"TEST_S3_SECRET": SECRET_KEY, **env},
    )


def chat(gw: Gateway, text: str) -> str:
    """One chat completion as alice; returns irisgate's request id for it."""
    raw = openai_client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    assert raw.http_response.status_code == 200
    return raw.headers["x-irisgate-request-id"]


def decode(key: str, body: bytes) -> list[dict[str, Any]]:
    """The records of one export object, by its format (file extension)."""
    if key.endswith(".cbor.zstd"):
        stream = io.BytesIO(zstandard.ZstdDecompressor().decompressobj().decompress(body))
        records = []
        while stream.tell() < len(stream.getbuffer()):
            records.append(cbor2.load(stream))
        return records
    if key.endswith(".jsonl.gz"):
        return [json.loads(line) for line in gzip.decompress(body).splitlines()]
    if key.endswith(".parquet"):
        rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
        for row in rows:  # maps come back as key/value pairs
            if row["capture"] is not None:
                for name in ("request_headers", "response_headers"):
                    row["capture"][name] = dict(row["capture"][name])
        return rows
    raise AssertionError(f"unexpected object {key}")


def exported(s3: S3Server) -> dict[str, list[dict[str, Any]]]:
    return {key: decode(key, body) for key, body in s3.objects(BUCKET, PREFIX).items()}


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def capture_ids(objects: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [record["capture_id"] for records in objects.values() for record in records]


def wait_for_export(s3: S3Server, request_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    def done() -> dict[str, list[dict[str, Any]]] | None:
        objects = exported(s3)
        return objects if request_ids <= set(capture_ids(objects)) else None

    result: dict[str, list[dict[str, Any]]] = wait_until(done, f"{len(request_ids)} records")
    return result


def metric(gw: Gateway, name: str) -> float:
    text = client_from(ALICE_IP, gw).get("/metrics").text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("fmt", ["cbor.zstd", "jsonl.gz", "parquet"])
def test_every_record_is_exported_in_batches_of_limit(
    fake_llm: FakeLLM,
    localapi: FakeLocalAPI,
    s3: S3Server,
    tmp_path: Path,
    fmt: str,
) -> None:
    config = export_config(fake_llm.base_url, s3, limit=3, format=fmt)
    with gateway(fake_llm, localapi, tmp_path, config) as gw:
        ids = [chat(gw, f"export me {n}") for n in range(7)]
        objects = wait_for_export(s3, set(ids))

    assert sorted(capture_ids(objects)) == sorted(ids)  # each exactly once
    assert all(len(records) <= 3 for records in objects.values())
    for key, records in objects.items():
        match = KEY_PATTERN.fullmatch(key)
        assert match, key
        assert match.group(4) == fmt
        assert [r["id"] for r in records] == sorted(r["id"] for r in records)
        assert (int(match.group(2)), int(match.group(3))) == (records[0]["id"], records[-1]["id"])
    record = next(r for rs in objects.values() for r in rs if r["capture_id"] == ids[0])
    assert record["ver"] == 2
    assert record["identity"]["login_name"] == "alice@example.com"
    assert record["identity"]["stable_node_id"]
    assert record["model"] == "gpt-4o-mini"
    assert record["provider"] == "openai"
    assert record["api_type"] == "oai_completions"
    assert record["path"] == "/v1/chat/completions"
    assert record["status_code"] == 200
    assert record["usage"]["input"] > 0 and record["usage"]["output"] > 0
    assert record["estimated_cost"]["dollars"] > 0
    assert record["estimated_cost"]["cost_basis"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", record["timestamp"])
    capture = record["capture"]
    assert "export me 0" in capture["request_body"]
    assert json.loads(capture["response_body"])["choices"]
    assert "sk-upstream" not in json.dumps(capture["request_headers"])  # secrets redacted


@pytest.mark.parametrize("fmt", ["cbor.zstd", "parquet"])
def test_raw_answers_are_exported_when_kept(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, s3: S3Server, tmp_path: Path, fmt: str
) -> None:
    config = json.loads(export_config(fake_llm.base_url, s3, format=fmt))
    config["database"] = {"save_raws": True}
    with gateway(fake_llm, localapi, tmp_path, json.dumps(config)) as gw:
        fake_llm.gzip = True
        try:
            request_id = chat(gw, "keep my raw answer")
        finally:
            fake_llm.gzip = False
        sent = fake_llm.responses[-1]
        objects = wait_for_export(s3, {request_id})
    record = next(r for rs in objects.values() for r in rs if r["capture_id"] == request_id)
    capture = record["capture"]
    assert base64.b64decode(capture["response_raw"]) == sent  # as the upstream sent it
    assert capture["response_raw_content_encoding"] == "gzip"
    assert json.loads(capture["response_body"])["choices"]  # and the decoded body beside it


def test_s3_outage_loses_and_duplicates_nothing(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, s3: S3Server, tmp_path: Path
) -> None:
    with process(fake_llm, localapi, tmp_path, export_config(fake_llm.base_url, s3)) as gw:
        before_ids = {chat(gw, "before the outage") for _ in range(2)}
        before = wait_for_export(s3, before_ids)

        s3.stop()
        during_ids = {chat(gw, "during the outage") for _ in range(3)}  # still served
        wait_until(lambda: metric(gw, "irisgate_export_failures_total") >= 2, "failed tries")
        assert "usage export failed; retrying" in gw.logs()

        s3.start()  # moto restarts empty: the bucket comes back, the old objects do not
        s3.create_bucket(BUCKET)
        after = wait_for_export(s3, during_ids)

    all_ids = capture_ids(before) + capture_ids(after)
    assert sorted(all_ids) == sorted(before_ids | during_ids)  # each exactly once


def test_crash_between_upload_and_cursor_update_exports_once(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, s3: S3Server, tmp_path: Path
) -> None:
    config = export_config(fake_llm.base_url, s3)
    no_export = json.dumps({k: v for k, v in json.loads(config).items() if k != "exporters"})
    with gateway(fake_llm, localapi, tmp_path, no_export) as gw:  # records, nothing exported
        first_ids = {chat(gw, f"first {n}") for n in range(3)}
    assert exported(s3) == {}

    # export starts, uploads the batch and dies like `kill -9` before the cursor moves
    crashing = process(
        fake_llm, localapi, tmp_path, config, IRISGATE_TEST_EXIT_AFTER_EXPORT_UPLOAD="1"
    )
    with contextlib.suppress(RuntimeError):  # it may die before it answers /healthz
        crashing.start()
    assert crashing.process is not None
    assert crashing.process.wait(60) == -signal.SIGKILL
    uploaded = exported(s3)
    assert sorted(capture_ids(uploaded)) == sorted(first_ids)

    with gateway(fake_llm, localapi, tmp_path, config) as gw:
        wait_until(lambda: metric(gw, "irisgate_export_records_total") == 3, "the redo")
        redone = exported(s3)
        assert redone.keys() == uploaded.keys()  # the same object, overwritten
        assert sorted(capture_ids(redone)) == sorted(first_ids)

        later_ids = {chat(gw, "after the crash") for _ in range(2)}
        final = wait_for_export(s3, later_ids)

    assert uploaded.keys() <= final.keys()  # the redone object stays as it was
    assert sorted(capture_ids(final)) == sorted(first_ids | later_ids)  # each exactly once


def test_metrics_need_read_metrics(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, s3: S3Server, tmp_path: Path
) -> None:
    with gateway(fake_llm, localapi, tmp_path, export_config(fake_llm.base_url, s3)) as gw:
        denied = client_from(BOB_IP, gw).get("/metrics")
        assert denied.status_code == 403
        assert denied.json() == {"error": "access denied: read_metrics not granted"}
        allowed = client_from(ALICE_IP, gw).get("/metrics")
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain")
        assert "irisgate_export_records_total" in allowed.text


def test_sigterm_during_an_outage_stops_cleanly_and_keeps_records(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, s3: S3Server, tmp_path: Path
) -> None:
    config = export_config(fake_llm.base_url, s3)
    s3.stop()  # S3 down from the start: the exporter is in its retry loop
    server = process(fake_llm, localapi, tmp_path, config)
    with server as gw:
        ids = {chat(gw, "kept through the stop") for _ in range(2)}
        wait_until(lambda: metric(gw, "irisgate_export_failures_total") >= 1, "a failed try")
        assert gw.process is not None
        gw.process.send_signal(signal.SIGTERM)
        exit_code = gw.process.wait(30)  # no hanging background worker
    assert exit_code == 0, server.logs()[-3000:]  # a graceful stop exits 0

    s3.start()
    s3.create_bucket(BUCKET)
    with gateway(fake_llm, localapi, tmp_path, config):  # the records waited in the database
        objects = wait_for_export(s3, ids)
    assert sorted(capture_ids(objects)) == sorted(ids)
