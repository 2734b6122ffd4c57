"""Export records in each format: what a consumer decodes is what was stored, including
the cases the end-to-end tests do not reach (no price, purged capture, binary bodies)."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from typing import Any

import cbor2
import pyarrow.parquet as pq
import pytest
import zstandard

from irisgate.exporters.records import FORMATS, export_record


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 41,
        "request_id": "req_abc",
        "started_at": datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC),
        "login_name": "ci",
        "display_name": "",
        "node_id": "nABC",
        "node_name": "runner",
        "tags": "tag:ci,tag:prod",
        "key_id": "key_0123456789abcdef",
        "key_name": "ci runner",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "api_type": "oai_completions",
        "kind": "chat",
        "unit": "",
        "units": 0,
        "path": "/v1/chat/completions",
        "status": 200,
        "duration_ms": 12.3456,
        "stream": 1,
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 4,
        "cache_write_5m_tokens": 1,
        "cache_write_1h_tokens": 2,
        "reasoning_tokens": 3,
        "cost_nanodollars": None,
        "cost_basis": "",
        "session_id": "s1",
        "user_agent": "ua",
        "tool_calls": 0,
        "capture_request_id": None,
        "request_headers": None,
        "response_headers": None,
        "request_body": None,
        "response_body": None,
    }
    base.update(overrides)
    return base


def decode(fmt: str, body: bytes) -> list[dict[str, Any]]:
    if fmt == "cbor.zstd":
        stream = io.BytesIO(zstandard.ZstdDecompressor().decompressobj().decompress(body))
        out = []
        while stream.tell() < len(stream.getbuffer()):
            out.append(cbor2.load(stream))
        return out
    if fmt == "jsonl.gz":
        return [json.loads(line) for line in gzip.decompress(body).splitlines()]
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def test_kind_and_units_are_exported() -> None:
    """A request priced per image says so; a chat request has no `units`."""
    image = export_record(row(kind="image", unit="image", units=2, api_type="oai_images"))
    assert (image["kind"], image["units"]) == ("image", {"unit": "image", "count": 2})
    chat = export_record(row())
    assert chat["kind"] == "chat" and "units" not in chat


def test_unpriced_uncaptured_record_omits_cost_and_capture() -> None:
    record = export_record(row())
    assert "estimated_cost" not in record and "capture" not in record
    assert record["identity"]["tags"] == ["tag:ci", "tag:prod"]
    assert (record["identity"]["api_key_id"], record["identity"]["api_key_name"]) == (
        "key_0123456789abcdef",
        "ci runner",
    )
    assert record["usage"] == {
        "input": 10,
        "output": 5,
        "cached": 4,
        "cache_write": 3,
        "reasoning": 3,
    }
    assert record["timestamp"] == "2026-03-04T05:06:07.891000Z"
    assert record["stream"] is True


def test_binary_bodies_are_base64_with_their_encoding() -> None:
    captured = row(
        capture_request_id="req_abc",
        request_headers='{"content-type": "application/json"}',
        response_headers="{}",
        request_body=b'{"model": "m"}',
        response_body=b"\xff\x00binary",
        cost_nanodollars=1_500_000,
        cost_basis="openai/gpt-4o-mini",
    )
    record = export_record(captured)
    assert record["estimated_cost"] == {
        "dollars": 0.0015,
        "nanodollars": 1_500_000,
        "cost_basis": "openai/gpt-4o-mini",
    }
    capture = record["capture"]
    assert capture["request_body"] == '{"model": "m"}' and "request_body_encoding" not in capture
    assert capture["response_body"] == "/wBiaW5hcnk="
    assert capture["response_body_encoding"] == "base64"
    assert "response_raw" not in capture  # none kept (save_raws off, or purged)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips(fmt: str) -> None:
    records = [
        export_record(row()),
        export_record(
            row(
                id=42,
                capture_request_id="req_abc",
                request_headers='{"a": "b"}',
                response_headers="{}",
                request_body=b"{}",
                response_body=b"{}",
                cost_nanodollars=7,
                cost_basis="openai",
                response_raw=b"\x1f\x8b\x08raw",
                response_raw_encoding="gzip",
            )
        ),
    ]
    _, _, encode = FORMATS[fmt]
    decoded = decode(fmt, encode(records))
    assert [r["id"] for r in decoded] == [41, 42]
    assert decoded[0]["usage"] == records[0]["usage"]
    assert decoded[1]["estimated_cost"]["nanodollars"] == 7
    assert decoded[1]["capture"]["response_raw"] == "H4sIcmF3"  # the bytes, base64
    assert decoded[1]["capture"]["response_raw_content_encoding"] == "gzip"
    if fmt == "parquet":  # fixed schema: absent fields are nulls, maps are pairs
        assert decoded[0]["estimated_cost"] is None and decoded[0]["capture"] is None
        assert decoded[1]["capture"]["request_headers"] == [("a", "b")]
    else:
        assert decoded == records


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_translated_record_names_the_providers_api_and_keeps_its_side(fmt: str) -> None:
    translated = export_record(
        row(
            capture_request_id="req_abc",
            request_headers="{}",
            response_headers="{}",
            request_body=b'{"messages": []}',
            response_body=b'{"choices": []}',
            upstream_format="anthropic_messages",
            upstream_request_body=b'{"max_tokens": 4096}',
            upstream_response_body=b'{"type": "message"}',
        )
    )
    assert translated["upstream_format"] == "anthropic_messages"
    assert translated["capture"]["upstream_request_body"] == '{"max_tokens": 4096}'
    assert "upstream_format" not in export_record(row(upstream_format=""))
    _, _, encode = FORMATS[fmt]
    [decoded] = decode(fmt, encode([translated]))
    assert decoded["upstream_format"] == "anthropic_messages"
    assert decoded["capture"]["upstream_response_body"] == '{"type": "message"}'
