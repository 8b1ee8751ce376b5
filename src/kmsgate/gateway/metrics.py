"""Prometheus metrics of the gateway, correct when summed across worker processes.

One ``GatewayMetrics`` object per process owns every metric. In multi-process mode
(``multiprocess_dir`` set: the supervisor creates the directory and passes it to each
worker) values live in prometheus-client's per-process memory-mapped files, and
``render()`` merges the files of all workers, live and dead, into one exposition: counters
and histograms sum, gauges of in-flight work sum over live processes only (``livesum``).
In single-process mode (tests, ``--workers 0``) the metrics sit in a private registry.

Labels are bounded by construction: ``route`` is one of the names in ``ROUTES`` (never
a path or object key), ``method`` one of ``METHODS``, ``status`` an HTTP status code,
``operation`` one of ``KMS_OPERATIONS``, ``outcome`` ``ok`` or an AWS error code from the
fixed ``kmsgate.core.errors`` tree (anything else becomes ``error``), ``reason`` one of
``EVICTION_REASONS`` (for worker restarts, one of ``WORKER_RESTART_REASONS``). No metric carries a
key id, object key, size of a secret or any secret value.

The hot path looks each label set up once: ``observe_request`` and ``observe_kms_call`` keep
the labelled children they used (prometheus-client's ``labels()`` costs a lock and a dict
lookup with label validation per call). ``observe_request`` also adds its counts, and its
latency to a per-process count per histogram bucket and a sum, to plain per-process totals
that ``flush`` folds into the shared counters and histogram (each multi-process update is a
locked write into the memory-mapped file: a histogram observation written through costs about
8 µs a request); the owner calls ``flush`` on a short timer and before every exposition, and
sets the in-flight gauge from its own count at the same time.

Updates happen on the event-loop thread only (prometheus-client's multi-process values
take one process-wide lock and are not meant for hot multi-threaded use).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from kmsgate.core import errors as kms_errors

ROUTES = frozenset({"object", "encrypt", "decrypt", "healthz", "readyz", "metrics", "kms", "other"})
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"})
KMS_OPERATIONS = frozenset({"GenerateDataKey", "Decrypt", "Encrypt", "DescribeKey", "other"})
EVICTION_REASONS = frozenset({"age", "messages", "bytes", "capacity", "other"})
WORKER_RESTART_REASONS = ("exited", "signal", "unresponsive")
"""Why a worker was replaced: it exited on its own, a signal from outside ended it (a crash, the OOM
killer, ``kill -9``), or the supervisor killed it because its event loop stopped answering."""
_KMS_CODES = frozenset(
    getattr(obj, "code")
    for obj in vars(kms_errors).values()
    if isinstance(obj, type) and issubclass(obj, kms_errors.KmsError)
)
KMS_OUTCOMES = _KMS_CODES | {"ok", "timeout", "unavailable", "error"}

LATENCY_BUCKETS_SECONDS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
_LATENCY_UPPER_BOUNDS = (*LATENCY_BUCKETS_SECONDS, float("inf"))
"""The histogram's buckets as prometheus-client keeps them: a latency falls in the first bound >= it."""
_PENDING_LATENCY_AT = 4
"""Index in a pending total of the first latency bucket count (after requests, bytes in, bytes out, seconds)."""
NAMESPACE = "kmsgate"
MAX_CACHED_LABEL_SETS = 4096
"""Labelled children kept per metric for the hot path (the bounded label sets fit well within)."""
_RequestChildren = tuple[Counter, Histogram, Counter, Counter]


def _bounded(value: str, allowed: frozenset[str], fallback: str) -> str:
    return value if value in allowed else fallback


def _fold_latencies(histogram: Histogram, seconds: float, bucket_counts: list[float]) -> None:
    """Add many observations to a labelled histogram at once: what as many ``observe`` calls would add.

    prometheus-client has no public call for this; its histogram child keeps a sum value and one
    non-cumulative value per upper bound (``observe`` adds to the sum and to the first bucket
    whose bound is at or above the amount), which is what this adds to.
    ``tests/gateway/test_gw_metrics.py`` checks the result against ``observe``.
    """
    histogram._sum.inc(seconds)
    for bucket, count in zip(histogram._buckets, bucket_counts, strict=True):
        if count:
            bucket.inc(count)


def enable_multiprocess(directory: str | os.PathLike[str]) -> None:
    """Switch prometheus-client to multi-process values stored in ``directory``.

    Must run in the worker before its first metric is created. The environment variable
    is what prometheus-client's merging and ``mark_process_dead`` read; the value class
    is chosen here, because this module may have been imported before the variable was
    set (for instance in a supervisor that forked the worker).
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.fspath(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def mark_worker_dead(directory: str | os.PathLike[str], pid: int) -> None:
    """Drop a dead worker's live gauges from the merge (called by the supervisor)."""
    multiprocess.mark_process_dead(pid, os.fspath(directory))


class GatewayMetrics:
    """Every gateway metric, and the ``/metrics`` rendering."""

    def __init__(self, multiprocess_dir: str | os.PathLike[str] | None = None) -> None:
        self.multiprocess_dir = Path(multiprocess_dir) if multiprocess_dir is not None else None
        if self.multiprocess_dir is not None:
            enable_multiprocess(self.multiprocess_dir)
        # In multi-process mode values go to the shared files and ``render`` reads those;
        # the private registry keeps these objects out of the global default registry.
        self._own_registry = CollectorRegistry(auto_describe=True)
        reg = self._own_registry
        ns = NAMESPACE
        self.requests = Counter(
            "gateway_requests", "Gateway HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], namespace=ns, registry=reg,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds", "Gateway request latency, first byte in to last byte out.",
            ["route", "method"], namespace=ns, registry=reg, buckets=LATENCY_BUCKETS_SECONDS,
        )
        self.bytes_in = Counter(
            "gateway_received_bytes", "Request body bytes received.", ["route"], namespace=ns, registry=reg,
        )
        self.bytes_out = Counter(
            "gateway_sent_bytes", "Response body bytes sent.", ["route"], namespace=ns, registry=reg,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Requests being handled now.",
            namespace=ns, registry=reg, multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "gateway_rejected_requests", "Requests shed because the worker was saturated "
            "(503 SlowDown on the gateway, ThrottlingException on the KMS API).",
            ["reason"], namespace=ns, registry=reg,
        )
        self.pool_queue_depth = Gauge(
            "gateway_crypto_pool_queue_depth", "Crypto jobs submitted to the thread pool and not yet finished.",
            namespace=ns, registry=reg, multiprocess_mode="livesum",
        )
        self.cache_hits = Counter(
            "datakey_cache_hits", "Data-key cache lookups (encryption and decryption) answered from the cache.",
            namespace=ns, registry=reg,
        )
        self.cache_misses = Counter(
            "datakey_cache_misses", "Data-key cache lookups that needed a KMS call.",
            namespace=ns, registry=reg,
        )
        self.cache_evictions = Counter(
            "datakey_cache_evictions", "Data keys dropped from the cache, by reason.",
            ["reason"], namespace=ns, registry=reg,
        )
        self.kms_calls = Counter(
            "kms_calls", "KMS calls made by the gateway, by operation and outcome.",
            ["operation", "outcome"], namespace=ns, registry=reg,
        )
        self.kms_seconds = Histogram(
            "kms_call_duration_seconds", "Latency of KMS calls made by the gateway.",
            ["operation"], namespace=ns, registry=reg, buckets=LATENCY_BUCKETS_SECONDS,
        )
        self.event_loop_tasks = Gauge(
            "event_loop_tasks", "asyncio tasks alive on a worker's event loop (one per open connection, plus "
            "requests' and background work), one sample per live worker; set when the worker syncs its metrics "
            "(every scrape it serves, and shortly after its requests).",
            namespace=ns, registry=reg, multiprocess_mode="liveall",
        )
        self.audit_writable = Gauge(
            "audit_log_writable", "1 while the audit log can be written; 0 after a failed write until a retry succeeds "
            "(KMS requests are refused meanwhile).", namespace=ns, registry=reg, multiprocess_mode="livemin",
        )
        self.audit_write_failures = Counter(
            "audit_log_write_failures", "Audit log write attempts that failed (disk full, I/O error).",
            namespace=ns, registry=reg,
        )
        self.catalog_key_failures = Counter(
            "catalog_key_failures", "Attempts to obtain the catalog key (KMS or storage) that failed; listings "
            "report message ids instead of MD5 ETags until one succeeds.", namespace=ns, registry=reg,
        )
        self._request_children: dict[tuple[str, str, int], _RequestChildren] = {}
        self._kms_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        # children -> [requests, bytes in, bytes out, seconds, one count per latency bucket...]
        self._pending_requests: dict[_RequestChildren, list[float]] = {}

    # -- recording (event-loop thread only) ------------------------------------------------

    def observe_request(self, *, route: str, method: str, status: int, seconds: float,
                        bytes_in: int, bytes_out: int) -> None:
        children = self._request_children.get((route, method, status))
        if children is None:
            children = self._request_children_for(route, method, status)
        totals = self._pending_requests.get(children)
        if totals is None:
            totals = self._pending_requests[children] = [0.0] * (_PENDING_LATENCY_AT + len(_LATENCY_UPPER_BOUNDS))
        totals[0] += 1
        totals[1] += bytes_in
        totals[2] += bytes_out
        totals[3] += seconds
        totals[_PENDING_LATENCY_AT + bisect_left(_LATENCY_UPPER_BOUNDS, seconds)] += 1

    def flush(self) -> None:
        """Fold the requests gathered by ``observe_request`` into the shared counters and histogram."""
        pending, self._pending_requests = self._pending_requests, {}
        for (requests, latency, received, sent), totals in pending.items():
            requests.inc(totals[0])
            if totals[1]:
                received.inc(totals[1])
            if totals[2]:
                sent.inc(totals[2])
            _fold_latencies(latency, totals[3], totals[_PENDING_LATENCY_AT:])

    def _request_children_for(self, route: str, method: str, status: int) -> _RequestChildren:
        """The labelled children for one (route, method, status), looked up once and kept.

        The cache key is what callers pass; the labels are bounded first, so the cache holds
        at most one entry per bounded combination plus the odd raw values that map onto them,
        and it is capped: past ``MAX_CACHED_LABEL_SETS`` children are looked up each time.
        """
        b_route = _bounded(route, ROUTES, "other")
        b_method = _bounded(method, METHODS, "OTHER")
        status_label = str(status) if 100 <= status <= 599 else "other"
        children = (
            self.requests.labels(b_route, b_method, status_label),
            self.request_seconds.labels(b_route, b_method),
            self.bytes_in.labels(b_route),
            self.bytes_out.labels(b_route),
        )
        if len(self._request_children) < MAX_CACHED_LABEL_SETS:
            self._request_children[(route, method, status)] = children
        return children

    def observe_kms_call(self, *, operation: str, outcome: str, seconds: float) -> None:
        children = self._kms_children.get((operation, outcome))
        if children is None:
            b_operation = _bounded(operation, KMS_OPERATIONS, "other")
            children = (self.kms_calls.labels(b_operation, _bounded(outcome, KMS_OUTCOMES, "error")),
                        self.kms_seconds.labels(b_operation))
            if len(self._kms_children) < MAX_CACHED_LABEL_SETS:
                self._kms_children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def cache_hit(self, count: int = 1) -> None:
        self.cache_hits.inc(count)

    def cache_miss(self, count: int = 1) -> None:
        self.cache_misses.inc(count)

    def cache_eviction(self, reason: str, count: int = 1) -> None:
        self.cache_evictions.labels(_bounded(reason, EVICTION_REASONS, "other")).inc(count)

    # -- exposition ------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition (merged across workers in multi-process mode) and its type."""
        self.flush()
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=os.fspath(self.multiprocess_dir))
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self._own_registry), CONTENT_TYPE_LATEST


class SupervisorMetrics:
    """What the worker supervisor counts, in the same multi-process directory as the workers' metrics."""

    def __init__(self, multiprocess_dir: str | os.PathLike[str]) -> None:
        enable_multiprocess(multiprocess_dir)
        registry = CollectorRegistry(auto_describe=True)
        self.killed_unresponsive = Counter(
            "workers_killed_unresponsive", "Workers killed and replaced because their event loop stopped answering.",
            namespace=NAMESPACE, registry=registry,
        )
        self.restarts = Counter(
            "worker_restarts", "Workers that died and were replaced, by reason (one of WORKER_RESTART_REASONS).",
            ["reason"], namespace=NAMESPACE, registry=registry,
        )
        for reason in WORKER_RESTART_REASONS:
            self.restarts.labels(reason)  # every reason exported from the start, at 0

    def count_restart(self, reason: str) -> None:
        """Count one worker that died and is replaced; ``reason`` is one of ``WORKER_RESTART_REASONS``."""
        if reason not in WORKER_RESTART_REASONS:
            raise ValueError(f"unknown worker restart reason {reason!r}")
        self.restarts.labels(reason).inc()
        if reason == "unresponsive":
            self.killed_unresponsive.inc()
