"""OpenAI files and batches through irisgate with the official SDK: they belong to their
creator (another user gets OpenAI's 404 for every call that names them and sees none of them
in the lists), a batch runs only on models granted to its creator, and its results are
recorded and charged, at the batch discount, once, when its output file is downloaded. A big
upload passes through with bounded memory (kept in a temporary file, sent a piece at a
time)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx2
import openai
import pytest
from conftest import ALICE_IP, BOB_IP, client_from, openai_client, wait_for_record
from genai_prices import Usage, calc_price
from test_e2e_audio import audio_config

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer

BIG = 50_000_000  # bytes of the big upload


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    server = IrisgateServer(
        audio_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("files"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )
    with server:
        yield server


def batch_lines(model: str, count: int) -> bytes:
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"say hello number {i} please"}],
            },
        }
        for i in range(count)
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_files_belong_to_their_creator(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    alice, bob = openai_client(gw), openai_client(gw, BOB_IP)
    content = b"some notes\n" * 100
    created = alice.files.create(file=("notes.txt", content, "text/plain"), purpose="user_data")
    assert created.id in fake_llm.objects.files
    assert created.bytes == len(content)

    assert [f.id for f in alice.files.list()] == [created.id]
    assert alice.files.retrieve(created.id).filename == "notes.txt"
    assert alice.files.content(created.id).read() == content

    assert list(bob.files.list()) == []
    for call in (bob.files.retrieve, bob.files.content, bob.files.delete):
        with pytest.raises(openai.NotFoundError) as missing:
            call(created.id)
        assert f"No such File object: {created.id}" in str(missing.value)
    assert created.id in fake_llm.objects.files  # bob's delete never reached the provider

    assert alice.files.delete(created.id).deleted
    assert created.id not in fake_llm.objects.files
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(created.id)
    assert list(alice.files.list()) == []


def test_a_batch_lifecycle_is_recorded_and_charged_once_at_half_price(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    alice, bob = openai_client(gw), openai_client(gw, BOB_IP)
    source = alice.files.create(
        file=("input.jsonl", batch_lines("gpt-4o-mini", 3), "application/jsonl"), purpose="batch"
    )
    with pytest.raises(openai.NotFoundError) as not_bobs:
        bob.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert not_bobs.value.param == "input_file_id"

    batch = alice.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    for call in (bob.batches.retrieve, bob.batches.cancel):
        with pytest.raises(openai.NotFoundError):
            call(batch.id)
    assert [b.id for b in alice.batches.list()] == [batch.id]
    assert list(bob.batches.list()) == []

    seen: list[str] = [batch.status]
    while seen[-1] != "completed" and len(seen) < 10:
        batch = alice.batches.retrieve(batch.id)
        seen.append(batch.status)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert batch.output_file_id is not None
    listed = alice.batches.list().data[0]
    assert listed.status == "completed"  # the list shows the batch as last relayed

    with pytest.raises(openai.NotFoundError):
        bob.files.content(batch.output_file_id)
    raw = alice.files.with_raw_response.content(batch.output_file_id)
    results = [json.loads(line) for line in raw.content.splitlines()]
    assert [r["custom_id"] for r in results] == ["req-0", "req-1", "req-2"]
    prompt = sum(r["response"]["body"]["usage"]["prompt_tokens"] for r in results)
    completion = sum(r["response"]["body"]["usage"]["completion_tokens"] for r in results)

    record = wait_for_record(gw, raw.headers["x-irisgate-request-id"])
    assert record["model"] == "gpt-4o-mini"
    assert (record["input_tokens"], record["output_tokens"]) == (prompt, completion)
    price = calc_price(
        Usage(input_tokens=prompt, output_tokens=completion),
        model_ref="gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert record["cost_nanodollars"] == int(price * Decimal(1_000_000_000) / 2)
    assert record["cost_basis"].endswith("(batch)")

    again = alice.files.with_raw_response.content(batch.output_file_id)
    assert again.content == raw.content
    second = wait_for_record(gw, again.headers["x-irisgate-request-id"])
    assert second["input_tokens"] == 0
    assert second["cost_nanodollars"] == 0  # charged once, on the first download


def test_a_batch_on_a_model_not_granted_is_refused(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    bob = openai_client(gw, BOB_IP)
    source = bob.files.create(
        file=("input.jsonl", batch_lines("whisper-1", 2), "application/jsonl"), purpose="batch"
    )
    before = len(fake_llm.objects.batches)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        bob.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "whisper-1" in str(refused.value)
    assert len(fake_llm.objects.batches) == before


def test_a_batch_file_that_names_no_model_is_refused(gw: IrisgateServer) -> None:
    alice = openai_client(gw)
    with pytest.raises(openai.BadRequestError) as bad:
        alice.files.create(
            file=("input.jsonl", b'{"custom_id": "x", "body": {}}\n', "application/jsonl"),
            purpose="batch",
        )
    assert "line 1" in str(bad.value)


def test_a_batch_files_lines_are_checked_whatever_the_order_of_its_fields(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """`purpose` sent after the file: the lines read as the file passed are checked then; the
    same lines in a file for another purpose are no batch's and pass untouched."""
    http = client_from(ALICE_IP, gw)
    bad = b'{"custom_id": "x", "body": {}}\n'
    before = len(fake_llm.objects.uploads)

    def upload(purpose: str) -> httpx2.Response:
        boundary = "purpose-last"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
        ).encode()
        body += (
            bad
            + (
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
                f"{purpose}\r\n--{boundary}--\r\n"
            ).encode()
        )
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        return http.post("/v1/files", content=body, headers=headers)

    refused = upload("batch")
    assert refused.status_code == 400
    assert "line 1 of the batch file has no body.model string" in refused.text
    assert len(fake_llm.objects.uploads) == before  # nothing reached the provider

    kept = upload("user_data")
    assert kept.status_code == 200, kept.text
    assert kept.json()["purpose"] == "user_data"
    (received,) = fake_llm.objects.uploads[-1].files
    assert received["bytes"] == len(bad)


def test_only_the_creator_cancels_a_batch(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    alice, bob = openai_client(gw), openai_client(gw, BOB_IP)
    source = alice.files.create(
        file=("input.jsonl", batch_lines("gpt-4o-mini", 1), "application/jsonl"), purpose="batch"
    )
    batch = alice.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        bob.batches.cancel(batch.id)
    assert fake_llm.objects.batches[batch.id].obj["status"] == "validating"
    assert alice.batches.cancel(batch.id).status == "cancelling"
    assert alice.batches.retrieve(batch.id).status == "cancelled"


def _memory(pid: int, field: str) -> int:
    """A memory figure of a process from /proc (kB → bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def test_a_big_upload_passes_through_with_bounded_memory(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    assert gw.process is not None
    pid = gw.process.pid
    boundary = "irisgate-test-boundary"
    digest = hashlib.sha256()
    piece = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f"user_data\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream'
            "\r\n\r\n"
        ).encode()
        sent = 0
        while sent < BIG:
            chunk = piece[: BIG - sent]
            digest.update(chunk)
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak RSS starts again from now
    before = _memory(pid, "VmRSS")
    http: httpx2.Client = client_from(ALICE_IP, gw)
    answer = http.post(
        "/v1/files",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 200, answer.text
    peak = _memory(pid, "VmHWM")

    (received,) = fake_llm.objects.uploads[-1].files
    assert received["bytes"] == BIG
    assert received["sha256"] == digest.hexdigest()
    assert answer.json()["bytes"] == BIG
    assert peak - before < BIG // 4, f"irisgate's peak RSS grew by {peak - before} bytes"


def test_a_batch_charge_is_debited_from_the_creators_budget(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    config = json.loads(audio_config(fake_llm.base_url))
    config["quotas"] = {"daily:<user>": {"capacity": "$1", "rate": "$0/day"}}
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append(
        {"quotas": [{"bucket": "daily:<user>"}]}
    )
    assert localapi.socket_path
    with InProcessIrisgate(
        json.dumps(config),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    ) as gw:
        alice = openai_client(gw)
        source = alice.files.create(
            file=("in.jsonl", batch_lines("gpt-4o-mini", 4), "application/jsonl"),
            purpose="batch",
        )
        batch = alice.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        for _ in range(3):  # validating → in_progress → finalizing → completed
            batch = alice.batches.retrieve(batch.id)
        assert batch.status == "completed"
        assert batch.output_file_id is not None
        raw = alice.files.with_raw_response.content(batch.output_file_id)
        cost = wait_for_record(gw, raw.headers["x-irisgate-request-id"])["cost_nanodollars"]
        assert cost > 0
        answer = client_from(ALICE_IP, gw).get("/api/quotas")
        bucket = {b["name"]: b for b in answer.json()["buckets"]}["daily:alice@example.com"]
        assert bucket["balance_nanodollars"] == 1_000_000_000 - cost
