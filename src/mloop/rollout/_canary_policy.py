"""A canary as a traffic policy: stages of candidate share, each judged by always-valid sequential tests, with pure
``route``, ``observe`` and ``decide`` so that the server, the simulator and the tests run the very same code.

A stage passes when the candidate has at least ``min_samples`` outcomes in it and ``min_seconds`` have gone by with
no metric's test crossing its threshold. The last stage before 100 % promotes, and only once the evidence suffices:
every metric's always-valid confidence sequence must put the candidate no worse than its ``tolerance``. Any metric
crossing its test rolls back at once, as does a candidate whose last ``breaker`` outcomes were all errors (a dead
candidate must not wait for a test's minimum samples: 20 errors in a row at a 5 % baseline has a probability of
1e-26). Both error rates (rolling back a good candidate, promoting a bad one) are controlled across the metrics
together: each test runs at α divided by the number of metrics (Bonferroni).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mloop.rollout._routing import bucket
from mloop.rollout._sequential import Evidence, WorseThan


class Action(StrEnum):
    WAIT = "wait"  # not enough evidence yet: keep the current shares
    ADVANCE = "advance"  # this stage passed: move to the next share
    PROMOTE = "promote"  # the last stage passed: the candidate becomes the baseline
    ROLLBACK = "rollback"  # the candidate is worse: all traffic back to the baseline
    REWEIGHT = "reweight"  # a bandit's new shares


@dataclass(frozen=True)
class PolicyDecision:
    """What a policy decided, and the evidence behind it (every metric's statistic), for the audit trail."""

    action: Action
    stage: int
    share: float
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "stage": self.stage, "share": self.share, "reason": self.reason,
                "evidence": [e.to_dict() for e in self.evidence], "weights": dict(self.weights)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: The outcomes a canary can be judged on (what the rollout driver reads from the prediction and feedback log), each
#: with the test that suits it: ``errors`` 1 for a request the version failed (non-2xx), 0 for one it answered;
#: ``latency`` the natural log of an answered request's milliseconds (so ``tau`` 0.1 is about 10 % slower); ``loss``
#: the squared error of a prediction against its label, once the label arrives; ``score`` the prediction itself,
#: judged two-sided (a shift of the predictions' distribution against the baseline's, either way).
METRICS: dict[str, str] = {"errors": "rate", "latency": "mean", "loss": "mean", "score": "shift"}


class MetricSpec(_Strict):
    """One judged metric: ``rate`` reads 0/1 outcomes (errors), ``mean`` any number (log latency, label loss),
    ``shift`` a mean that must not move either way; by default the kind that suits the metric (:data:`METRICS`).
    ``tau``: the degradation the test finds fastest; ``margin``: a degradation that does not roll back;
    ``tolerance``: how much worse the candidate may be and still be promoted, once that is established."""

    kind: Literal["rate", "mean", "shift"] | None = None
    tau: float = Field(default=0.02, gt=0, le=1e6)
    margin: float = Field(default=0.0, ge=0, le=1e6)
    tolerance: float = Field(default=0.01, gt=0, le=1e6)
    min_samples: int = Field(default=100, ge=20, le=10_000_000)


def _default_metrics() -> dict[str, MetricSpec]:
    return {"errors": MetricSpec()}


class CanarySpec(_Strict):
    """A canary of ``candidate`` beside ``baseline`` (model versions), validated when it is set."""

    baseline: str = Field(min_length=1)
    candidate: str = Field(min_length=1)
    steps: list[float] = Field(default_factory=lambda: [1.0, 5.0, 25.0, 50.0, 100.0], min_length=1, max_length=20)
    min_samples: int = Field(default=100, ge=1, le=100_000_000)
    min_seconds: float = Field(default=60.0, ge=0, le=30 * 86400)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    metrics: dict[str, MetricSpec] = Field(default_factory=_default_metrics, min_length=1, max_length=10)
    breaker: int = Field(default=20, ge=3, le=10_000)

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float]) -> list[float]:
        shown = "[" + ", ".join(f"{s:g}" for s in steps) + "]"
        bad = [s for s in steps if not (math.isfinite(s) and 0.0 < s <= 100.0)]
        if bad:
            raise ValueError(f"every step must be a share within (0, 100], got {bad[0]:g} in {shown}")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or steps[-1] != 100.0 or len(steps) < 2:
            raise ValueError(f"steps must increase, end at 100 and hold at least one share below it, got {shown}")
        return steps

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: dict[str, MetricSpec]) -> dict[str, MetricSpec]:
        unknown = [name for name in metrics if name not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; a canary is judged on {', '.join(METRICS)}")
        return metrics

    @model_validator(mode="after")
    def _versions(self) -> CanarySpec:
        if self.baseline == self.candidate:
            raise ValueError(f"the candidate must differ from the baseline (both {self.baseline!r})")
        return self


class CanaryPolicy:
    """The canary's state machine over a :class:`CanarySpec`. ``decide(now)`` has no side effects; ``apply`` moves
    to the next stage (or ends) after a decision was carried out.

    >>> policy = CanaryPolicy(CanarySpec(baseline="1", candidate="2", steps=[10, 50, 100], min_samples=150, min_seconds=0))
    >>> for i in range(2000):
    ...     arm, _ = policy.route(f"r{i}")
    ...     policy.observe(arm, "errors", float(i % 20 == 0))  # both arms 5 % errors
    >>> policy.decide(now=0.0).action.value
    'advance'
    """

    name = "canary"

    def __init__(self, spec: CanarySpec, *, started: float = 0.0) -> None:
        self.spec = spec
        self.stage = 0
        self.stage_started = started
        self.stage_candidate = 0  # candidate outcomes in this stage
        self.done: Action | None = None
        alpha = spec.alpha / len(spec.metrics)
        self.tests = {name: WorseThan(name, alpha=alpha, tau=m.tau, margin=m.margin, min_samples=m.min_samples,
                                      kind=m.kind or METRICS.get(name, "mean"), tolerance=m.tolerance) for name, m in spec.metrics.items()}
        self._streak = 0

    @property
    def share(self) -> float:
        """The candidate's share of traffic now, in percent (0 after a rollback, 100 after promotion)."""
        if self.done is Action.ROLLBACK:
            return 0.0
        if self.done is Action.PROMOTE:
            return 100.0
        return self.spec.steps[self.stage]

    def weights(self) -> dict[str, float]:
        """Each arm's probability of being routed a request."""
        return {"baseline": 1.0 - self.share / 100.0, "candidate": self.share / 100.0}

    def route(self, key: str) -> tuple[str, float]:
        """The arm for a routing key (sticky: a key stays on its arm while the share does not fall below it) and the
        probability this arm had of being chosen."""
        arm = "candidate" if bucket(key) < self.share else "baseline"
        return arm, self.weights()[arm]

    def observe(self, arm: str, metric: str, value: float, count: int = 1) -> None:
        """One outcome (or ``count`` equal ones) of ``metric`` on ``arm``; metrics the spec does not judge are ignored."""
        test = self.tests.get(metric)
        if test is None or self.done is not None:
            return
        test.observe(arm, value, count)
        if arm == "candidate":
            if metric == next(iter(self.tests)):
                self.stage_candidate += count
            if metric == "errors":
                self._streak = self._streak + count if value >= 1.0 else 0

    def decide(self, now: float) -> PolicyDecision:
        """The decision the evidence supports now (no side effects)."""
        evidence = [test.evidence() for test in self.tests.values()]
        if self.done is not None:
            return PolicyDecision(self.done, self.stage, self.share, "the canary has ended", evidence)
        worse = [e for e in evidence if e.worse]
        if worse:
            names = ", ".join(f"{e.metric} (log Λ {e.log_ratio:.2f} ≥ {e.threshold:.2f})" for e in worse)
            return PolicyDecision(Action.ROLLBACK, self.stage, self.share, f"the candidate is worse on {names}", evidence)
        if self._streak >= self.spec.breaker:
            return PolicyDecision(Action.ROLLBACK, self.stage, self.share,
                                  f"the candidate's last {self._streak} outcomes were all errors", evidence)
        enough = self.stage_candidate >= self.spec.min_samples and now - self.stage_started >= self.spec.min_seconds
        if not enough:
            return PolicyDecision(Action.WAIT, self.stage, self.share,
                                  f"{self.stage_candidate} of {self.spec.min_samples} candidate outcomes in this stage", evidence)
        if self.stage < len(self.spec.steps) - 2:
            return PolicyDecision(Action.ADVANCE, self.stage, self.share, f"stage {self.share:g} % passed with no metric worse", evidence)
        unsure = [e for e in evidence if not e.no_worse]
        if unsure:
            names = ", ".join(f"{e.metric} (up to {e.upper:+.4g} vs tolerance {e.tolerance:g})" for e in unsure)
            return PolicyDecision(Action.WAIT, self.stage, self.share, f"not yet shown to be no worse on {names}", evidence)
        return PolicyDecision(Action.PROMOTE, self.stage, self.share, "every metric shown to be within its tolerance", evidence)

    def state(self) -> dict[str, Any]:
        """Everything a restart needs to carry on: the stage, its clock and count, each test's moments, and the end."""
        return {
            "stage": self.stage, "stage_started": self.stage_started, "stage_candidate": self.stage_candidate,
            "done": self.done.value if self.done else None, "streak": self._streak,
            "tests": {name: {arm: [m.n, m.total, m.total_sq] for arm, m in t.arms.items()}
                      for name, t in self.tests.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        from mloop.rollout._sequential import Moments

        self.stage = min(int(state.get("stage", 0)), len(self.spec.steps) - 1)
        self.stage_started = float(state.get("stage_started", self.stage_started))
        self.stage_candidate = int(state.get("stage_candidate", 0))
        self.done = Action(state["done"]) if state.get("done") else None
        self._streak = int(state.get("streak", 0))
        for name, saved in (state.get("tests") or {}).items():
            test = self.tests.get(name)
            if test is None:
                continue
            for arm in ("baseline", "candidate"):
                if arm in saved:
                    n, total, total_sq = saved[arm]
                    test.arms[arm] = Moments(int(n), float(total), float(total_sq))

    def apply(self, decision: PolicyDecision, now: float) -> None:
        """Carry a decision into the state: the next stage, or the end."""
        if decision.action is Action.ADVANCE:
            self.stage += 1
            self.stage_started = now
            self.stage_candidate = 0
        elif decision.action in (Action.PROMOTE, Action.ROLLBACK):
            self.done = decision.action
