"""Always-valid sequential tests: a rollout may look at its evidence after every observation and still keep its
false-alarm rate at α.

The test is a one-sided mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et al. 2017) on a
difference of means: with ``d`` the candidate's mean minus the baseline's, ``v`` its variance and a half-normal
mixture of scale ``tau`` over the degradations ``θ > margin``,

    Λ = 2 · sqrt(v / (v + τ²)) · exp(τ² x² / (2 v (v + τ²))) · Φ(x τ / sqrt(v (v + τ²))),   x = d − margin.

Under "no worse than the margin" Λ is (to the normal approximation) a non-negative supermartingale with mean ≤ 1,
so by Ville's inequality the chance that it *ever* reaches 1/α is at most α, however often it is checked. A
fixed-sample z-test checked after each observation has no such guarantee: peeked at twenty times, a 5 % test
rejects about a quarter of the time when nothing changed. ``benchmarks/rollout_stats.py`` measures both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mloop.errors import InvalidInput


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def log_ratio(x: float, v: float, tau: float) -> float:
    """:func:`log_mixture_ratio` for one point, in plain floats (a fifth of the time, for the server's many looks);
    the tests hold the two to each other."""
    if not v > 0.0 or not math.isfinite(x):
        return -math.inf
    total = v + tau * tau
    z = x * tau / math.sqrt(v * total)
    tail = _phi(z)
    log_tail = math.log(tail) if tail > 1e-300 else -0.5 * z * z - math.log(-z * math.sqrt(2.0 * math.pi))  # Mills' ratio
    return math.log(2.0) + 0.5 * math.log(v / total) + tau * tau * x * x / (2.0 * v * total) + log_tail


def log_mixture_ratio(x: ArrayLike, v: ArrayLike, tau: float) -> np.ndarray:
    """``log Λ`` of the one-sided mixture (see the module docstring) for observed excesses ``x`` over the margin,
    their variances ``v`` and the mixture scale ``tau``; ``-inf`` where there is no variance yet. Works on scalars
    and on whole streams at once, so the simulator and the server compute the very same numbers.

    >>> round(float(log_mixture_ratio(0.0, 1e-4, 0.01)), 4)  # no excess: Λ = 2 · sqrt(1/2) · ½
    -0.3466
    """
    from scipy.special import log_ndtr

    x, v = np.asarray(x, dtype=float), np.asarray(v, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = v + tau * tau
        z = x * tau / np.sqrt(v * total)
        out = np.log(2.0) + 0.5 * np.log(v / total) + tau * tau * x * x / (2.0 * v * total) + log_ndtr(z)
    return np.where((v > 0) & np.isfinite(x), out, -np.inf)


log_ratio_of = log_ratio  # the name WorseThan calls (``log_ratio`` is also a field of Evidence)


def cs_radius(v: float, tau: float, alpha: float) -> float:
    """Half-width of the always-valid (1 − α) confidence sequence for a difference of means with variance ``v``: the
    two-sided normal mixture's boundary, ``sqrt(v (v + τ²)/τ² · (2 log(1/α) + log((v + τ²)/v)))``. It holds at every
    look at once, so a promotion may wait for its upper end to fall under the tolerance."""
    if not v > 0.0:
        return math.inf
    total = v + tau * tau
    return math.sqrt(v * total / (tau * tau) * (2.0 * math.log(1.0 / alpha) + math.log(total / v)))


@dataclass(frozen=True)
class Evidence:
    """One metric's state: both arms' counts and means, the excess over the margin, ``log Λ`` and whether it crossed
    ``log(1/α)`` (worse), and the upper end of the difference's confidence sequence and whether it fell under the
    tolerance (no worse than tolerated)."""

    metric: str
    n_baseline: int
    n_candidate: int
    baseline: float
    candidate: float
    excess: float
    log_ratio: float
    threshold: float
    worse: bool
    upper: float = math.inf
    tolerance: float = 0.0
    no_worse: bool = False

    def to_dict(self) -> dict[str, float | int | str | bool | None]:
        def clean(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "metric": self.metric, "n_baseline": self.n_baseline, "n_candidate": self.n_candidate, "baseline": clean(self.baseline),
            "candidate": clean(self.candidate), "excess": clean(self.excess), "log_ratio": clean(self.log_ratio), "threshold": self.threshold,
            "worse": self.worse, "upper": clean(self.upper), "tolerance": self.tolerance, "no_worse": self.no_worse,
        }


KINDS = ("rate", "mean", "shift")


@dataclass
class Moments:
    """Count, sum and sum of squares of one arm's observations (O(1) memory, mergeable)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, value: float, count: int = 1) -> None:
        self.n += count
        self.total += value * count
        self.total_sq += value * value * count

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """The unbiased sample variance (0 below two observations)."""
        if self.n < 2:
            return 0.0
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)


class WorseThan:
    """Is the candidate's mean worse (higher) than the baseline's by more than ``margin``? An always-valid answer.

    ``kind="rate"`` reads 0/1 outcomes (errors): the variance is the pooled rate's, as under the null, so that an
    arm without errors yet does not make the variance vanish. ``kind="mean"`` reads any numbers (log latency, loss):
    each arm's own variance. ``kind="shift"`` asks whether the mean moved either way (the predictions' distribution
    against the baseline's): two one-sided tests at α/2 each, the larger ``log Λ`` reported, and "no worse" means
    ``|difference|`` below the tolerance. ``tau`` is the size of degradation the test is tuned to find fastest (the mixture's
    scale); ``min_samples`` per arm keeps the normal approximation honest — a single error in the candidate's
    first requests never decides.

    >>> test = WorseThan("errors", alpha=0.05, tau=0.02, min_samples=100)
    >>> for i in range(4000):
    ...     test.observe("baseline", float(i % 20 == 0))   # 5 % errors
    ...     test.observe("candidate", float(i % 5 == 0))   # 20 % errors
    >>> test.evidence().worse
    True
    """

    def __init__(self, metric: str, *, alpha: float, tau: float, margin: float = 0.0, min_samples: int = 100,
                 kind: str = "rate", tolerance: float = 0.0) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInput(f"alpha must be within (0, 1), got {alpha}.", field="alpha")
        if not tau > 0.0 or not math.isfinite(tau):
            raise InvalidInput(f"tau must be a positive number, got {tau}.", field="tau")
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}.", field="kind")
        if min_samples < 2:
            raise InvalidInput(f"min_samples must be at least 2, got {min_samples}.", field="min_samples")
        if not tolerance >= 0.0 or not math.isfinite(tolerance):
            raise InvalidInput(f"tolerance must be a finite number ≥ 0, got {tolerance}.", field="tolerance")
        self.metric, self.alpha, self.tau, self.margin, self.min_samples, self.kind = metric, alpha, tau, margin, min_samples, kind
        self.tolerance = tolerance
        self.arms = {"baseline": Moments(), "candidate": Moments()}

    def observe(self, arm: str, value: float, count: int = 1) -> None:
        if math.isfinite(value):
            self.arms[arm].add(value, count)

    def _variance(self) -> float:
        base, cand = self.arms["baseline"], self.arms["candidate"]
        if self.kind == "rate":
            pooled = (base.total + cand.total) / (base.n + cand.n)
            return pooled * (1.0 - pooled) * (1.0 / base.n + 1.0 / cand.n)
        return base.variance / base.n + cand.variance / cand.n

    def evidence(self) -> Evidence:
        base, cand = self.arms["baseline"], self.arms["candidate"]
        two_sided = self.kind == "shift"
        threshold = math.log((2.0 if two_sided else 1.0) / self.alpha)
        ready = base.n >= self.min_samples and cand.n >= self.min_samples
        difference = cand.mean - base.mean if ready else math.nan
        excess = (abs(difference) if two_sided else difference) - self.margin
        variance = self._variance() if ready else 0.0
        if not ready:
            log_ratio = -math.inf
        elif two_sided:
            log_ratio = max(log_ratio_of(difference - self.margin, variance, self.tau), log_ratio_of(-difference - self.margin, variance, self.tau))
        else:
            log_ratio = log_ratio_of(excess, variance, self.tau)
        radius = cs_radius(self._spread(), self.tau, self.alpha) if ready else math.inf
        upper = (abs(difference) if two_sided else difference) + radius if ready else math.inf
        return Evidence(self.metric, base.n, cand.n, base.mean, cand.mean, excess, log_ratio, threshold, log_ratio >= threshold,
                        upper, self.tolerance, bool(upper < self.tolerance))

    def _spread(self) -> float:
        """The difference's variance for the confidence sequence: each arm's own (the pooled one assumes no difference).
        A rate's is taken at (errors + 1) / (n + 2) (Agresti–Caffo), so arms without a single error yet still have a
        positive variance and a candidate that never fails can be shown to be no worse."""
        base, cand = self.arms["baseline"], self.arms["candidate"]
        if self.kind == "rate":
            pb, pc = (base.total + 1.0) / (base.n + 2.0), (cand.total + 1.0) / (cand.n + 2.0)
            return pb * (1 - pb) / base.n + pc * (1 - pc) / cand.n
        return base.variance / base.n + cand.variance / cand.n


def fixed_z_worse(baseline: Moments, candidate: Moments, *, alpha: float, kind: str = "rate", margin: float = 0.0) -> bool:
    """The naive judge: a one-sided fixed-sample z-test of "candidate worse", valid for one look only. Kept so that
    simulations can show what repeating it at every look costs."""
    if baseline.n < 2 or candidate.n < 2:
        return False
    if kind == "rate":
        pooled = (baseline.total + candidate.total) / (baseline.n + candidate.n)
        v = pooled * (1.0 - pooled) * (1.0 / baseline.n + 1.0 / candidate.n)
    else:
        v = baseline.variance / baseline.n + candidate.variance / candidate.n
    if not v > 0.0:
        return False
    z = (candidate.mean - baseline.mean - margin) / math.sqrt(v)
    return 1.0 - _phi(z) < alpha


def stream_log_ratios(is_candidate: np.ndarray, values: np.ndarray, *, tau: float, margin: float = 0.0, min_samples: int = 100,
                      kind: str = "rate") -> np.ndarray:
    """``log Λ`` after every observation of a stream (``is_candidate[i]``: which arm produced ``values[i]``): what
    :class:`WorseThan` reports if asked after each one, computed in one pass for simulations."""
    cand = np.asarray(is_candidate, dtype=bool)
    vals = np.asarray(values, dtype=float)
    n_c = np.cumsum(cand)
    n_b = np.arange(1, len(vals) + 1) - n_c
    s_c = np.cumsum(np.where(cand, vals, 0.0))
    s_b = np.cumsum(np.where(cand, 0.0, vals))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c, mean_b = s_c / n_c, s_b / n_b
        if kind == "rate":
            pooled = (s_b + s_c) / (n_b + n_c)
            v = pooled * (1.0 - pooled) * (1.0 / n_b + 1.0 / n_c)
        else:
            q_c = np.cumsum(np.where(cand, vals * vals, 0.0))
            q_b = np.cumsum(np.where(cand, 0.0, vals * vals))
            var_c = np.maximum(q_c - s_c * s_c / n_c, 0.0) / (n_c - 1)
            var_b = np.maximum(q_b - s_b * s_b / n_b, 0.0) / (n_b - 1)
            v = var_c / n_c + var_b / n_b
        ratios = log_mixture_ratio(mean_c - mean_b - margin, v, tau)
    return np.where((n_c >= min_samples) & (n_b >= min_samples), ratios, -np.inf)
