"""Multi-armed bandits over model versions: Thompson sampling, UCB1 and ε-greedy, with an exploration floor.

Rewards in [0, 1] arrive late (from the feedback endpoint, joined by request id); the policy only changes its
weights when the driver applies a ``reweight`` decision, so routing between decisions is stable and each request's
log row can record the probability its arm had. ``decide`` is deterministic for a given state (Thompson's
probabilities come from a fixed-seed Monte Carlo), so a restarted server that restores the state routes the same way.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from mloop.rollout._canary_policy import Action, PolicyDecision, _Strict
from mloop.rollout._routing import bucket
from mloop.rollout._sequential import Moments

_DRAWS = 4000  # Monte Carlo draws for Thompson's probabilities: ±0.8 points at p = 0.5


class BanditSpec(_Strict):
    """A bandit over ``arms`` (model versions); ``floor`` is each arm's least share of traffic."""

    arms: list[str] = Field(min_length=2, max_length=20)
    algorithm: Literal["thompson", "ucb1", "epsilon_greedy"] = "thompson"
    epsilon: float = Field(default=0.1, ge=0, le=1)
    floor: float = Field(default=0.02, ge=0, lt=0.5)
    reward: str = Field(default="reward", min_length=1)

    @field_validator("arms")
    @classmethod
    def _distinct(cls, arms: list[str]) -> list[str]:
        twice = sorted({a for a in arms if arms.count(a) > 1})
        if twice:
            raise ValueError(f"arm {twice[0]!r} is listed more than once")
        if any(not a for a in arms):
            raise ValueError("arms must be non-empty version names")
        return arms

    @model_validator(mode="after")
    def _room(self) -> BanditSpec:
        if self.floor * len(self.arms) > 1.0:
            raise ValueError(f"floor {self.floor:g} × {len(self.arms)} arms exceeds all of the traffic")
        return self


class BanditPolicy:
    """The bandit's state (each arm's reward count and sum) and its weights.

    >>> policy = BanditPolicy(BanditSpec(arms=["1", "2"], floor=0.05))
    >>> for _ in range(500):
    ...     policy.observe("1", "reward", 0.0)
    ...     policy.observe("2", "reward", 1.0)
    >>> decision = policy.decide(now=0.0)
    >>> decision.action.value, round(decision.weights["1"], 2), round(decision.weights["2"], 2)
    ('reweight', 0.05, 0.95)
    """

    name = "bandit"

    def __init__(self, spec: BanditSpec, *, started: float = 0.0) -> None:
        self.spec = spec
        self.arms = {arm: Moments() for arm in spec.arms}
        self.applied = {arm: 1.0 / len(spec.arms) for arm in spec.arms}  # uniform until the first decision

    def weights(self) -> dict[str, float]:
        return dict(self.applied)

    def route(self, key: str) -> tuple[str, float]:
        """The arm whose slice of [0, 100) holds the key's bucket, and that arm's weight."""
        point, edge = bucket(key) / 100.0, 0.0
        for arm, weight in self.applied.items():
            edge += weight
            if point < edge:
                return arm, weight
        arm = next(reversed(self.applied))
        return arm, self.applied[arm]

    def observe(self, arm: str, metric: str, value: float, count: int = 1) -> None:
        if metric == self.spec.reward and arm in self.arms and math.isfinite(value):
            self.arms[arm].add(min(max(value, 0.0), 1.0), count)

    def _raw(self) -> np.ndarray:
        n = np.array([m.n for m in self.arms.values()], dtype=float)
        total = np.array([m.total for m in self.arms.values()])
        k = len(n)
        if self.spec.algorithm == "thompson":
            rng = np.random.default_rng(int(n.sum()) + 7919 * int(total.sum()))  # a function of the state alone
            draws = rng.beta(1.0 + total, 1.0 + n - total, size=(_DRAWS, k))
            return np.bincount(draws.argmax(axis=1), minlength=k) / _DRAWS
        means = np.where(n > 0, total / np.maximum(n, 1), 0.0)
        if self.spec.algorithm == "ucb1":
            if (n == 0).any():
                return (n == 0) / (n == 0).sum()  # every arm once first
            scores = means + np.sqrt(2.0 * math.log(n.sum()) / n)
            return (scores == scores.max()) / (scores == scores.max()).sum()
        best = (means == means.max()) / (means == means.max()).sum()
        return (1.0 - self.spec.epsilon) * best + self.spec.epsilon / k

    def decide(self, now: float) -> PolicyDecision:
        raw = self._raw()
        floor = self.spec.floor
        weights = {arm: float(floor + (1.0 - floor * len(raw)) * p) for arm, p in zip(self.arms, raw, strict=True)}
        summary = ", ".join(f"{a}: {m.n} rewards, mean {m.mean:.4g}" if m.n else f"{a}: no rewards" for a, m in self.arms.items())
        return PolicyDecision(Action.REWEIGHT, 0, 0.0, f"{self.spec.algorithm} over {summary}", weights=weights)

    def apply(self, decision: PolicyDecision, now: float) -> None:
        if decision.action is Action.REWEIGHT and decision.weights:
            self.applied = dict(decision.weights)

    def state(self) -> dict[str, Any]:
        """What a restart needs: each arm's rewards and the weights in force."""
        return {"arms": {a: [m.n, m.total, m.total_sq] for a, m in self.arms.items()}, "applied": dict(self.applied)}

    def restore(self, state: dict[str, Any]) -> None:
        for arm, (n, total, total_sq) in state.get("arms", {}).items():
            if arm in self.arms:
                self.arms[arm] = Moments(int(n), float(total), float(total_sq))
        applied = state.get("applied")
        if applied and set(applied) == set(self.arms):
            self.applied = {a: float(applied[a]) for a in self.arms}
