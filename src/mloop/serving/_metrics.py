"""Prometheus series of one server: requests, rows and latency per deployment and version."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class BoundMetrics:
    """The series of one (deployment, version), resolved once: label lookups cost microseconds per request."""

    def __init__(self, metrics: ServingMetrics, deployment: str, version: str) -> None:
        self.requests = {p: metrics.requests.labels(deployment, version, p, "200") for p in ("mlflow", "v2")}
        self.rows = metrics.rows.labels(deployment, version)
        self.latency = metrics.latency.labels(deployment, version)
        self.queue = metrics.queue.labels(deployment, version)
        self.compute = metrics.compute.labels(deployment, version)

    def observe(self, protocol: str, rows: int, total_s: float, queue_s: float, compute_s: float) -> None:
        self.requests[protocol].inc()
        self.rows.inc(rows)
        self.latency.observe(total_s)
        self.queue.observe(queue_s)
        self.compute.observe(compute_s)


class ServingMetrics:
    """Metric objects on a registry of their own, so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mloop_requests", "Inference requests answered", ["deployment", "version", "protocol", "status"], registry=self.registry
        )
        self.rows = Counter("mloop_rows", "Rows scored", ["deployment", "version"], registry=self.registry)
        self.latency = Histogram(
            "mloop_request_latency_seconds", "Time to answer an inference request", ["deployment", "version"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue = Histogram(
            "mloop_queue_seconds", "Time a request waited for its batch", ["deployment", "version"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.compute = Histogram(
            "mloop_compute_seconds", "Model time of the batch that answered a request", ["deployment", "version"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "mloop_batch_rows", "Rows per model call", ["deployment", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry,
        )
        self.errors = Counter("mloop_errors", "Requests answered with an error", ["deployment", "status"], registry=self.registry)
        self.feedback = Counter("mloop_feedback_rows", "Labels received", ["deployment"], registry=self.registry)
        self.fallbacks = Counter(
            "mloop_runtime_fallbacks", "Batches the native model answered because the fast runtime failed",
            ["deployment", "version"], registry=self.registry,
        )
        # Explanations are counted apart: their latency must not move inference's latency monitors.
        self.explained = Counter("mloop_explained_rows", "Rows explained", ["deployment", "version", "method"], registry=self.registry)
        self.explain_latency = Histogram(
            "mloop_explain_seconds", "Time to answer an explain request", ["deployment", "version"],
            buckets=(*_LATENCY_BUCKETS, 5.0, 10.0, 30.0), registry=self.registry,
        )
        self._bound: dict[tuple[str, int], BoundMetrics] = {}

    def bound(self, deployment: str, version: int) -> BoundMetrics:
        key = (deployment, version)
        found = self._bound.get(key)
        if found is None:
            found = self._bound[key] = BoundMetrics(self, deployment, str(version))
        return found
