"""Latency accounting per deployment and version: percentiles over a sliding sample, queue vs compute
time, batch sizes, throughput and errors. Written from the event loop and the batch worker; thread-safe."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np

_WINDOW = 8192  # latencies kept for percentiles
_RATE_WINDOW_S = 60.0


class _Ring:
    def __init__(self, size: int = _WINDOW) -> None:
        self.values = np.zeros(size)
        self.n = 0

    def add(self, value: float) -> None:
        self.values[self.n % self.values.size] = value
        self.n += 1

    def snapshot(self) -> np.ndarray:
        return self.values[: min(self.n, self.values.size)].copy()


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "p999": None, "mean": None}
    p = np.percentile(values, [50, 95, 99, 99.9])
    return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2]), "p999": float(p[3]), "mean": float(values.mean())}


BatchObserver = Callable[[str, int, int], None]
FallbackObserver = Callable[[str, int], None]


class VersionStats:
    """Counters and latency samples (milliseconds) for one deployment version."""

    def __init__(
        self, deployment: str = "", version: int = 0, on_batch: BatchObserver | None = None, on_fallback: FallbackObserver | None = None
    ) -> None:
        self.deployment, self.version, self._on_batch, self._on_fallback = deployment, version, on_batch, on_fallback
        self._lock = threading.Lock()
        self.total = _Ring()
        self.queue = _Ring()
        self.compute = _Ring()
        self.requests = 0
        self.rows = 0
        self.errors: Counter[str] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self.fallbacks = 0
        self._recent: deque[tuple[float, int]] = deque()

    def request_done(self, total_ms: float, queue_ms: float, compute_ms: float, rows: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.total.add(total_ms)
            self.queue.add(queue_ms)
            self.compute.add(compute_ms)
            self.requests += 1
            self.rows += rows
            self._recent.append((now, rows))
            while self._recent and self._recent[0][0] < now - _RATE_WINDOW_S:
                self._recent.popleft()

    def batch_done(self, size: int) -> None:
        with self._lock:
            self.batch_sizes[size] += 1
        if self._on_batch is not None:
            self._on_batch(self.deployment, self.version, size)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def fallback(self) -> None:
        with self._lock:
            self.fallbacks += 1
        if self._on_fallback is not None:
            self._on_fallback(self.deployment, self.version)

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            recent = [(t, r) for t, r in self._recent if t >= now - _RATE_WINDOW_S]
            span = max(now - recent[0][0], 1e-3) if recent else 0.0
            return {
                "requests": self.requests,
                "rows": self.rows,
                "errors": dict(self.errors),
                "fallbacks": self.fallbacks,
                "latency_ms": _percentiles(self.total.snapshot()),
                "queue_ms": _percentiles(self.queue.snapshot()),
                "compute_ms": _percentiles(self.compute.snapshot()),
                "batch_size": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "requests_per_s": len(recent) / span if span else 0.0,
                "rows_per_s": sum(r for _, r in recent) / span if span else 0.0,
            }


class StatsBook:
    """``VersionStats`` by (deployment, version)."""

    def __init__(self, on_batch: BatchObserver | None = None, on_fallback: FallbackObserver | None = None) -> None:
        self._lock = threading.Lock()
        self._on_batch = on_batch
        self._on_fallback = on_fallback
        self._stats: dict[tuple[str, int], VersionStats] = {}

    def get(self, deployment: str, version: int) -> VersionStats:
        key = (deployment, version)
        stats = self._stats.get(key)
        if stats is None:
            with self._lock:
                stats = self._stats.setdefault(key, VersionStats(deployment, version, self._on_batch, self._on_fallback))
        return stats

    def deployment(self, deployment: str) -> dict[str, Any]:
        return {str(v): s.snapshot() for (d, v), s in sorted(self._stats.items()) if d == deployment}
