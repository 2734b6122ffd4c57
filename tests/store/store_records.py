"""Request records for the store tests (a plain module so test files can import it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.spool import Spool
from irisgate.usage.tokens import Usage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_record(index: int, **overrides: Any) -> RequestRecord:
    """A plausible record; `index` makes request_id and timing unique."""
    values: dict[str, Any] = {
        "request_id": f"req_{index:026d}",
        "started_at": T0 + timedelta(seconds=index),
        "login_name": "alice@example.com",
        "display_name": "Alice",
        "node_id": "nSTABLE1",
        "node_name": "alice-laptop",
        "tags": (),
        "path": "/v1/chat/completions",
        "api_format": "openai_chat",
        "api_type": "oai_completions",
        "model": "gpt-4o",
        "provider": "openai",
        "status": 200,
        "duration_ms": 120.5,
        "ttfb_ms": 30.25,
        "upstream_ms": 110.0,
        "usage": Usage(input_tokens=100 + index, output_tokens=10, cache_read_tokens=5),
        "cost_nanodollars": 1_000 * (index + 1),
        "cost_basis": "openai/gpt-4o",
        "session_id": "sess_1",
        "user_agent": "openai-python/3.51.0",
        "config_version": 1,
        "request_headers": {"content-type": "application/json"},
        "response_headers": {"content-type": "application/json", "x-request-id": "up_1"},
        "request_body": b'{"model":"gpt-4o","messages":[]}',
        "response_body": b'{"id":"chatcmpl-1","choices":[]}',
    }
    values.update(overrides)
    return RequestRecord(**values)


def new_spool(folder: Path, **options: Any) -> Spool:
    """An opened spool in `folder` (the batch writer journals every record to one)."""
    spool = Spool(folder, **options)
    spool.open()
    return spool
