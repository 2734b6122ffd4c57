"""OpenTelemetry traces (`IRISGATE_OTEL=1`, the `otel` extra): a real irisgate process sends
one span per request over OTLP/HTTP to a collector stand-in, which decodes the protobuf
exactly as an OpenTelemetry collector would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import gateway_config, openai_client, wait_for_record
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer


class Collector:
    """Receives OTLP/HTTP trace exports (`POST /v1/traces`, protobuf) and keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    resource = _attrs(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            collector.resources.append(resource)
                            collector.spans.append(span)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _attrs(attributes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def test_each_request_becomes_a_genai_span(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, collector: Collector, tmp_path: Path
) -> None:
    assert localapi.socket_path
    env = {
        "IRISGATE_OTEL": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env=env,
    )
    with server as gw:
        raw = openai_client(gw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "trace me"}]
        )
        request_id = raw.headers["x-irisgate-request-id"]
        answer = raw.parse()
        stored = wait_for_record(gw, request_id)
        deadline = time.monotonic() + 30
        while not collector.spans and time.monotonic() < deadline:
            time.sleep(0.05)

    assert len(collector.spans) == 1
    span = collector.spans[0]
    attributes = _attrs(span.attributes)
    assert span.name == "chat gpt-4o-mini"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert answer.usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attributes["http.response.status_code"] == 200
    assert attributes["irisgate.request_id"] == request_id
    assert attributes["enduser.id"] == "alice@example.com"
    # the span has the request's own times (as stored), not the time it was made
    started = datetime.fromisoformat(stored["started_at"].replace("Z", "+00:00"))
    started_ms = (started - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert span.start_time_unix_nano // 1_000_000 == started_ms
    duration_ns = span.end_time_unix_nano - span.start_time_unix_nano
    assert abs(duration_ns - stored["duration_ms"] * 1e6) <= 1
    assert collector.resources[0]["service.name"] == "irisgate"


def test_without_the_setting_nothing_is_sent(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, collector: Collector, tmp_path: Path
) -> None:
    assert localapi.socket_path
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env=env,
    )
    with server as gw:
        openai_client(gw).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "no trace"}]
        )
    assert collector.spans == []  # stopped (SIGTERM) flushes spans: none were made
