"""Optional OpenTelemetry traces: one span per gateway request (`--otel 1`, `IRISGATE_OTEL`).

Needs the `otel` extra (`pip install 'irisgate[otel]'`). irisgate uses the process's tracer
provider when one is already installed (e.g. by `opentelemetry-instrument`); otherwise it
installs the SDK's, exporting OTLP over HTTP to where the standard `OTEL_EXPORTER_OTLP_*`
variables point (default `http://localhost:4318`).

Spans are built from the finished request record, after the answer went out, with the
request's own start and end times: tracing adds nothing to the time a client waits. Names
and attributes follow the OpenTelemetry GenAI semantic conventions (`chat gpt-4o`,
`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.usage.input_tokens`, ...), plus `irisgate.*` attributes for what they do not cover.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from irisgate.telemetry.record import RequestRecord

#: API format -> gen_ai.provider.name (well-known values of the conventions)
_GENAI_PROVIDERS = {
    "openai_chat": "openai",
    "openai_responses": "openai",
    "anthropic_messages": "anthropic",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class TracingUnavailable(RuntimeError):
    """Traces were asked for but the `otel` extra is not installed."""


class Tracing:
    """Turns finished request records into spans."""

    def __init__(self) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise TracingUnavailable(
                "IRISGATE_OTEL=1 needs OpenTelemetry: pip install 'irisgate[otel]'"
            ) from exc
        provider = trace.get_tracer_provider()
        self._owned: Any = None
        if isinstance(provider, trace.ProxyTracerProvider):  # nobody installed one
            provider = self._owned = _sdk_provider()
            trace.set_tracer_provider(provider)
        self._tracer = provider.get_tracer("irisgate")
        self._trace = trace

    def close(self) -> None:
        """Send the spans still buffered (the SIGTERM path), if irisgate set tracing up."""
        if self._owned is not None:
            self._owned.shutdown()

    def span(self, record: RequestRecord) -> None:
        """Record one finished request as a span."""
        trace = self._trace
        start_ns = (record.started_at - _EPOCH) // _MICROSECOND * 1000  # exact, no float
        operation = "chat"
        span = self._tracer.start_span(
            f"{operation} {record.model}" if record.model else operation,
            kind=trace.SpanKind.SERVER,
            start_time=start_ns,
            attributes=_attributes(record, operation),
        )
        if record.status >= 500 or (record.error and record.status >= 400):
            span.set_status(trace.Status(trace.StatusCode.ERROR, record.error or None))
        span.end(end_time=start_ns + round(record.duration_ms * 1e6))


def _attributes(record: RequestRecord, operation: str) -> dict[str, Any]:
    usage = record.usage
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _GENAI_PROVIDERS.get(record.api_format, record.provider),
        "gen_ai.request.model": record.model,
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "http.request.method": record.method,
        "http.response.status_code": record.status,
        "url.path": record.path,
        "irisgate.request_id": record.request_id,
        "irisgate.provider": record.provider,
        "irisgate.api_format": record.api_format,
        "irisgate.stream": record.stream,
    }
    if record.session_id:
        attributes["gen_ai.conversation.id"] = record.session_id
    if record.login_name:
        attributes["enduser.id"] = record.login_name
    if record.error:
        attributes["error.type"] = "upstream" if record.status in (502, 504) else "gateway"
    if record.cost_nanodollars is not None:
        attributes["irisgate.cost_dollars"] = record.cost_nanodollars / 1e9
    if record.ttfb_ms is not None:
        attributes["irisgate.time_to_first_byte_ms"] = record.ttfb_ms
    if record.upstream_ms is not None:
        attributes["irisgate.upstream_ms"] = record.upstream_ms
    return attributes


def _sdk_provider() -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise TracingUnavailable(
            "IRISGATE_OTEL=1 needs the OTLP exporter: pip install 'irisgate[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": "irisgate"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
