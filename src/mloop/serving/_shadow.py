"""Shadow traffic: a copy of live requests scored by a second version, off the response path.

The primary answers as if no shadow existed: a copy goes into a bounded queue with ``put_nowait`` (a full queue
drops the copy and counts it, it never waits), and one task on the event loop scores the copies through the
shadow version's own batch queue. What is compared: whether both versions agree on the predicted class (scores
either side of 0.5), how far the outputs are apart, and how much slower or faster the shadow answered.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mloop.serving._hub import ServedVersion

log = logging.getLogger("mloop.serving")
_KEEP = 10_000  # the last differences and latency deltas kept for the quantiles


@dataclass
class ShadowBook:
    """What the comparison found so far (bounded memory: the last ``_KEEP`` differences)."""

    offered: int = 0
    dropped: int = 0
    compared_rows: int = 0
    agreed_rows: int = 0
    failed: int = 0
    differences: deque[float] = field(default_factory=lambda: deque(maxlen=_KEEP))
    latency_deltas_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_KEEP))

    def compare(self, primary: np.ndarray, shadow: np.ndarray, primary_ms: float, shadow_ms: float) -> None:
        p = np.asarray(primary, dtype=float).reshape(len(primary), -1)[:, -1]
        s = np.asarray(shadow, dtype=float).reshape(len(shadow), -1)[:, -1]
        self.compared_rows += len(p)
        self.agreed_rows += int(((p >= 0.5) == (s >= 0.5)).sum())
        self.differences.extend(np.abs(p - s).tolist())
        self.latency_deltas_ms.append(shadow_ms - primary_ms)

    def snapshot(self) -> dict[str, Any]:
        def quantiles(values: deque[float]) -> dict[str, float] | None:
            if not values:
                return None
            arr = np.fromiter(values, dtype=float)
            return {q: float(np.quantile(arr, float(q[1:]) / 100)) for q in ("p50", "p90", "p99")} | {"max": float(arr.max())}

        return {
            "offered": self.offered, "dropped": self.dropped, "failed": self.failed, "compared_rows": self.compared_rows,
            "agreement": self.agreed_rows / self.compared_rows if self.compared_rows else None,
            "abs_difference": quantiles(self.differences), "latency_delta_ms": quantiles(self.latency_deltas_ms),
        }


class ShadowLane:
    """The bounded queue in front of the shadow version and the task that drains it."""

    def __init__(self, version: ServedVersion, *, queue_size: int, sample: float) -> None:
        self.version = version
        self.sample = sample
        self.queue_size = queue_size
        self.book = ShadowBook()
        self._queue: asyncio.Queue[tuple[Any, int, np.ndarray, float]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def offer(self, block: Any, rows: int, primary: np.ndarray, primary_ms: float) -> None:
        """Hand a copy over, or drop it: never waits. Called on the event loop after the primary answered."""
        if self.sample < 1.0 and random.random() >= self.sample:
            return
        if self._queue is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._task = self._loop.create_task(self._drain(), name=f"mloop-shadow-v{self.version.version}")
        self.book.offered += 1
        try:
            self._queue.put_nowait((block, rows, primary, primary_ms))
        except asyncio.QueueFull:
            self.book.dropped += 1

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            block, rows, primary, primary_ms = await self._queue.get()
            start = time.perf_counter()
            try:
                output, _, _ = await self.version.batcher.submit(block, rows, timeout_ms=None)
            except Exception as exc:  # noqa: BLE001 - a failing shadow is counted, it never reaches a client
                self.book.failed += 1
                log.debug("shadow v%s failed: %s", self.version.version, exc)
                continue
            self.book.compare(primary, np.asarray(output), primary_ms, (time.perf_counter() - start) * 1000)

    def close(self) -> None:
        """Stop the drain (the hub swapped this lane out; queued copies are dropped). Safe from any thread."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
