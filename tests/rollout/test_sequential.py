"""The always-valid test: its formula, its agreement between the scalar and the stream form, and its error rate
under repeated looks (measured here on a small budget; benchmarks/rollout_stats.py measures it at scale)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from mloop.errors import InvalidInput
from mloop.rollout import Action, CanaryPolicy, CanarySpec
from mloop.rollout._sequential import Moments, WorseThan, fixed_z_worse, log_mixture_ratio, stream_log_ratios


@pytest.mark.parametrize(("x", "v", "tau"), [(0.0, 1e-4, 0.01), (0.02, 1e-4, 0.01), (-0.01, 4e-5, 0.02), (0.003, 1e-6, 0.05)])
def test_the_closed_form_is_the_half_normal_mixture_of_likelihood_ratios(x: float, v: float, tau: float) -> None:
    """Λ = ∫ exp((θx − θ²/2)/v) · 2 φ(θ/τ)/τ dθ over θ > 0, integrated numerically."""
    integrand = lambda t: math.exp((t * x - t * t / 2) / v) * 2 * stats.norm.pdf(t / tau) / tau  # noqa: E731
    expected, _ = integrate.quad(integrand, 0, 20 * tau, points=[max(x, 0.0)], limit=200)
    assert float(log_mixture_ratio(x, v, tau)) == pytest.approx(math.log(expected), rel=1e-6, abs=1e-9)


def test_the_server_form_and_the_stream_form_agree() -> None:
    rng = np.random.default_rng(0)
    cand = rng.random(3000) < 0.3
    errors = (rng.random(3000) < np.where(cand, 0.08, 0.05)).astype(float)
    stream = stream_log_ratios(cand, errors, tau=0.02, min_samples=50)
    test = WorseThan("errors", alpha=0.05, tau=0.02, min_samples=50)
    for i, (c, e) in enumerate(zip(cand, errors, strict=True)):
        test.observe("candidate" if c else "baseline", float(e))
        if i in (10, 400, 1999, 2999):
            got = test.evidence().log_ratio
            assert (got == stream[i] == -math.inf) or got == pytest.approx(stream[i], rel=1e-12)


def test_looking_after_every_outcome_keeps_false_rollbacks_under_alpha_where_the_naive_test_does_not() -> None:
    rng = np.random.default_rng(11)
    runs, n, alpha = 300, 5000, 0.05
    sequential = naive = 0
    for _ in range(runs):
        cand = rng.random(n) < 0.2
        errors = (rng.random(n) < 0.05).astype(float)
        sequential += bool((stream_log_ratios(cand, errors, tau=0.02, min_samples=100) >= math.log(1 / alpha)).any())
        base, canary = Moments(), Moments()
        fired = False
        for i in range(n):  # the naive judge, checked after every outcome once both arms have 100
            (canary if cand[i] else base).add(errors[i])
            if i % 10 == 0 and base.n >= 100 and canary.n >= 100 and fixed_z_worse(base, canary, alpha=alpha):
                fired = True
                break
        naive += fired
    assert sequential / runs <= 0.05
    assert naive / runs >= 0.12


def test_one_error_in_the_first_requests_does_not_decide_and_a_dead_candidate_does() -> None:
    test = WorseThan("errors", alpha=0.05, tau=0.02, min_samples=100)
    for i in range(5000):
        test.observe("baseline", float(i % 100 == 0))  # 1 % errors
    test.observe("candidate", 1.0)
    assert not test.evidence().worse  # too few candidate outcomes to say anything
    for _ in range(99):
        test.observe("candidate", 0.0)
    assert not test.evidence().worse  # 1 error in 100 at a 1 % baseline
    dead = WorseThan("errors", alpha=0.05, tau=0.02, min_samples=100)
    for i in range(5000):
        dead.observe("baseline", float(i % 100 == 0))
    for _ in range(100):
        dead.observe("candidate", 1.0)
    evidence = dead.evidence()
    assert evidence.worse and evidence.candidate == 1.0 and evidence.log_ratio > evidence.threshold


def test_bad_settings_are_named() -> None:
    for kwargs, field in [({"alpha": 0.0}, "alpha"), ({"tau": -1.0}, "tau"), ({"kind": "median"}, "kind"), ({"min_samples": 1}, "min_samples")]:
        with pytest.raises(InvalidInput) as info:
            WorseThan("errors", **{"alpha": 0.05, "tau": 0.02, **kwargs})  # type: ignore[arg-type]
        assert info.value.field == field


def test_the_scalar_and_the_array_forms_of_the_ratio_agree() -> None:
    from mloop.rollout._sequential import log_ratio

    rng = np.random.default_rng(2)
    for x, v, tau in zip(rng.normal(0, 0.05, 500), rng.uniform(1e-7, 1e-2, 500), rng.uniform(0.001, 0.2, 500), strict=True):
        assert log_ratio(float(x), float(v), float(tau)) == pytest.approx(float(log_mixture_ratio(x, v, tau)), rel=1e-9, abs=1e-9)
    assert log_ratio(-1.0, 1e-8, 0.02) == pytest.approx(float(log_mixture_ratio(-1.0, 1e-8, 0.02)), rel=1e-6)  # deep in the tail
    assert log_ratio(0.1, 0.0, 0.02) == -math.inf


def test_a_candidate_that_never_fails_beside_a_baseline_that_never_fails_can_be_promoted() -> None:
    policy = CanaryPolicy(CanarySpec(baseline="1", candidate="2", steps=[50, 100], min_samples=100, min_seconds=0))
    decisions = []
    for i in range(5000):
        arm, _ = policy.route(f"k{i}")
        policy.observe(arm, "errors", 0.0)
        if i % 100 == 99:
            decisions.append(policy.decide(now=0.0).action)
    assert Action.PROMOTE in decisions and Action.ROLLBACK not in decisions
    first = decisions.index(Action.PROMOTE)
    assert 300 <= 100 * (first + 1) <= 3000  # shown within tolerance after some hundreds of outcomes, not at once


def test_a_shift_of_the_predictions_either_way_is_found_and_no_shift_is_not() -> None:
    rng = np.random.default_rng(3)
    for offset, expected in [(0.05, True), (-0.05, True), (0.0, False)]:
        test = WorseThan("score", alpha=0.05, tau=0.02, min_samples=100, kind="shift", tolerance=0.02)
        for _ in range(5000):
            test.observe("baseline", rng.normal(0.4, 0.1))
            test.observe("candidate", rng.normal(0.4 + offset, 0.1))
        evidence = test.evidence()
        assert evidence.worse is expected, (offset, evidence)
        assert evidence.threshold == pytest.approx(np.log(2 / 0.05))  # two one-sided tests at α/2
        assert evidence.no_worse is (not expected)
