"""The offline gate: DeLong's paired AUC test agrees with scikit-learn and with the bootstrap, its decisions follow
from its statistic, and between two equally good models it passes about α of the time where "challenger AUC ≥
champion AUC − 0.002" passes half the time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mloop.automation import GateSpec, delong, judge


def _pair(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated scorers; the challenger's signal is ``lift`` stronger."""
    y = (rng.random(n) < 0.3).astype(float)
    shared = rng.normal(size=n)
    champion = y * 0.8 + shared + rng.normal(scale=0.7, size=n)
    challenger = y * (0.8 + lift) + shared + rng.normal(scale=0.7, size=n)
    return y, champion, challenger


@pytest.mark.slow
def test_delong_matches_scikit_learn_and_the_bootstrap() -> None:
    rng = np.random.default_rng(0)
    y, a, b = _pair(rng, 2000, 0.1)
    auc_a, auc_b, variance = delong(y, a, b)
    assert auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12) and auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    boot = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        boot.append(roc_auc_score(y[i], b[i]) - roc_auc_score(y[i], a[i]))
    assert variance == pytest.approx(np.var(boot), rel=0.2)


def test_ties_count_half() -> None:
    auc_a, auc_b, _ = delong([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5], [0.1, 0.5, 0.5, 0.9])
    assert auc_a == 0.5 and auc_b == pytest.approx(roc_auc_score([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]))


def test_the_gate_decides_from_its_statistic() -> None:
    rng = np.random.default_rng(1)
    y, a, b = _pair(rng, 4000, 0.4)
    better = judge(GateSpec(), y, a, b)
    assert better.passed and better.lower > 0 and better.challenger > better.champion
    assert better.z == pytest.approx(better.difference / better.std_error)
    worse = judge(GateSpec(), y, b, a)  # the roles swapped: the challenger is the weaker one
    assert not worse.passed and worse.difference < 0 and "not shown better" in worse.reason
    floored = judge(GateSpec(floor=0.99), y, a, b)
    assert not floored.passed and "under the floor 0.99" in floored.reason
    few = judge(GateSpec(min_rows=5000), y, a, b)
    assert not few.passed and "only 4000 labelled holdout rows" in few.reason
    loss = judge(GateSpec(metric="loss"), y, 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-(b - 0.2))))
    assert loss.metric == "loss" and loss.difference == pytest.approx(loss.champion - loss.challenger)
    lenient = judge(GateSpec(min_effect=-0.05), y, b, a)  # allowed to be shown at most 0.05 worse
    assert lenient.passed == (lenient.lower > -0.05)


def test_between_equal_models_the_gate_passes_about_alpha_and_the_naive_rule_half() -> None:
    rng = np.random.default_rng(2)
    passed = naive = 0
    runs = 300
    for _ in range(runs):
        y, a, b = _pair(rng, 1500, 0.0)
        result = judge(GateSpec(alpha=0.05), y, a, b)
        passed += result.passed
        naive += result.challenger >= result.champion - 0.002
    assert passed / runs <= 0.09  # α = 5 %, with room for 300 runs' noise
    assert naive / runs >= 0.4


def test_bad_holdouts_are_named() -> None:
    from mloop.errors import InvalidInput

    with pytest.raises(InvalidInput, match="at least two rows of each class"):
        delong([1, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InvalidInput, match="same length"):
        judge(GateSpec(), [0, 1], [0.1], [0.2, 0.3])


def test_a_drop_of_auc_between_two_samples_is_found_and_no_drop_is_not() -> None:
    from mloop.automation._gate import auc_drop, auc_with_variance

    rng = np.random.default_rng(4)
    y, a, _ = _pair(rng, 3000, 0.0)
    value, variance = auc_with_variance(y, a)
    boot = [roc_auc_score(y[i], a[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(400))]
    assert value == pytest.approx(roc_auc_score(y, a)) and variance == pytest.approx(np.var(boot), rel=0.25)
    y2, a2, _ = _pair(rng, 3000, 0.0)
    assert not auc_drop((y, a), (y2, a2)).dropped  # the same model on a new sample
    worse = auc_drop((y, a), (y2, a2 + rng.normal(scale=2.0, size=3000)))  # the scores lost most of their signal
    assert worse.dropped and worse.z > 1.645 and worse.current < worse.reference
    false_alarms = sum(auc_drop(_pair(rng, 1000, 0.0)[:2], _pair(rng, 1000, 0.0)[:2]).dropped for _ in range(200))
    assert false_alarms / 200 <= 0.09
