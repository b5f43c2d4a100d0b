"""The offline gate: is the challenger better than the champion on the same held-out rows? Pure functions over
arrays, each returning the statistic that decided.

Both models score the same rows, so their errors are correlated and a paired test is far more powerful than
comparing two unpaired figures: DeLong's test for a difference of AUCs (DeLong, DeLong & Clarke-Pearson 1988, in Sun
& Xu's O(n log n) form), or a paired z-test on per-row losses. The gate passes when the test shows the challenger
better than the champion by more than ``min_effect`` (one-sided, level ``alpha``) and its own figure clears the
absolute ``floor``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field

from mloop.errors import InvalidInput


class GateSpec(BaseModel):
    """How a challenger is judged against the champion. ``metric``: ``auc`` (binary labels, DeLong) or ``loss`` (the
    squared error of each row's score, paired); ``min_effect``: how much better it must be shown to be (negative
    allows a challenger shown to be at most that much worse); ``floor``: the least AUC (or the most loss) it may have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["auc", "loss"] = "auc"
    min_effect: float = Field(default=0.0, ge=-1.0, le=1.0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    floor: float | None = Field(default=None, ge=0.0, le=1e9)
    min_rows: int = Field(default=200, ge=20, le=100_000_000)


@dataclass(frozen=True)
class GateResult:
    """The gate's decision and the statistic it was taken on (``difference`` is challenger − champion, oriented so
    that positive is better: AUC gained, or loss saved)."""

    passed: bool
    metric: str
    champion: float
    challenger: float
    difference: float
    std_error: float
    z: float
    lower: float  # the one-sided (1 − alpha) lower confidence bound of the difference
    min_effect: float
    alpha: float
    rows: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _midranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.asarray(rankdata(x, method="average"), dtype=float)


def delong(labels: ArrayLike, champion: ArrayLike, challenger: ArrayLike) -> tuple[float, float, float]:
    """(AUC of the champion, AUC of the challenger, variance of their difference) on the same rows, by DeLong's
    method in Sun & Xu's fast form (midranks instead of all pairs).

    >>> y = [0, 0, 1, 1]
    >>> a, b, _ = delong(y, [0.1, 0.4, 0.35, 0.8], [0.1, 0.2, 0.6, 0.8])
    >>> round(a, 2), round(b, 2)
    (0.75, 1.0)
    """
    y = np.asarray(labels, dtype=float)
    scores = np.vstack([np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)])
    positive = y >= 0.5
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise InvalidInput(f"The holdout needs at least two rows of each class, got {m} positive and {n} negative.", field="holdout")
    aucs, v10, v01 = np.empty(2), np.empty((2, m)), np.empty((2, n))
    for k in range(2):
        pos, neg = scores[k, positive], scores[k, ~positive]
        tz = _midranks(np.concatenate([pos, neg]))
        tx, ty = _midranks(pos), _midranks(neg)
        aucs[k] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10[k] = (tz[:m] - tx) / n
        v01[k] = 1.0 - (tz[m:] - ty) / m
    s = np.cov(v10) / m + np.cov(v01) / n
    variance = float(s[0, 0] + s[1, 1] - 2.0 * s[0, 1])
    return float(aucs[0]), float(aucs[1]), max(variance, 0.0)


def _phi_inverse(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def judge(spec: GateSpec, labels: ArrayLike, champion: ArrayLike, challenger: ArrayLike) -> GateResult:
    """The gate's decision for two models' scores on the same held-out rows (``labels`` the truth)."""
    y = np.asarray(labels, dtype=float)
    a, b = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
    if not (len(y) == len(a) == len(b)):
        raise InvalidInput(f"labels and both models' scores must be the same length, got {len(y)}, {len(a)}, {len(b)}.", field="holdout")
    keep = np.isfinite(y) & np.isfinite(a) & np.isfinite(b)
    y, a, b = y[keep], a[keep], b[keep]
    rows = len(y)
    if rows < spec.min_rows:
        return GateResult(False, spec.metric, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, spec.min_effect, spec.alpha, rows,
                          f"only {rows} labelled holdout rows (at least {spec.min_rows} needed)")
    if spec.metric == "auc":
        first, second, variance = delong(y, a, b)
        difference = second - first
    else:
        loss_a, loss_b = (a - y) ** 2, (b - y) ** 2
        first, second = float(loss_a.mean()), float(loss_b.mean())
        saved = loss_a - loss_b
        difference, variance = float(saved.mean()), float(saved.var(ddof=1) / rows)
    se = math.sqrt(variance)
    z = (difference - spec.min_effect) / se if se > 0 else (math.inf if difference > spec.min_effect else -math.inf)
    lower = difference - _phi_inverse(1.0 - spec.alpha) * se
    shown = lower > spec.min_effect
    name = "AUC" if spec.metric == "auc" else "loss"
    if spec.floor is not None and (second < spec.floor if spec.metric == "auc" else second > spec.floor):
        bound = "under" if spec.metric == "auc" else "over"
        return GateResult(False, spec.metric, first, second, difference, se, z, lower, spec.min_effect, spec.alpha, rows,
                          f"challenger {name} {second:.4f} is {bound} the floor {spec.floor:g}")
    better = "better" if spec.metric == "auc" else "lower"
    verdict = better if shown else f"not shown {better}"
    reason = (f"challenger {name} {second:.4f} vs champion {first:.4f}: {verdict} by more than {spec.min_effect:g} "
              f"(lower bound {lower:+.4f}, z {z:.2f})")
    return GateResult(shown, spec.metric, first, second, difference, se, z, lower, spec.min_effect, spec.alpha, rows, reason)


def auc_with_variance(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """One model's AUC on a sample and DeLong's variance of it (for comparing two independent samples)."""
    y, s = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    positive = y >= 0.5
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise InvalidInput(f"An AUC needs at least two rows of each class, got {m} positive and {n} negative.", field="labels")
    pos, neg = s[positive], s[~positive]
    tz = _midranks(np.concatenate([pos, neg]))
    v10 = (tz[:m] - _midranks(pos)) / n
    v01 = 1.0 - (tz[m:] - _midranks(neg)) / m
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    return float(auc), float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)


@dataclass(frozen=True)
class Drop:
    """Has the champion's AUC fallen below its own reference? The statistic behind a performance trigger."""

    dropped: bool
    reference: float
    current: float
    z: float
    alpha: float
    min_drop: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auc_drop(reference: tuple[ArrayLike, ArrayLike] | tuple[float, float], current: tuple[ArrayLike, ArrayLike], *, alpha: float = 0.05,
             min_drop: float = 0.0) -> Drop:
    """A one-sided z-test that the AUC on ``current`` (labels, scores) is lower than on ``reference`` (labels and
    scores, or the reference's AUC and DeLong variance already computed) by more than ``min_drop``: the two samples are
    independent (different rows), so their DeLong variances add."""
    first = reference[0]
    ref_auc, ref_var = (float(first), float(reference[1])) if np.ndim(first) == 0 else auc_with_variance(*reference)  # type: ignore[arg-type]
    cur_auc, cur_var = auc_with_variance(*current)
    se = math.sqrt(ref_var + cur_var)
    z = (ref_auc - cur_auc - min_drop) / se if se > 0 else (math.inf if ref_auc - cur_auc > min_drop else -math.inf)
    return Drop(bool(z >= _phi_inverse(1.0 - alpha)), ref_auc, cur_auc, z, alpha, min_drop, len(np.asarray(current[0])))
