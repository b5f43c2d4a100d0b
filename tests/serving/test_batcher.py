from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mloop.errors import DeadlineExceeded, InvalidInput, QueueFull
from mloop.serving._batcher import Batcher
from mloop.store import ServingConfig


class _Model:
    """Sums each row; sleeps per call so that requests pile up; fails on rows holding -1."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, blocks: list[np.ndarray]) -> list[object]:
        self.gate.wait(10)
        time.sleep(self.delay)
        self.calls.append(sum(len(b) for b in blocks))
        return [InvalidInput("bad row") if (b == -1).any() else b.sum(axis=1) for b in blocks]


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_requests_that_wait_together_are_batched_up_to_the_limit() -> None:
    model = _Model()
    model.gate.clear()
    batcher = Batcher(model, ServingConfig(max_batch_size=4), name="t")

    async def main() -> list[object]:
        tasks = [asyncio.create_task(batcher.submit(np.full((1, 2), i, float), 1)) for i in range(10)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return [r[0] for r in await asyncio.gather(*tasks)]

    results = _run(main())
    assert [float(r[0]) for r in results] == [2.0 * i for i in range(10)]
    assert max(model.calls) <= 4 and sum(model.calls) == 10 and len(model.calls) < 10
    batcher.retire(0)
    batcher.join(5)


def test_one_bad_request_fails_alone() -> None:
    batcher = Batcher(_Model(), ServingConfig(), name="t")

    async def main() -> list[object]:
        blocks = [np.ones((1, 2)), np.full((1, 2), -1.0), np.ones((2, 2))]
        return await asyncio.gather(*(batcher.submit(b, len(b)) for b in blocks), return_exceptions=True)

    good, bad, also_good = _run(main())
    assert isinstance(bad, InvalidInput)
    assert good[0].tolist() == [2.0] and also_good[0].tolist() == [2.0, 2.0]  # type: ignore[index]


def test_full_queue_answers_at_once() -> None:
    model = _Model()
    model.gate.clear()
    batcher = Batcher(model, ServingConfig(queue_size=2, max_batch_size=1), name="t")

    async def main() -> list[object]:
        first = asyncio.create_task(batcher.submit(np.ones((1, 1)), 1))
        await asyncio.sleep(0.05)  # the worker holds the first one; two more fill the queue
        queued = [asyncio.create_task(batcher.submit(np.ones((1, 1)), 1)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="queue of this deployment is full") as info:
            await batcher.submit(np.ones((1, 1)), 1)
        assert info.value.status_code == 429 and info.value.retry_after >= 1
        model.gate.set()
        return await asyncio.gather(first, *queued)

    assert len(_run(main())) == 3


def test_expired_requests_are_never_computed() -> None:
    model = _Model(delay=0.1)
    batcher = Batcher(model, ServingConfig(max_batch_size=1), name="t")

    async def main() -> list[object]:
        slow = asyncio.create_task(batcher.submit(np.ones((1, 1)), 1))
        await asyncio.sleep(0.01)
        late = asyncio.create_task(batcher.submit(np.full((1, 1), 7.0), 1, timeout_ms=20))
        return await asyncio.gather(slow, late, return_exceptions=True)

    _, late = _run(main())
    assert isinstance(late, DeadlineExceeded)
    assert model.calls == [1]


def test_max_delay_waits_for_batch_mates() -> None:
    model = _Model()
    batcher = Batcher(model, ServingConfig(max_batch_size=8, max_delay_ms=100), name="t")

    async def main() -> None:
        first = asyncio.create_task(batcher.submit(np.ones((1, 1)), 1))
        await asyncio.sleep(0.02)
        await asyncio.gather(first, *(batcher.submit(np.ones((1, 1)), 1) for _ in range(3)))

    _run(main())
    assert model.calls == [4]


def test_retired_batcher_still_finishes_what_it_holds() -> None:
    model = _Model(delay=0.02)
    batcher = Batcher(model, ServingConfig(max_batch_size=1), name="t")

    async def main() -> list[object]:
        tasks = [asyncio.create_task(batcher.submit(np.ones((1, 1)), 1)) for _ in range(5)]
        await asyncio.sleep(0)
        batcher.retire(grace_s=0.0)
        return await asyncio.gather(*tasks)

    assert len(_run(main())) == 5
    batcher.join(5)


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [("max_batch_size", 0, "max_batch_size must be within"), ("queue_size", 0, "queue_size"), ("timeout_ms", 0, "timeout_ms"),
     ("max_delay_ms", -1, "max_delay_ms")],
)
def test_serving_settings_are_validated(setting: str, value: float, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        ServingConfig(**{setting: value})
    with pytest.raises(InvalidInput, match="Unknown serving setting 'batch'. Valid:"):
        ServingConfig.from_dict({"batch": 3})


def _thread_of_each_call(batcher: Batcher, model: _Model) -> list[str]:
    seen: list[str] = []
    real = batcher._predict

    def spy(blocks):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return real(blocks)

    batcher._predict = spy
    return seen


def test_an_idle_fast_version_scores_on_the_event_loop() -> None:
    """After a first call shows the model is fast, an idle version scores requests inline (no thread handoff);
    the queue time is then zero."""
    model = _Model()
    batcher = Batcher(model, ServingConfig(), name="t")
    seen = _thread_of_each_call(batcher, model)

    async def main() -> list[tuple[object, float, float]]:
        return [await batcher.submit(np.ones((1, 2)), 1) for _ in range(3)]

    results = _run(main())
    assert seen[0] == "mloop-batcher-t" and seen[1:] == ["MainThread", "MainThread"]
    assert [r[1] for r in results[1:]] == [0.0, 0.0] and all(float(r[0][0]) == 2.0 for r in results)
    batcher.retire(0)
    batcher.join(5)


@pytest.mark.parametrize(
    ("config", "delay"),
    [(ServingConfig(), 0.005), (ServingConfig(inline_below_ms=0), 0.0), (ServingConfig(max_delay_ms=1), 0.0)],
    ids=["slow-model", "inline-off", "waits-for-batch-mates"],
)
def test_slow_models_and_batching_configs_always_use_the_worker(config: ServingConfig, delay: float) -> None:
    model = _Model(delay=delay)
    batcher = Batcher(model, config, name="t")
    seen = _thread_of_each_call(batcher, model)

    async def main() -> None:
        for _ in range(4):
            await batcher.submit(np.ones((1, 2)), 1)

    _run(main())
    assert seen == ["mloop-batcher-t"] * 4
    batcher.retire(0)
    batcher.join(5)


def test_requests_queue_behind_a_batch_in_flight() -> None:
    model = _Model()
    model.gate.clear()
    batcher = Batcher(model, ServingConfig(), name="t")
    seen = _thread_of_each_call(batcher, model)

    async def main() -> None:
        first = asyncio.create_task(batcher.submit(np.ones((1, 2)), 1))  # the worker takes it and waits at the gate
        await asyncio.sleep(0.05)
        batcher._ms_per_row = 0.001  # as if the model had been fast so far: only the batch in flight keeps others off the loop
        others = [asyncio.create_task(batcher.submit(np.ones((1, 2)), 1)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert batcher.pending == 3
        model.gate.set()
        await asyncio.gather(first, *others)

    _run(main())
    assert set(seen) == {"mloop-batcher-t"} and sum(model.calls) == 4
    batcher.retire(0)
    batcher.join(5)


def test_an_inline_request_past_its_deadline_is_not_computed() -> None:
    model = _Model()
    batcher = Batcher(model, ServingConfig(), name="t")

    async def main() -> None:
        await batcher.submit(np.ones((1, 2)), 1)
        assert batcher.inline_for(1)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(np.ones((1, 2)), 1, timeout_ms=1e-9)

    _run(main())
    assert model.calls == [1]
    batcher.retire(0)
    batcher.join(5)


def test_a_large_request_never_runs_on_the_event_loop() -> None:
    """The inline rule estimates the call from the cost per row: a request big enough to block the loop for
    longer than ``inline_below_ms`` goes to the worker even when the version is idle and fast."""
    model = _Model()
    batcher = Batcher(model, ServingConfig(max_batch_size=100_000), name="t")
    seen = _thread_of_each_call(batcher, model)

    async def main() -> None:
        await batcher.submit(np.ones((1, 2)), 1)
        for _ in range(1000):  # the worker marks itself idle just after it hands back the answer
            if not (batcher._busy or batcher._items):
                break
            await asyncio.sleep(0.001)
        batcher._ms_per_row = 0.01  # 10 µs a row: 50 rows take 0.5 ms, 500 rows 5 ms
        assert batcher.inline_for(50) and not batcher.inline_for(500)
        await batcher.submit(np.ones((50, 2)), 50)
        batcher._ms_per_row = 0.01
        await batcher.submit(np.ones((500, 2)), 500)

    _run(main())
    assert seen == ["mloop-batcher-t", "MainThread", "mloop-batcher-t"]
    batcher.retire(0)
    batcher.join(5)
