"""Spans from request records, with the process's own tracer provider (as installed by
`opentelemetry-instrument` or an embedding application) and the SDK's in-memory exporter.
The end-to-end path (a real process exporting OTLP) is in tests/e2e/test_e2e_tracing.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.tracing import Tracing
from irisgate.usage.tokens import Usage

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


def record(**fields: object) -> RequestRecord:
    base: dict[str, object] = {
        "request_id": "req_0123456789abcdef0123456789",
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "login_name": "alice@example.com",
        "path": "/v1/messages",
        "api_format": "anthropic_messages",
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "status": 200,
        "duration_ms": 1500.0,
        "usage": Usage(input_tokens=12, output_tokens=34),
        "session_id": "sess-1",
    }
    base.update(fields)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_a_request_becomes_a_genai_span_with_its_own_times() -> None:
    EXPORTER.clear()
    tracing = Tracing()  # finds the provider installed above instead of making its own
    tracing.span(record())
    [span] = EXPORTER.get_finished_spans()
    assert span.name == "chat claude-sonnet-4-5"
    assert span.kind == trace.SpanKind.SERVER
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 34
    assert attributes["gen_ai.conversation.id"] == "sess-1"
    start = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1e9)
    assert span.start_time == start
    assert span.end_time == start + 1_500_000_000
    assert span.status.status_code == StatusCode.UNSET


def test_upstream_failures_are_error_spans() -> None:
    EXPORTER.clear()
    Tracing().span(record(status=502, error="upstream unreachable: refused"))
    [span] = EXPORTER.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "upstream unreachable: refused"
    assert dict(span.attributes or {})["error.type"] == "upstream"
