"""Dynamic batching for one model version: a bounded queue in front of one worker thread.

The worker takes the oldest request, adds whatever else is queued (up to ``max_batch_size`` rows), waits up to
``max_delay_ms`` for more when the batch is not full, drops requests whose deadline passed, and predicts the rest
in one call. Results travel back to the event loop with ``call_soon_threadsafe``.

One exception, for fast models: when nothing is queued or being computed and this version's calls have been
taking less than ``inline_below_ms`` (a moving average), a lone request is scored on the event loop itself.
Handing a 40 µs ONNX call to a thread and back costs more than the call, in the median and in the tail. "Lone"
is checked by yielding to the loop once: if another request queues meanwhile, both go to the worker and batch.
A slow model, a batch in flight or a wait for batch-mates (``max_delay_ms`` > 0) always uses the worker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mloop.errors import DeadlineExceeded, QueueFull
from mloop.store import ServingConfig


@dataclass
class _Item:
    block: Any
    rows: int
    deadline: float
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


def _deliver(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


PredictFn = Callable[[list[Any]], list[Any]]
"""Predicts a batch of request blocks; returns one output per block, or an exception instance for a block that failed."""


class Batcher:
    """Queue + worker thread for one model version. ``submit`` is called from the event loop only."""

    def __init__(self, predict: PredictFn, config: ServingConfig, *, name: str, on_batch: Callable[[int], None] | None = None) -> None:
        self._predict = predict
        self.config = config
        self._on_batch = on_batch
        self._items: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._retire_at: float | None = None
        self._busy = False  # the worker holds a batch (set and cleared under the condition's lock)
        self._claimed = False  # a request is about to be scored inline (set on the event loop only)
        self._ms_per_row: float | None = None  # moving average of compute time per row
        self._thread = threading.Thread(target=self._run, name=f"mloop-batcher-{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._items)

    def inline_for(self, rows: int) -> bool:
        """Whether a request of ``rows`` rows would be scored on the event loop now: the version is idle and, at the
        recent cost per row, the call would take less than ``inline_below_ms`` (so a large request never is)."""
        cfg = self.config
        return (
            not self._items and not self._busy and cfg.max_delay_ms == 0 and self._ms_per_row is not None
            and self._ms_per_row * rows < cfg.inline_below_ms
        )

    def _observe(self, seconds: float, rows: int) -> None:
        per_row = seconds * 1000.0 / max(rows, 1)
        self._ms_per_row = per_row if self._ms_per_row is None else 0.9 * self._ms_per_row + 0.1 * per_row

    async def submit(self, block: Any, rows: int, *, timeout_ms: float | None = None) -> tuple[Any, float, float]:
        """Queue one request (or score it at once, see ``inline_for``); returns (output, queue seconds, compute seconds)."""
        if len(self._items) >= self.config.queue_size:
            raise QueueFull(f"The queue of this deployment is full ({self.config.queue_size} requests); retry shortly.")
        budget = (timeout_ms if timeout_ms is not None else self.config.timeout_ms) / 1000.0
        enqueued = time.perf_counter()
        if self.inline_for(rows) and not self._claimed:
            # Let the other requests this loop iteration brought run up to here first: if any of them queues, this one
            # joins the batch instead (under load the worker batches; only a lone request is scored inline).
            self._claimed = True
            try:
                await asyncio.sleep(0)
            finally:
                self._claimed = False
        if self.inline_for(rows) and not self._claimed:
            started = time.perf_counter()
            if started > enqueued + budget:
                raise DeadlineExceeded("The request's deadline passed before it was computed.")
            output = self._predict([block])[0]
            compute = time.perf_counter() - started
            self._observe(compute, rows)
            if self._on_batch is not None:
                self._on_batch(rows)
            if isinstance(output, BaseException):
                raise output
            return output, 0.0, compute
        loop = asyncio.get_running_loop()
        item = _Item(block, rows, enqueued + budget, loop.create_future(), loop)
        with self._cond:
            self._items.append(item)
            self._cond.notify()
        result: tuple[Any, float, float] = await item.future
        return result

    def retire(self, grace_s: float = 5.0) -> None:
        """Stop after ``grace_s`` seconds once idle: requests that already hold this batcher still complete."""
        with self._cond:
            self._retire_at = time.monotonic() + grace_s
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _take(self) -> list[_Item] | None:
        cfg = self.config
        with self._cond:
            while not self._items:
                if self._retire_at is not None and time.monotonic() >= self._retire_at:
                    return None
                self._cond.wait(timeout=0.5 if self._retire_at is not None else None)
            self._busy = True
            batch = [self._items.popleft()]
            rows = batch[0].rows
            give_up = batch[0].enqueued + cfg.max_delay_ms / 1000.0
            while rows < cfg.max_batch_size:
                if self._items:
                    if rows + self._items[0].rows > cfg.max_batch_size:
                        break
                    item = self._items.popleft()
                    batch.append(item)
                    rows += item.rows
                    continue
                wait = give_up - time.perf_counter()
                if wait <= 0:
                    break
                self._cond.wait(timeout=wait)
            return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                self._busy = False
            batch = self._take()
            if batch is None:
                return
            now = time.perf_counter()
            live = []
            for item in batch:
                if item.deadline < now:
                    item.loop.call_soon_threadsafe(
                        _deliver, item.future, None, DeadlineExceeded("The request's deadline passed while it waited in the queue.")
                    )
                else:
                    live.append(item)
            if not live:
                continue
            started = time.perf_counter()
            try:
                outputs = self._predict([i.block for i in live])
            except BaseException as exc:  # the predict function already isolates per-block failures
                outputs = [exc] * len(live)
            done = time.perf_counter()
            self._observe(done - started, sum(i.rows for i in live))
            if self._on_batch is not None:
                self._on_batch(sum(i.rows for i in live))
            with self._cond:  # idle before the callers wake, so a caller's next request may be scored inline
                self._busy = False
            for item, out in zip(live, outputs, strict=True):
                if isinstance(out, BaseException):
                    item.loop.call_soon_threadsafe(_deliver, item.future, None, out)
                else:
                    item.loop.call_soon_threadsafe(_deliver, item.future, (out, started - item.enqueued, done - started), None)
