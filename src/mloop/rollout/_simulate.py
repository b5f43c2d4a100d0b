"""Plan a rollout before running it: the very policy the server runs, fed simulated outcomes.

Each run streams requests in batches; every request draws one routing number and one outcome per arm (common random
numbers), so mloop's canary and the naive judge it is compared with see the same traffic. The naive judge keeps the
same stages but decides each look with a fixed-sample z-test at α, uncorrected: what a canary judge that repeats a
fixed test at every interval does.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from mloop.errors import InvalidInput
from mloop.rollout._canary_policy import Action, CanaryPolicy, CanarySpec, PolicyDecision
from mloop.rollout._sequential import fixed_z_worse


class _NaiveCanary(CanaryPolicy):
    """The same stages, judged by a fixed-sample one-sided z-test at α on every look (no correction)."""

    def decide(self, now: float) -> PolicyDecision:
        for name, test in self.tests.items():
            base, cand = test.arms["baseline"], test.arms["candidate"]
            if base.n >= test.min_samples and cand.n >= test.min_samples and fixed_z_worse(
                base, cand, alpha=self.spec.alpha, kind=test.kind, margin=test.margin
            ):
                return PolicyDecision(Action.ROLLBACK, self.stage, self.share, f"z-test says {name} is worse")
        return super().decide(now)


def _run(policies: list[CanaryPolicy], rng: np.random.Generator, p_base: float, p_cand: float, requests: int, batch: int,
         per_second: float) -> list[tuple[Action, int]]:
    """Stream ``requests`` to every policy (same draws); each policy's (final action, requests at its decision)."""
    ends: list[tuple[Action, int] | None] = [None] * len(policies)
    seen = 0
    while seen < requests and any(e is None for e in ends):
        size = min(batch, requests - seen)
        u = rng.random(size)
        errors = {"baseline": rng.random(size) < p_base, "candidate": rng.random(size) < p_cand}
        seen += size
        now = seen / per_second
        for i, policy in enumerate(policies):
            if ends[i] is not None:
                continue
            on_candidate = u < policy.share / 100.0
            for arm, mask in (("candidate", on_candidate), ("baseline", ~on_candidate)):
                n = int(mask.sum())
                bad = int(errors[arm][mask].sum())
                if n - bad:
                    policy.observe(arm, "errors", 0.0, n - bad)
                if bad:
                    policy.observe(arm, "errors", 1.0, bad)
            decision = policy.decide(now)
            if decision.action is not Action.WAIT:
                policy.apply(decision, now)
                if decision.action in (Action.PROMOTE, Action.ROLLBACK):
                    ends[i] = (decision.action, seen)
    return [e if e is not None else (Action.WAIT, seen) for e in ends]


def simulate_canary(*, baseline_error: float, candidate_error: float, runs: int = 1000, requests: int = 50_000,
                    seed: int = 0, steps: list[float] | None = None, min_samples: int = 100, alpha: float = 0.05,
                    batch: int | None = None, per_second: float = 100.0) -> dict[str, Any]:
    """Roll out a candidate with ``candidate_error`` beside a baseline with ``baseline_error``, ``runs`` times: how
    often it is rolled back (falsely, when the rates are equal), by mloop's canary and by the naive judge, and how
    many requests a decision takes. ``min_seconds`` does not apply: the simulator has no clock but the requests."""
    for name, value in (("baseline_error", baseline_error), ("candidate_error", candidate_error)):
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"{name} must be a rate within [0, 1], got {value}.", field=name)
    if not 1 <= runs <= 1_000_000:
        raise InvalidInput(f"runs must be within [1, 1000000], got {runs}.", field="runs")
    if not 100 <= requests <= 10_000_000:
        raise InvalidInput(f"requests must be within [100, 10000000], got {requests}.", field="requests")
    from mloop.rollout._specs import parse_policy

    spec = parse_policy({"policy": "canary", "baseline": "baseline", "candidate": "candidate", "min_samples": min_samples,
                         "min_seconds": 0, "alpha": alpha, **({"steps": steps} if steps is not None else {})})
    assert isinstance(spec, CanarySpec)
    batch = batch or max(10, requests // 1000)  # a look every 10 requests up to 10k, then a thousand looks a run
    rng = np.random.default_rng(seed)
    ours, naive = [], []
    for _ in range(runs):
        mine, theirs = _run([CanaryPolicy(spec), _NaiveCanary(spec)], rng, baseline_error, candidate_error, requests, batch, per_second)
        ours.append(mine)
        naive.append(theirs)
    rollbacks = sum(a is Action.ROLLBACK for a, _ in ours) / runs
    decided = [n for a, n in ours if a is not Action.WAIT]
    return {
        "policy": "canary",
        "runs": runs,
        "requests": requests,
        "seed": seed,
        "baseline_error": baseline_error,
        "candidate_error": candidate_error,
        "steps": list(spec.steps),
        "alpha": alpha,
        "rollback_rate": rollbacks,
        "promote_rate": sum(a is Action.PROMOTE for a, _ in ours) / runs,
        "undecided_rate": sum(a is Action.WAIT for a, _ in ours) / runs,
        "false_rollback_rate": rollbacks if baseline_error == candidate_error else None,
        "naive_rollback_rate": sum(a is Action.ROLLBACK for a, _ in naive) / runs,
        "median_requests_to_decision": statistics.median(decided) if decided else None,
        "checked_every": batch,
    }
