"""Prometheus metrics of one irisgate process, served at `GET /metrics`.

Each app owns a `Metrics` with its own `CollectorRegistry` (never prometheus-client's global
one), so several apps can run in one process (tests) without sharing counts.

Label sets are bounded by configuration, never by callers: `provider` and `model` are the
routed provider id and model (a request that was not routed counts with both empty, whatever
model it named), `api_format` is one of the format plug-ins, `status` an HTTP status code.
No request id, login name or session id is ever a label.

The request path pays one call per finished request (`observe`). The request metrics
(requests, durations, tokens, cost, upstream errors) are plain Python numbers kept per label
tuple, with the series one request updates cached per (provider, model, api_format, status):
no lock, no label dict, no prometheus-client call per request (everything runs on the event
loop's thread). `_RequestCollector` turns them into metric families when scraped, exactly as
prometheus-client's Counter and Histogram print them (series appear when their label tuple is
first seen, `_created` follows prometheus-client's switch); tests/telemetry checks the text
against those classes.

Quota and hook metrics are declared here with a one-line API for the features that produce
them (`quota_balance`, `quota_rejected`, `hook_called`, `hook_failed`); until those features
call them, the series stay absent, never faked. They, and the rarer metrics below, stay
prometheus-client metrics.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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


#: the `Usage` counters of `_TOKEN_TYPES`, as one tuple
_token_counts = attrgetter(*(attr for attr, _ in _TOKEN_TYPES))
#: what prometheus-client's Counter.inc raises for a negative amount (kept: same behaviour)
_NEGATIVE = "Counters can only be incremented by non-negative amounts."


class _Count:
    """One counter series: its value and when it appeared (`_created`)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class _Observations:
    """One histogram series: observations per bucket (not cumulative), their sum, creation."""

    __slots__ = ("bounds", "buckets", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """Count `amount` in the first bucket whose upper bound is >= it (+Inf is last)."""
        self.sum += amount
        self.buckets[bisect_left(self.bounds, amount)] += 1


class _CounterFamily:
    """A labelled counter: its series by label values, in the order they first appeared."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.series: dict[tuple[str, ...], _Count] = {}

    def of(self, *labels: str) -> _Count:
        """The series of these label values, created (at 0) when first asked for."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Count()
        return series

    def empty(self) -> Metric:
        return Metric(self.name, self.documentation, "counter")

    def family(self, created: bool) -> Metric:
        """Samples as prometheus-client's Counter gives them: `_total` (and `_created`)."""
        metric = self.empty()
        total, since = self.name + "_total", self.name + "_created"
        for labels, series in list(self.series.items()):
            named = dict(zip(self.labelnames, labels, strict=True))
            metric.add_sample(total, named, series.value)
            if created:
                metric.add_sample(since, named, series.created)
        return metric


class _HistogramFamily:
    """A histogram: its series by label values, in the order they first appeared. Without
    label names its one series exists from the start, as prometheus-client's does."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...],
        buckets: tuple[float, ...],
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.bounds = (*(float(b) for b in buckets), math.inf)
        #: `le` label values, spelt as prometheus-client spells them (its function is unannotated)
        self._le = tuple(floatToGoString(b) for b in self.bounds)  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], _Observations] = {}
        if not labelnames:
            self.of()

    def of(self, *labels: str) -> _Observations:
        """The series of these label values, created (empty) when first asked for."""
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Observations(self.bounds)
        return series

    def empty(self) -> Metric:
        return Metric(self.name, self.documentation, "histogram")

    def family(self, created: bool) -> Metric:
        """Samples as prometheus-client's Histogram gives them: cumulative `_bucket`s up to
        `+Inf`, `_count`, `_sum` (and `_created`)."""
        metric = self.empty()
        bucket = self.name + "_bucket"
        for labels, series in list(self.series.items()):
            named = list(zip(self.labelnames, labels, strict=True))
            total = 0.0
            for le, count in zip(self._le, list(series.buckets), strict=True):
                total += count
                metric.add_sample(bucket, dict([*named, ("le", le)]), total)
            metric.add_sample(self.name + "_count", dict(named), total)
            metric.add_sample(self.name + "_sum", dict(named), series.sum)
            if created:
                metric.add_sample(self.name + "_created", dict(named), series.created)
        return metric


class _RequestFamilies(Collector):
    """The request metrics, read at scrape time."""

    def __init__(self, *families: _CounterFamily | _HistogramFamily) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        created = prometheus_metrics._use_created  # prometheus-client's own switch
        return [family.family(created) for family in self._families]

    def describe(self) -> Iterator[Metric]:
        return iter([family.empty() for family in self._families])


class _Request:
    """The series one (provider, model, api_format, status) updates."""

    __slots__ = ("cost", "count", "duration", "tokens", "ttfb")

    def __init__(self, m: Metrics, provider: str, model: str, api_format: str, status: str):
        self.count = m._requests.of(provider, model, api_format, status)
        self.duration = m._request_duration.of(provider, api_format)
        self.ttfb = m._time_to_first_byte.of(provider, api_format)
        self.cost = m._cost.of(provider, model)
        kinds = {kind: m._tokens.of(provider, model, kind) for _, kind in _TOKEN_TYPES}
        #: in the order of `_token_counts`
        self.tokens = tuple(kinds[kind] for _, kind in _TOKEN_TYPES)


class Metrics:
    """All metrics of one app; see the module doc for the label rules."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = _CounterFamily(
            "irisgate_requests",
            "Gateway requests answered, by routed provider/model, API format and status.",
            ("provider", "model", "api_format", "status"),
        )
        self._request_duration = _HistogramFamily(
            "irisgate_request_duration_seconds",
            "First request byte in to last answer byte out.",
            ("provider", "api_format"),
            _DURATION_BUCKETS,
        )
        self._time_to_first_byte = _HistogramFamily(
            "irisgate_time_to_first_byte_seconds",
            "Request start to the first answer body byte sent to the client.",
            ("provider", "api_format"),
            _DURATION_BUCKETS,
        )
        self._gateway_overhead = _HistogramFamily(
            "irisgate_gateway_overhead_seconds",
            "Request duration minus the time spent on the upstream call (routed requests).",
            (),
            _OVERHEAD_BUCKETS,
        )
        self._tokens = _CounterFamily(
            "irisgate_tokens",
            "Tokens reported by upstreams, by type (input, output, cached, cache_write, "
            "reasoning).",
            ("provider", "model", "type"),
        )
        self._cost = _CounterFamily(
            "irisgate_cost_dollars",
            "Estimated cost of priced requests in US dollars.",
            ("provider", "model"),
        )
        self._upstream_errors = _CounterFamily(
            "irisgate_upstream_errors",
            "Upstream failures: unreachable, timeout, interrupted (broke off mid-answer) or "
            "http_5xx (the upstream answered with a server error).",
            ("provider", "kind"),
        )
        self._overhead = self._gateway_overhead.of()
        r.register(
            _RequestFamilies(
                self._requests,
                self._request_duration,
                self._time_to_first_byte,
                self._gateway_overhead,
                self._tokens,
                self._cost,
                self._upstream_errors,
            )
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
        self.rate_limit_rejections = Counter(
            "irisgate_rate_limit_rejections",
            "Requests refused with 429 because a rate limit was reached, by its template.",
            ["limit"],
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
        child.count.value += 1
        child.duration.observe(record.duration_ms / 1000)
        if record.ttfb_ms is not None:
            child.ttfb.observe(record.ttfb_ms / 1000)
        if not routed:
            return
        if record.upstream_ms is not None:
            overhead = record.duration_ms - record.upstream_ms
            self._overhead.observe((overhead if overhead > 0.0 else 0.0) / 1000)
        for value, series in zip(_token_counts(record.usage), child.tokens, strict=True):
            if value:
                if value < 0:
                    raise ValueError(_NEGATIVE)
                series.value += value
        cost = record.cost_nanodollars
        if cost:
            if cost < 0:
                raise ValueError(_NEGATIVE)
            child.cost.value += cost / 1e9
        if record.error or record.status >= 500:  # else upstream_error_kind says None
            failure = upstream_error_kind(record)
            if failure is not None:
                self._upstream_errors.of(record.provider, failure).value += 1

    # --- features of other modules: one call each ------------------------------------------

    def quota_balance(self, bucket: str, dollars: float) -> None:
        """The quota feature reports a bucket's balance after a debit or refill."""
        self.quota_balances.labels(bucket).set(dollars)

    def quota_rejected(self, bucket: str) -> None:
        """The quota feature refused a request because `bucket` was exhausted."""
        self.quota_rejections.labels(bucket).inc()

    def rate_limited(self, template: str) -> None:
        """The rate limits refused a request at the limit `template` (never a login name)."""
        self.rate_limit_rejections.labels(template).inc()

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
        spool_records: Callable[[], float],
        spool_bytes: Callable[[], float],
        spool_full: Callable[[], float],
    ) -> None:
        """Gauges and counters read from their owners when scraped (no per-request cost)."""
        Gauge(
            "irisgate_capture_queue_depth",
            "Request records waiting for the batch writer.",
            registry=self.registry,
        ).set_function(queue_depth)
        Gauge(
            "irisgate_capture_queue_capacity",
            "Records the capture queue holds; further ones wait in the spool only.",
            registry=self.registry,
        ).set(queue_capacity)
        Gauge(
            "irisgate_spool_records",
            "Request records waiting in the spool only (database unavailable or behind, or "
            "left by a process that died), to be stored from there.",
            registry=self.registry,
        ).set_function(spool_records)
        Gauge(
            "irisgate_spool_bytes",
            "Bytes in the spool files (DATA_DIR/spool).",
            registry=self.registry,
        ).set_function(spool_bytes)
        Gauge(
            "irisgate_spool_full",
            "1 while the spool is full and new requests are refused with 503.",
            registry=self.registry,
        ).set_function(spool_full)
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
