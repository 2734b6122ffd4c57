"""`GET /metrics` text of the request metrics, checked against prometheus-client's own
Counter and Histogram fed the same requests (what `Metrics.observe` used before it kept its
own aggregates): same families, help texts, types, series, order, buckets and values; only the
`_created` timestamps are compared by range.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics

from irisgate.telemetry.metrics import Metrics, upstream_error_kind
from irisgate.telemetry.record import RequestRecord
from irisgate.usage.tokens import Usage

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
TOKEN_TYPES = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_tokens", "cached"),
    ("cache_write_5m_tokens", "cache_write"),
    ("cache_write_1h_tokens", "cache_write"),
    ("reasoning_tokens", "reasoning"),
)
CREATED = re.compile(r"^(\w+_created(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


class Reference:
    """The request metrics as prometheus-client metrics, updated the straightforward way."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "irisgate_requests",
            "Gateway requests answered, by routed provider/model, API format and status.",
            ["provider", "model", "api_format", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "irisgate_request_duration_seconds",
            "First request byte in to last answer byte out.",
            ["provider", "api_format"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "irisgate_time_to_first_byte_seconds",
            "Request start to the first answer body byte sent to the client.",
            ["provider", "api_format"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "irisgate_gateway_overhead_seconds",
            "Request duration minus the time spent on the upstream call (routed requests).",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "irisgate_tokens",
            "Tokens reported by upstreams, by type (input, output, cached, cache_write, "
            "reasoning).",
            ["provider", "model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "irisgate_cost_dollars",
            "Estimated cost of priced requests in US dollars.",
            ["provider", "model"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "irisgate_upstream_errors",
            "Upstream failures: unreachable, timeout, interrupted (broke off mid-answer) or "
            "http_5xx (the upstream answered with a server error).",
            ["provider", "kind"],
            registry=r,
        )

    def observe(self, record: RequestRecord) -> None:
        routed = bool(record.provider)
        provider, model = record.provider, record.model if routed else ""
        fmt = record.api_format
        # series appear when a label tuple is first seen, whether incremented or not
        count = self.requests.labels(provider, model, fmt, str(record.status))
        duration = self.duration.labels(provider, fmt)
        ttfb = self.ttfb.labels(provider, fmt)
        cost = self.cost.labels(provider, model)
        tokens = {kind: self.tokens.labels(provider, model, kind) for _, kind in TOKEN_TYPES}
        count.inc()
        duration.observe(record.duration_ms / 1000)
        if record.ttfb_ms is not None:
            ttfb.observe(record.ttfb_ms / 1000)
        if not routed:
            return
        if record.upstream_ms is not None:
            self.overhead.observe(max(0.0, record.duration_ms - record.upstream_ms) / 1000)
        for attr, kind in TOKEN_TYPES:
            value = getattr(record.usage, attr)
            if value:
                tokens[kind].inc(value)
        if record.cost_nanodollars:
            cost.inc(record.cost_nanodollars / 1e9)
        failure = upstream_error_kind(record)
        if failure is not None:
            self.upstream_errors.labels(provider, failure).inc()


def record(**fields: object) -> RequestRecord:
    base: dict[str, object] = {
        "request_id": "req_0123456789abcdef0123456789",
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "login_name": "alice@example.com",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "api_format": "openai_chat",
        "status": 200,
        "duration_ms": 123.4,
        "ttfb_ms": 45.6,
        "upstream_ms": 120.0,
    }
    return RequestRecord(**{**base, **fields})  # type: ignore[arg-type]


def requests() -> Iterator[RequestRecord]:
    """Routed and unrouted requests, every token type, costs, each upstream failure kind and
    durations on, between and beyond the bucket bounds."""
    usage = Usage(
        input_tokens=1200,
        output_tokens=34,
        cache_read_tokens=1000,
        cache_write_5m_tokens=7,
        cache_write_1h_tokens=11,
        reasoning_tokens=3,
        image_input_tokens=5,
        web_search_count=1,
    )
    yield record(usage=usage, cost_nanodollars=123_456)
    yield record(usage=Usage(input_tokens=10, output_tokens=2), cost_nanodollars=7)
    yield record(provider="", model="made-up", status=404, error="no route", upstream_ms=None)
    yield record(provider="", model="", api_format="anthropic_messages", status=400, ttfb_ms=None)
    yield record(provider="down", model="down-model", status=502, error="unreachable")
    yield record(provider="slow", model="m", status=504, error="timeout", ttfb_ms=None)
    yield record(status=200, error="upstream broke off", usage=Usage(output_tokens=5))
    yield record(status=500, usage=Usage(), cost_nanodollars=None)
    yield record(status=503)
    yield record(status=403, error="grant refused", upstream_ms=None)
    yield record(api_format="openai_responses", duration_ms=600_001.0, upstream_ms=600_000.0)
    for bound in DURATION_BUCKETS:  # exactly on a bound counts in that bucket
        yield record(duration_ms=bound * 1000, ttfb_ms=bound * 1000, upstream_ms=0.0)
    for bound in OVERHEAD_BUCKETS:
        yield record(duration_ms=100 + bound * 1000, upstream_ms=100.0)
    yield record(duration_ms=0.0, ttfb_ms=0.0, upstream_ms=5.0)  # upstream longer: overhead 0
    yield record(provider="anthropic", model="claude", api_format="anthropic_messages")
    yield record(duration_ms=0.1 + 0.2, ttfb_ms=1e-9, upstream_ms=0.1)


def request_families(text: str) -> str:
    """The families `Reference` also has: everything before the quota balance family."""
    return text.split("# HELP irisgate_quota_balance_dollars ", 1)[0]


def masked(text: str, start: float, end: float) -> str:
    """`text` with each `_created` value checked to lie in [start, end] and replaced."""
    for match in CREATED.finditer(text):
        assert start <= float(match.group(2)) <= end, match.group(0)
    return CREATED.sub(r"\1 CREATED", text)


def test_exposition_matches_prometheus_client_metrics() -> None:
    start = time.time()
    metrics, reference = Metrics(), Reference()
    empty = request_families(metrics.exposition().decode())
    assert masked(empty, start, time.time()) == masked(
        generate_latest(reference.registry).decode(), start, time.time()
    )
    for rec in requests():
        metrics.observe(rec)
        reference.observe(rec)
    ours = request_families(metrics.exposition().decode())
    theirs = generate_latest(reference.registry).decode()
    end = time.time()
    assert "irisgate_upstream_errors_total{" in ours  # the sample covers every family
    assert 'irisgate_requests_total{api_format="anthropic_messages",model="",provider=""' in ours
    assert masked(ours, start, end) == masked(theirs, start, end)


def test_other_families_follow_in_their_order() -> None:
    metrics = Metrics()
    metrics.observe(record())
    metrics.quota_rejected("team")
    names = re.findall(r"^# TYPE (\S+) ", metrics.exposition().decode(), re.MULTILINE)
    assert [n for n in names if not n.endswith("_created")] == [
        "irisgate_requests_total",
        "irisgate_request_duration_seconds",
        "irisgate_time_to_first_byte_seconds",
        "irisgate_gateway_overhead_seconds",
        "irisgate_tokens_total",
        "irisgate_cost_dollars_total",
        "irisgate_upstream_errors_total",
        "irisgate_quota_balance_dollars",
        "irisgate_quota_rejections_total",
        "irisgate_rate_limit_rejections_total",
        "irisgate_hook_calls_total",
        "irisgate_hook_failures_total",
        "irisgate_export_records_total",
        "irisgate_export_failures_total",
        "irisgate_export_last_success_timestamp_seconds",
        "irisgate_retention_purged_total",
        "irisgate_retention_last_run_timestamp_seconds",
    ]


def test_created_series_follow_prometheus_client_switch() -> None:
    metrics, reference = Metrics(), Reference()
    for rec in requests():
        metrics.observe(rec)
        reference.observe(rec)
    prometheus_metrics.disable_created_metrics()
    try:
        ours = request_families(metrics.exposition().decode())
        theirs = generate_latest(reference.registry).decode()
    finally:
        prometheus_metrics.enable_created_metrics()
    assert "_created" not in ours
    assert ours == theirs


def test_negative_counts_are_refused_like_prometheus_client() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe(record(usage=Usage(input_tokens=-1)))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.observe(record(cost_nanodollars=-5))


def test_metric_names_cannot_be_registered_twice() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("irisgate_requests", "again", registry=metrics.registry)
