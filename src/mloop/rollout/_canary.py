"""A canary: step the candidate's share of traffic up while its live loss is not worse than the baseline's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from mloop.errors import InvalidInput
from mloop.rollout._routing import Arm, route


class Decision(StrEnum):
    WAIT = "wait"  # not enough labelled outcomes yet
    ADVANCE = "advance"  # this step passed: move to the next share
    PROMOTE = "promote"  # the last step passed: the candidate becomes the baseline
    ROLLBACK = "rollback"  # the candidate is worse: send all traffic back


@dataclass
class _ArmStats:
    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, loss: float) -> None:
        self.n += 1
        self.total += loss
        self.total_sq += loss * loss

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def var(self) -> float:
        if self.n < 2:
            return math.nan
        return max(self.total_sq / self.n - self.mean**2, 0.0) * self.n / (self.n - 1)


class Canary:
    """Traffic policy for a candidate: ``steps`` are the candidate's percentages, ending at 100.

    At each step, once both arms have ``min_samples`` labelled losses, the candidate is rolled back if
    its mean loss exceeds the baseline's by more than ``tolerance`` (relative), or if a one-sided
    z-test says it is worse beyond that margin at level ``alpha``; otherwise it passes the step.
    Not thread-safe: one controller owns it.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> canary = Canary(steps=[10, 50, 100], min_samples=200)
    >>> decision = Decision.WAIT
    >>> while decision not in (Decision.PROMOTE, Decision.ROLLBACK):
    ...     for i in range(400):
    ...         arm = canary.route(f"{canary.percent}-{i}")
    ...         canary.observe(arm, rng.normal(0.30 if arm is Arm.CANDIDATE else 0.35, 0.1))
    ...     decision = canary.decision()
    ...     if decision is Decision.ADVANCE:
    ...         _ = canary.advance()
    >>> decision.value, canary.percent, [h["percent"] for h in canary.history]
    ('promote', 100.0, [10.0, 50.0])
    """

    def __init__(self, *, steps: list[float] | tuple[float, ...] = (10, 50, 100), min_samples: int = 200, tolerance: float = 0.02, alpha: float = 0.05) -> None:
        shown = "[" + ", ".join(f"{float(s):g}" for s in steps) + "]"
        steps = [float(s) for s in steps]
        bad = [s for s in steps if not 0.0 < s <= 100.0]
        if not steps or bad:
            message = f"Canary step {bad[0] if bad else 'list'} must be within (0, 100], got steps={shown}."
            raise InvalidInput(message.replace(".0 must", " must"), field="steps")
        if steps != sorted(steps) or steps[-1] != 100.0:
            raise InvalidInput(f"Canary steps must increase and end at 100, got steps={shown}.", field="steps")
        if min_samples < 2:
            raise InvalidInput(f"min_samples must be at least 2, got {min_samples}.", field="min_samples")
        self.steps = steps
        self.min_samples = min_samples
        self.tolerance = tolerance
        self.alpha = alpha
        self.step_index = 0
        self.history: list[dict[str, float | str]] = []
        self._reset()

    def _reset(self) -> None:
        self._stats = {Arm.BASELINE: _ArmStats(), Arm.CANDIDATE: _ArmStats()}

    @property
    def percent(self) -> float:
        return self.steps[self.step_index]

    def route(self, key: str) -> Arm:
        return route(key, self.percent)

    def clear(self) -> None:
        """Forget this step's observations, for a controller that recounts them from the log each time."""
        self._reset()

    def observe(self, arm: Arm, loss: float) -> None:
        if math.isfinite(loss):
            self._stats[arm].add(float(loss))

    def arm_stats(self) -> dict[str, tuple[int, float]]:
        return {arm.value: (s.n, s.mean) for arm, s in self._stats.items()}

    def decision(self) -> Decision:
        base, cand = self._stats[Arm.BASELINE], self._stats[Arm.CANDIDATE]
        if self.percent >= 100.0:
            # All traffic is on the candidate: the comparison happened at the previous steps.
            return Decision.PROMOTE if self.step_index > 0 or cand.n >= self.min_samples else Decision.WAIT
        if base.n < self.min_samples or cand.n < self.min_samples:
            return Decision.WAIT
        margin = self.tolerance * abs(base.mean)
        se = math.sqrt(base.var / base.n + cand.var / cand.n) or 1e-12
        z = (cand.mean - base.mean - margin) / se
        p_worse = 0.5 * math.erfc(-z / math.sqrt(2))  # P(Z <= z): large z means clearly worse
        worse = cand.mean > base.mean + margin or p_worse > 1.0 - self.alpha
        self.history.append({"percent": self.percent, "baseline_loss": base.mean, "candidate_loss": cand.mean, "z": z})
        if worse:
            return Decision.ROLLBACK
        return Decision.PROMOTE if self.step_index == len(self.steps) - 1 else Decision.ADVANCE

    def advance(self) -> float:
        """Move to the next step and start counting afresh; returns the new percentage."""
        if self.step_index < len(self.steps) - 1:
            self.step_index += 1
        self._reset()
        return self.percent
