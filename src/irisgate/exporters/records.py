"""Export records and the object formats that hold a batch of them.

A record is Aperture's S3 export record (`ver` 2): `id`, `timestamp`, `identity`, `model`,
`provider`, `api_type`, `path`, `status_code`, `duration_ms`, `usage`, `estimated_cost`
(omitted when the request could not be priced), `capture_id`, `session_id` and `capture`
(headers, processed bodies, tool-use count; absent once retention purged it). With
`database.save_raws` the capture also carries the upstream's answer as received,
`response_raw` (base64 in every format: it is bytes, often compressed) and
`response_raw_content_encoding` (its HTTP content-encoding, "" for none); both are absent when
no raw answer is kept (not asked for, or purged by retention's `raws`).

Bodies are text when they are UTF-8 (JSON, streams reassembled into JSON), else base64 with
`request_body_encoding` / `response_body_encoding` set to `"base64"`, so that the three
formats carry the same values. Formats, chosen by `exporters.s3.format`:

- `cbor.zstd` (default, Aperture's): the records as a sequence of CBOR items (RFC 8742),
  zstd-compressed as one frame.
- `jsonl.gz`: one JSON object per line, gzip-compressed.
- `parquet`: one row per record with nested structs (Athena, BigQuery, DuckDB read it).
"""

from __future__ import annotations

import base64
import gzip
import io
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import cbor2
import orjson
import zstandard

RECORD_VERSION = 2
Record = dict[str, Any]


def export_record(row: Mapping[str, Any]) -> Record:
    """The export record of one `requests` row joined with its `captures` row (the capture
    columns are None when there is no capture)."""
    started: datetime = row["started_at"]
    record: Record = {
        "id": int(row["id"]),
        "ver": RECORD_VERSION,
        "timestamp": started.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "identity": {
            "login_name": row["login_name"],
            "display_name": row["display_name"],
            "stable_node_id": row["node_id"],
            "node_name": row["node_name"],
            "tags": row["tags"].split(",") if row["tags"] else [],
            "api_key_id": row["key_id"],
            "api_key_name": row["key_name"],
        },
        "model": row["model"],
        "provider": row["provider"],
        "api_type": row["api_type"],
        "kind": row["kind"],
        "path": row["path"],
        "status_code": int(row["status"]),
        "duration_ms": round(float(row["duration_ms"]), 3),
        "stream": bool(row["stream"]),
        "usage": {
            "input": int(row["input_tokens"]),
            "output": int(row["output_tokens"]),
            "cached": int(row["cache_read_tokens"]),
            "cache_write": int(row["cache_write_5m_tokens"]) + int(row["cache_write_1h_tokens"]),
            "reasoning": int(row["reasoning_tokens"]),
        },
        "capture_id": row["request_id"],
        "session_id": row["session_id"],
        "user_agent": row["user_agent"],
    }
    if row["unit"]:
        record["units"] = {"unit": row["unit"], "count": int(row["units"])}
    cost = row["cost_nanodollars"]
    if cost is not None:
        record["estimated_cost"] = {
            "dollars": cost / 1e9,
            "nanodollars": int(cost),
            "cost_basis": row["cost_basis"],
        }
    if row.get("upstream_format"):  # translated: the provider's API format
        record["upstream_format"] = row["upstream_format"]
    if row["capture_request_id"] is not None:
        record["capture"] = _capture(row)
    return record


def _capture(row: Mapping[str, Any]) -> dict[str, Any]:
    capture: dict[str, Any] = {
        "request_headers": _headers(row["request_headers"]),
        "response_headers": _headers(row["response_headers"]),
        "tool_calls": int(row["tool_calls"]),
    }
    for name in ("request_body", "response_body"):
        text, encoding = _body(row[name])
        capture[name] = text
        if encoding != "utf-8":
            capture[f"{name}_encoding"] = encoding
    raw = row.get("response_raw")
    if raw is not None:
        capture["response_raw"] = base64.b64encode(bytes(raw)).decode("ascii")
        capture["response_raw_content_encoding"] = row.get("response_raw_encoding") or ""
    for name in ("upstream_request_body", "upstream_response_body"):
        stored = row.get(name)
        if stored is not None:  # a translated request: the provider's side
            text, encoding = _body(stored)
            capture[name] = text
            if encoding != "utf-8":
                capture[f"{name}_encoding"] = encoding
    return capture


def _headers(stored: str | None) -> dict[str, str]:
    decoded = orjson.loads(stored) if stored else {}
    return {str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}


def _body(stored: bytes | None) -> tuple[str, str]:
    data = bytes(stored) if stored is not None else b""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


# --- formats ------------------------------------------------------------------------------


def encode_cbor_zstd(records: Sequence[Record]) -> bytes:
    body = b"".join(cbor2.dumps(record) for record in records)
    return zstandard.ZstdCompressor().compress(body)


def encode_jsonl_gz(records: Sequence[Record]) -> bytes:
    body = b"".join(orjson.dumps(record) + b"\n" for record in records)
    return gzip.compress(body, mtime=0)  # mtime 0: the same batch always gives the same bytes


@cache
def parquet_schema() -> Any:
    """The Parquet schema of a record. pyarrow (~40 MiB) is imported on first use only."""
    import pyarrow as pa

    headers = pa.map_(pa.string(), pa.string())
    return pa.schema(
        [
            ("id", pa.int64()),
            ("ver", pa.int32()),
            ("timestamp", pa.string()),
            (
                "identity",
                pa.struct(
                    [
                        ("login_name", pa.string()),
                        ("display_name", pa.string()),
                        ("stable_node_id", pa.string()),
                        ("node_name", pa.string()),
                        ("tags", pa.list_(pa.string())),
                        ("api_key_id", pa.string()),
                        ("api_key_name", pa.string()),
                    ]
                ),
            ),
            ("model", pa.string()),
            ("provider", pa.string()),
            ("api_type", pa.string()),
            ("kind", pa.string()),
            ("path", pa.string()),
            ("status_code", pa.int32()),
            ("duration_ms", pa.float64()),
            ("stream", pa.bool_()),
            (
                "usage",
                pa.struct(
                    [
                        (name, pa.int64())
                        for name in ("input", "output", "cached", "cache_write", "reasoning")
                    ]
                ),
            ),
            ("capture_id", pa.string()),
            ("session_id", pa.string()),
            ("user_agent", pa.string()),
            ("upstream_format", pa.string()),
            ("units", pa.struct([("unit", pa.string()), ("count", pa.int64())])),
            (
                "estimated_cost",
                pa.struct(
                    [
                        ("dollars", pa.float64()),
                        ("nanodollars", pa.int64()),
                        ("cost_basis", pa.string()),
                    ]
                ),
            ),
            (
                "capture",
                pa.struct(
                    [
                        ("request_headers", headers),
                        ("response_headers", headers),
                        ("tool_calls", pa.int32()),
                        ("request_body", pa.string()),
                        ("request_body_encoding", pa.string()),
                        ("response_body", pa.string()),
                        ("response_body_encoding", pa.string()),
                        ("response_raw", pa.string()),
                        ("response_raw_content_encoding", pa.string()),
                        ("upstream_request_body", pa.string()),
                        ("upstream_request_body_encoding", pa.string()),
                        ("upstream_response_body", pa.string()),
                        ("upstream_response_body_encoding", pa.string()),
                    ]
                ),
            ),
        ]
    )


def encode_parquet(records: Sequence[Record]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_parquet_row(record) for record in records]
    table = pa.Table.from_pylist(rows, schema=parquet_schema())
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def _parquet_row(record: Record) -> Record:
    """Maps as key/value pairs and absent optional fields as None, as pyarrow takes them."""
    row = dict(record)
    row.setdefault("estimated_cost", None)
    capture = row.get("capture")
    if capture is not None:
        row["capture"] = {
            **capture,
            "request_headers": list(capture["request_headers"].items()),
            "response_headers": list(capture["response_headers"].items()),
        }
    else:
        row["capture"] = None
    return row


#: format name -> (file extension, content type, encoder)
FORMATS: dict[str, tuple[str, str, Callable[[Sequence[Record]], bytes]]] = {
    "cbor.zstd": ("cbor.zstd", "application/zstd", encode_cbor_zstd),
    "jsonl.gz": ("jsonl.gz", "application/gzip", encode_jsonl_gz),
    "parquet": ("parquet", "application/vnd.apache.parquet", encode_parquet),
}
