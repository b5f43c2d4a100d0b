"""Deterministic routing: a key always lands on the same arm, in proportion to the share."""

from __future__ import annotations

import numpy as np

from mloop.rollout import Arm, route


def test_routing_is_deterministic_and_proportional() -> None:
    keys = [f"req-{i}" for i in range(20_000)]
    share = np.mean([route(k, 25) is Arm.CANDIDATE for k in keys])
    assert 0.23 < share < 0.27
    assert [route(k, 25) for k in keys[:100]] == [route(k, 25) for k in keys[:100]]
    assert all(route(k, 0) is Arm.BASELINE for k in keys[:100]) and all(route(k, 100) is Arm.CANDIDATE for k in keys[:100])
