from __future__ import annotations

import numpy as np
import pytest

from mloop.errors import InvalidInput
from mloop.rollout import Arm, Canary, Decision, route


def test_routing_is_deterministic_and_proportional() -> None:
    keys = [f"req-{i}" for i in range(20_000)]
    share = np.mean([route(k, 25) is Arm.CANDIDATE for k in keys])
    assert 0.23 < share < 0.27
    assert [route(k, 25) for k in keys[:100]] == [route(k, 25) for k in keys[:100]]
    assert all(route(k, 0) is Arm.BASELINE for k in keys[:100]) and all(route(k, 100) is Arm.CANDIDATE for k in keys[:100])


@pytest.mark.parametrize(
    ("steps", "match"),
    [([1, 5, 120], "step 120 must be within \\(0, 100\\], got steps=\\[1, 5, 120\\]"), ([50, 10, 100], "must increase"), ([10, 50], "end at 100")],
)
def test_bad_steps_are_named(steps: list[float], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        Canary(steps=steps)


def _feed(canary: Canary, rng: np.random.Generator, base: float, cand: float, n: int = 3000) -> None:
    for i in range(n):
        arm = canary.route(f"{canary.percent}-{i}-{rng.random()}")
        canary.observe(arm, rng.normal(cand if arm is Arm.CANDIDATE else base, 0.05))


def test_worse_candidate_is_rolled_back() -> None:
    rng = np.random.default_rng(1)
    canary = Canary(steps=[10, 100], min_samples=100)
    _feed(canary, rng, base=0.20, cand=0.30)
    assert canary.decision() is Decision.ROLLBACK


def test_waits_for_enough_samples_then_promotes_an_equal_candidate() -> None:
    rng = np.random.default_rng(2)
    canary = Canary(steps=[50, 100], min_samples=500)
    _feed(canary, rng, base=0.2, cand=0.2, n=200)
    assert canary.decision() is Decision.WAIT
    _feed(canary, rng, base=0.2, cand=0.2, n=2000)
    assert canary.decision() is Decision.ADVANCE
    assert canary.advance() == 100.0
    assert canary.decision() is Decision.PROMOTE
