"""Traffic policies as validated data, and the canary's decisions from its evidence."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from mloop.errors import InvalidInput
from mloop.rollout import Action, CanaryPolicy, CanarySpec, build_policy, parse_policy, simulate_canary
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [1, 250, 100]}, "steps", "got 250 in [1, 250, 100]"),
        ({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [50, 10, 100]}, "steps", "must increase"),
        ({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [100]}, "steps", "at least one share below it"),
        ({"policy": "canary", "baseline": "1", "candidate": "1"}, "policy", "must differ from the baseline"),
        ({"policy": "canary", "baseline": "1", "candidate": "2", "alpha": 0.7}, "alpha", "less than 0.5"),
        ({"policy": "canary", "baseline": "1", "candidate": "2", "metrics": {"errors": {"tau": -1}}}, "metrics.errors.tau", "greater than 0"),
        ({"policy": "canary", "baseline": "1", "candidate": "2", "percent": 250}, "percent", "Extra inputs are not permitted"),
        ({"policy": "blue-green", "active": "3", "standby": "3"}, "policy", "two versions"),
        ({"policy": "rainbow"}, "policy", "policy must be one of canary, blue-green, bandit, shadow, got 'rainbow'"),
    ],
)
def test_a_bad_policy_is_refused_when_it_is_set_naming_the_field(document: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_policy(document)
    assert info.value.field == field and message in info.value.message


def _feed(policy: CanaryPolicy, rng: np.random.Generator, p_base: float, p_cand: float, n: int) -> None:
    for i in range(n):
        arm, probability = policy.route(f"key-{rng.integers(1 << 62)}-{i}")
        assert probability == policy.weights()[arm]
        policy.observe(arm, "errors", float(rng.random() < (p_cand if arm == "candidate" else p_base)))


def test_a_good_candidate_advances_stage_by_stage_and_is_promoted_once_shown_no_worse() -> None:
    spec = parse_policy({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [20, 50, 100], "min_samples": 200, "min_seconds": 30})
    assert isinstance(spec, CanarySpec)
    policy = CanaryPolicy(spec, started=0.0)
    rng = np.random.default_rng(0)
    _feed(policy, rng, 0.05, 0.05, 2000)
    assert policy.decide(now=10.0).action is Action.WAIT  # samples, but not yet the stage's time
    advance = policy.decide(now=31.0)
    assert advance.action is Action.ADVANCE and advance.share == 20.0
    assert policy.decide(now=31.0) == advance  # deciding changes nothing
    policy.apply(advance, now=31.0)
    assert policy.share == 50.0 and policy.stage_candidate == 0
    decisions = []
    while policy.done is None and len(decisions) < 200:
        _feed(policy, rng, 0.05, 0.05, 500)
        decision = policy.decide(now=1e6)
        decisions.append(decision)
        policy.apply(decision, now=1e6)
    final = decisions[-1]
    assert final.action is Action.PROMOTE and policy.share == 100.0
    errors = final.evidence[0]
    assert errors.no_worse and errors.upper < errors.tolerance == 0.01 and not errors.worse  # the statistic behind it
    assert any(d.action is Action.WAIT and "not yet shown to be no worse" in d.reason for d in decisions)
    json.dumps(final.to_dict())  # the audit record is plain JSON


def test_a_worse_candidate_is_rolled_back_with_the_statistic_that_decided() -> None:
    spec = parse_policy({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [50, 100], "min_samples": 10_000})
    policy = build_policy(spec)
    assert isinstance(policy, CanaryPolicy)
    _feed(policy, np.random.default_rng(1), 0.05, 0.12, 4000)
    decision = policy.decide(now=0.0)
    assert decision.action is Action.ROLLBACK and "errors (log Λ" in decision.reason
    assert decision.evidence[0].log_ratio >= decision.evidence[0].threshold == pytest.approx(math.log(20))
    policy.apply(decision, now=0.0)
    assert policy.share == 0.0 and policy.route("any")[0] == "baseline"


def test_a_dead_candidate_rolls_back_within_a_few_dozen_of_its_requests() -> None:
    spec = parse_policy({"policy": "canary", "baseline": "1", "candidate": "2"})
    policy = CanaryPolicy(spec)  # type: ignore[arg-type]
    seen = 0
    for i in range(100_000):
        arm, _ = policy.route(f"r{i}")
        policy.observe(arm, "errors", 1.0 if arm == "candidate" else float(i % 20 == 0))
        seen += arm == "candidate"
        if policy.decide(now=0.0).action is Action.ROLLBACK:
            break
    assert seen == 20 and "last 20 outcomes were all errors" in policy.decide(now=0.0).reason  # at 1 %: ~2,000 requests


def test_one_error_at_one_percent_does_not_roll_back() -> None:
    policy = CanaryPolicy(parse_policy({"policy": "canary", "baseline": "1", "candidate": "2"}))  # type: ignore[arg-type]
    first = True
    for i in range(20_000):
        arm, _ = policy.route(f"r{i}")
        value = 1.0 if arm == "candidate" and first else float(arm == "baseline" and i % 200 == 0)
        first = first and arm != "candidate"
        policy.observe(arm, "errors", value)
    assert policy.decide(now=1e9).action is not Action.ROLLBACK


@pytest.mark.slow
def test_the_simulator_measures_both_judges_on_the_same_streams() -> None:
    equal = simulate_canary(baseline_error=0.05, candidate_error=0.05, runs=120, seed=3)
    assert equal["false_rollback_rate"] == equal["rollback_rate"] <= 0.06
    assert equal["naive_rollback_rate"] >= 0.15 and equal["promote_rate"] >= 0.85
    worse = simulate_canary(baseline_error=0.05, candidate_error=0.08, runs=60, seed=3)
    assert worse["false_rollback_rate"] is None and worse["rollback_rate"] >= 0.95 and worse["median_requests_to_decision"] > 0
    assert simulate_canary(baseline_error=0.05, candidate_error=0.05, runs=40, seed=9) == simulate_canary(
        baseline_error=0.05, candidate_error=0.05, runs=40, seed=9)


def test_simulate_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["rollout", "simulate", "--policy", "canary", "--baseline-error", "0.05", "--candidate-error", "0.07",
                            "--runs", "50", "--seed", "1", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and {"policy", "runs", "rollback_rate", "false_rollback_rate", "naive_rollback_rate", "median_requests_to_decision"} <= set(data)
    assert data["policy"] == "canary" and data["runs"] == 50 and data["false_rollback_rate"] is None
    for args, message in [
        (["--policy", "bandit"], "--policy: simulate plans canary rollouts, got 'bandit'"),
        (["--steps", "1,500"], "got 500 in [1, 500]"),
        (["--steps", "a,b"], "--steps takes shares separated by commas"),
        (["--candidate-error", "1.5"], "candidate_error must be a rate within [0, 1], got 1.5"),
        (["--runs", "0"], "runs must be within [1, 1000000], got 0"),
    ]:
        code, _, err = run_cli(["rollout", "simulate", "--json", *args], capsys)
        assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"policy": "bandit", "arms": ["1"]}, "arms", "at least 2 items"),
        ({"policy": "bandit", "arms": ["1", "1"]}, "arms", "arm '1' is listed more than once"),
        ({"policy": "bandit", "arms": ["1", "2", "3"], "floor": 0.4}, "policy", "exceeds all of the traffic"),
        ({"policy": "bandit", "arms": ["1", "2"], "algorithm": "exp3"}, "algorithm", "'thompson', 'ucb1' or 'epsilon_greedy'"),
    ],
)
def test_a_bad_bandit_is_refused_naming_the_field(document: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_policy(document)
    assert info.value.field == field and message in info.value.message


@pytest.mark.parametrize("algorithm", ["thompson", "ucb1", "epsilon_greedy"])
def test_bandits_move_traffic_to_the_better_arm_keep_the_floor_and_survive_a_restart(algorithm: str) -> None:
    from mloop.rollout import BanditPolicy

    spec = parse_policy({"policy": "bandit", "arms": ["a", "b", "c"], "algorithm": algorithm, "floor": 0.05})
    policy = build_policy(spec)
    assert isinstance(policy, BanditPolicy)
    rng = np.random.default_rng(4)
    rates = {"a": 0.05, "b": 0.06, "c": 0.12}
    for _ in range(60):  # rewards arrive in batches; the driver reweights after each
        for _ in range(200):
            arm, probability = policy.route(f"k{rng.integers(1 << 62)}")
            assert probability == policy.weights()[arm]
            policy.observe(arm, "reward", float(rng.random() < rates[arm]))
        policy.apply(policy.decide(now=0.0), now=0.0)
    weights = policy.weights()
    assert max(weights, key=weights.__getitem__) == "c" and min(weights.values()) >= 0.05 - 1e-12
    assert sum(weights.values()) == pytest.approx(1.0)
    again = build_policy(spec)
    assert isinstance(again, BanditPolicy)
    again.restore(json.loads(json.dumps(policy.state())))
    assert again.weights() == weights and again.decide(now=1.0) == policy.decide(now=1.0)
    keys = [f"sticky-{i}" for i in range(50)]
    assert [again.route(k) for k in keys] == [policy.route(k) for k in keys]


def test_a_canary_carries_on_after_a_restart_from_its_stored_state() -> None:
    spec = parse_policy({"policy": "canary", "baseline": "1", "candidate": "2", "steps": [10, 50, 100], "min_samples": 100, "min_seconds": 0})
    policy = build_policy(spec)
    assert isinstance(policy, CanaryPolicy)
    rng = np.random.default_rng(6)
    _feed(policy, rng, 0.05, 0.05, 3000)
    policy.apply(policy.decide(now=5.0), now=5.0)
    _feed(policy, rng, 0.05, 0.05, 500)
    again = build_policy(spec, state=json.loads(json.dumps(policy.state())))
    assert again.weights() == policy.weights() == {"baseline": 0.5, "candidate": 0.5}
    assert again.decide(now=9.0) == policy.decide(now=9.0)
