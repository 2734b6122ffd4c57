"""Prometheus metrics of one irisgate process, served at `GET /metrics`.

Each app owns a `Metrics` with its own `CollectorRegistry` (never prometheus-client's global
one), so several apps can run in one process (tests) without sharing counts.

Label sets are bounded by configuration, never by callers: `provider` and `model` are the
routed provider id and model (a request that was not routed counts with both empty, whatever
model it named), `api_format` is one of the format plug-ins, `status` an HTTP status code.
No request id, login name or session id is ever a label.

The request path pays one call per finished request (`observe`), which updates counters and
histograms through children cached per label tuple: no label dict is built per request.

Quota and hook metrics are declared here with a one-line API for the features that produce
them (`quota_balance`, `quota_rejected`, `hook_called`, `hook_failed`); until those features
call them, the series stay absent, never faked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from irisgate.telemetry.record import RequestRecord

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: latency buckets (seconds): LLM answers range from milliseconds (errors) to minutes
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: gateway overhead buckets (seconds): the gateway's own share is expected to be sub-ms
_OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
#: token counter name in `Usage` -> `type` label
_TOKEN_TYPES = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_tokens", "cached"),
    ("cache_write_5m_tokens", "cache_write"),
    ("cache_write_1h_tokens", "cache_write"),
    ("reasoning_tokens", "reasoning"),
)


class _Request:
    """The metric children one (provider, model, api_format, status) updates."""

    __slots__ = ("cost", "count", "duration", "overhead", "tokens", "ttfb", "upstream_errors")

    def __init__(self, m: Metrics, provider: str, model: str, api_format: str, status: str):
        self.count = m.requests.labels(provider, model, api_format, status)
        self.duration = m.request_duration.labels(provider, api_format)
        self.ttfb = m.time_to_first_byte.labels(provider, api_format)
        self.overhead = m.gateway_overhead
        self.cost = m.cost.labels(provider, model)
        self.tokens = {kind: m.tokens.labels(provider, model, kind) for _, kind in _TOKEN_TYPES}
        self.upstream_errors = m.upstream_errors


class Metrics:
    """All metrics of one app; see the module doc for the label rules."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "irisgate_requests",
            "Gateway requests answered, by routed provider/model, API format and status.",
            ["provider", "model", "api_format", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "irisgate_request_duration_seconds",
            "First request byte in to last answer byte out.",
            ["provider", "api_format"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_byte = Histogram(
            "irisgate_time_to_first_byte_seconds",
            "Request start to the first answer body byte sent to the client.",
            ["provider", "api_format"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.gateway_overhead = Histogram(
            "irisgate_gateway_overhead_seconds",
            "Request duration minus the time spent on the upstream call (routed requests).",
            buckets=_OVERHEAD_BUCKETS,
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
        self.quota_balances = Gauge(
            "irisgate_quota_balance_dollars",
            "Remaining balance of a quota bucket in US dollars (set by the quota feature).",
            ["bucket"],
            registry=r,
        )
        self.quota_rejections = Counter(
            "irisgate_quota_rejections",
            "Requests refused with 429 because a quota bucket was exhausted.",
            ["bucket"],
            registry=r,
        )
        self.hook_calls = Counter(
            "irisgate_hook_calls",
            "Calls of a configured hook, by hook name and event.",
            ["hook", "event"],
            registry=r,
        )
        self.hook_failures = Counter(
            "irisgate_hook_failures",
            "Hook calls that failed (timeout, unreachable, bad answer), by hook and event.",
            ["hook", "event", "reason"],
            registry=r,
        )
        self.export_records = Counter(
            "irisgate_export_records",
            "Request records delivered by the S3 exporter.",
            registry=r,
        )
        self.export_failures = Counter(
            "irisgate_export_failures",
            "Export attempts that failed and will be retried (S3 or database unavailable).",
            registry=r,
        )
        self.export_last_success = Gauge(
            "irisgate_export_last_success_timestamp_seconds",
            "Unix time of the last batch the S3 exporter delivered.",
            registry=r,
        )
        self.purged = Counter(
            "irisgate_retention_purged",
            "Captures purged by retention, by category (bodies, headers).",
            ["category"],
            registry=r,
        )
        self.purge_last_run = Gauge(
            "irisgate_retention_last_run_timestamp_seconds",
            "Unix time the retention purge last finished a round.",
            registry=r,
        )
        self._children: dict[tuple[str, str, str, int], _Request] = {}

    # --- the request path ------------------------------------------------------------------

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (called once per request, after its answer)."""
        routed = bool(record.provider)
        key = (record.provider, record.model if routed else "", record.api_format, record.status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _Request(self, key[0], key[1], key[2], str(key[3]))
        child.count.inc()
        child.duration.observe(record.duration_ms / 1000)
        if record.ttfb_ms is not None:
            child.ttfb.observe(record.ttfb_ms / 1000)
        if not routed:
            return
        if record.upstream_ms is not None:
            child.overhead.observe(max(0.0, record.duration_ms - record.upstream_ms) / 1000)
        usage = record.usage
        for attr, kind in _TOKEN_TYPES:
            value = getattr(usage, attr)
            if value:
                child.tokens[kind].inc(value)
        if record.cost_nanodollars:
            child.cost.inc(record.cost_nanodollars / 1e9)
        failure = upstream_error_kind(record)
        if failure is not None:
            child.upstream_errors.labels(record.provider, failure).inc()

    # --- features of other modules: one call each ------------------------------------------

    def quota_balance(self, bucket: str, dollars: float) -> None:
        """The quota feature reports a bucket's balance after a debit or refill."""
        self.quota_balances.labels(bucket).set(dollars)

    def quota_rejected(self, bucket: str) -> None:
        """The quota feature refused a request because `bucket` was exhausted."""
        self.quota_rejections.labels(bucket).inc()

    def hook_called(self, hook: str, event: str) -> None:
        """A hook was called for `event` (e.g. `pre_request`, `post_response`)."""
        self.hook_calls.labels(hook, event).inc()

    def hook_failed(self, hook: str, event: str, reason: str) -> None:
        """A hook call failed; `reason` from a small fixed set (timeout, unreachable, ...)."""
        self.hook_failures.labels(hook, event, reason).inc()

    # --- process state, read at scrape time ------------------------------------------------

    def watch(
        self,
        *,
        queue_depth: Callable[[], float],
        queue_capacity: float,
        dropped_total: Callable[[], float],
        config_version: Callable[[], float],
    ) -> None:
        """Gauges and counters read from their owners when scraped (no per-request cost)."""
        Gauge(
            "irisgate_capture_queue_depth",
            "Request records waiting for the batch writer.",
            registry=self.registry,
        ).set_function(queue_depth)
        Gauge(
            "irisgate_capture_queue_capacity",
            "Records the capture queue holds before callers wait for room.",
            registry=self.registry,
        ).set(queue_capacity)
        Gauge(
            "irisgate_config_version",
            "Id of the config version this instance runs.",
            registry=self.registry,
        ).set_function(config_version)
        self.registry.register(
            _CounterFromFunction(
                "irisgate_capture_dropped",
                "Request records the database refused and that were logged and dropped.",
                dropped_total,
            )
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


def upstream_error_kind(record: RequestRecord) -> str | None:
    """How the upstream failed this request, or None when it did not."""
    if record.error:
        if record.status == 504:
            return "timeout"
        if record.status == 502:
            return "unreachable"
        if record.status and record.status < 400:
            return "interrupted"  # the answer had started; the upstream broke off
        return None  # refused by the gateway itself (grants, bad request)
    if record.status >= 500:
        return "http_5xx"
    return None


class _CounterFromFunction(Collector):
    """A counter whose value another object keeps (read at scrape time)."""

    def __init__(self, name: str, documentation: str, value: Callable[[], float]) -> None:
        self._name, self._doc, self._value = name, documentation, value

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._doc)
        family.add_metric([], self._value())
        return [family]

    def describe(self) -> Iterator[Metric]:
        return iter([CounterMetricFamily(self._name, self._doc)])
