"""Shadow traffic: copies scored by a second version off the response path, compared, and dropped (counted) when
the bounded queue is full; the primary's answers never wait for it."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mloop.serving import Rollouts, create_app
from mloop.serving._shadow import ShadowLane
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, auth_headers, toy_frame, train_and_register


def test_a_full_queue_drops_copies_and_counts_them_without_waiting() -> None:
    class SlowBatcher:
        async def submit(self, block: Any, rows: int, *, timeout_ms: float | None = None) -> tuple[Any, float, float]:
            await asyncio.sleep(0.05)
            return np.full(rows, 0.9), 0.0, 0.05

    lane = ShadowLane(SimpleNamespace(version=2, batcher=SlowBatcher()), queue_size=2, sample=1.0)  # type: ignore[arg-type]

    async def burst() -> float:
        start = time.perf_counter()
        for _ in range(10):
            lane.offer(object(), 1, np.array([0.2]), 1.0)
        offered_in = time.perf_counter() - start
        await asyncio.sleep(0.3)  # let the drain compare what it kept
        return offered_in

    offered_in = asyncio.run(burst())
    snapshot = lane.book.snapshot()
    assert offered_in < 0.01  # ten offers, no waiting
    assert snapshot["offered"] == 10 and snapshot["dropped"] == 8 and snapshot["compared_rows"] == 2
    assert snapshot["agreement"] == 0.0 and snapshot["abs_difference"]["p50"] == pytest.approx(0.7)
    assert snapshot["latency_delta_ms"]["p50"] > 40  # the shadow took ~50 ms against the primary's 1 ms


def test_a_shadow_policy_compares_versions_while_the_primary_answers(deployed: Workspace) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    Rollouts(deployed.registry, deployed.store, deployed.bus).start("toy", 2, "shadow")
    rows = toy_frame(3, seed=9)[list(TOY_SPEC.features)]
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    with TestClient(create_app(deployed, poll_interval=0.05, monitor_interval=0), headers=auth_headers(deployed)) as client:
        versions = {client.post("/invocations", json=body).headers["x-model-version"] for _ in range(20)}
        assert versions == {"1"}  # only the primary answers
        deadline = time.time() + 10
        while (client.get("/v2/models/toy/stats").json()["rollout"]["shadow"] or {}).get("compared_rows", 0) < 60 and time.time() < deadline:
            time.sleep(0.05)
        rollout = client.get("/v2/models/toy/stats").json()["rollout"]
    assert rollout["policy"] == "shadow r1" and [a["arm"] for a in rollout["arms"]] == ["primary", "shadow"]
    shadow = rollout["shadow"]
    assert shadow["offered"] == 20 and shadow["dropped"] == 0 and shadow["failed"] == 0 and shadow["compared_rows"] == 60
    assert 0.0 <= shadow["agreement"] <= 1.0 and shadow["abs_difference"]["max"] > 0  # two different models
