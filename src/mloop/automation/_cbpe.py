"""Confidence-based performance estimation (CBPE, as NannyML does it): a classifier's AUC estimated from its scores
alone, before any label arrives. Pure functions over arrays.

The champion's scores on a labelled reference block are calibrated (isotonic regression: score → the probability
that the label is 1). On a block without labels, each row's calibrated probability ``p`` stands for its label's
expectation, and the expected AUC is the expected share of (positive, negative) pairs the scores order correctly:
``Σ_{s_i > s_j} p_i (1 − p_j) / Σ_{i ≠ j} p_i (1 − p_j)`` (ties count half). It holds while ``P(y | score)`` stays
what the reference showed — covariate shift, the kind of drift a monitor sees first — and cannot see a change of the
concept itself (only labels can: the performance trigger).

Is a fall significant? The estimate on a block of ``n`` rows varies with the rows drawn; its variance is taken by
resampling the block's rows (a seeded bootstrap), for the reference and for each block, and the two add (the blocks
are independent): a one-sided z-test, as for the labelled AUC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from mloop.automation._gate import Drop, _phi_inverse
from mloop.errors import InvalidInput


@dataclass(frozen=True)
class Calibration:
    """Isotonic calibration as its step points: ``p = interp(score, scores, probabilities)``, clipped at the ends."""

    scores: list[float]
    probabilities: list[float]

    @classmethod
    def fit(cls, labels: ArrayLike, scores: ArrayLike) -> Calibration:
        from sklearn.isotonic import IsotonicRegression

        y, s = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
        if len(np.unique(y)) < 2:
            raise InvalidInput("Calibrating the scores needs labels of both classes in the reference block.", field="labels")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        return cls([float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_])

    def __call__(self, scores: ArrayLike) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype=float), self.scores, self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "probabilities": self.probabilities}


def expected_auc(probabilities: ArrayLike, scores: ArrayLike) -> float:
    """The AUC the scores are expected to reach if each row's label is 1 with its calibrated probability: O(n log n)
    by sorting on the score and summing ``1 − p`` below each row (rows of equal score count half)."""
    p, s = np.asarray(probabilities, dtype=float), np.asarray(scores, dtype=float)
    order = np.argsort(s, kind="stable")
    p, s = p[order], s[order]
    q = 1.0 - p
    # Group equal scores: for each group, the negatives' mass strictly below it, and its own masses.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group_p = np.add.reduceat(p, starts)
    group_q = np.add.reduceat(q, starts)
    group_pq = np.add.reduceat(p * q, starts)
    below = np.r_[0.0, np.cumsum(group_q)[:-1]]
    concordant = float(np.sum(group_p * below) + 0.5 * np.sum(group_p * group_q - group_pq))
    pairs = float(p.sum() * q.sum() - np.sum(p * q))
    return concordant / pairs if pairs > 0 else math.nan


def estimate(calibration: Calibration, scores: ArrayLike, *, resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """(estimated AUC, its bootstrap variance) of a block of scores, labels unknown."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 20:
        raise InvalidInput(f"Estimating the AUC needs at least 20 scores, got {len(s)}.", field="scores")
    p = calibration(s)
    auc = expected_auc(p, s)
    rng = np.random.default_rng(seed)
    draws = [expected_auc(p[idx], s[idx]) for idx in (rng.integers(0, len(s), len(s)) for _ in range(resamples))]
    return auc, float(np.nanvar(draws, ddof=1))


def estimated_drop(reference: tuple[float, float], current: tuple[float, float], rows: int, *, alpha: float = 0.05,
                   min_drop: float = 0.0) -> Drop:
    """A one-sided z-test that the estimated AUC ``current`` (estimate, variance) is lower than ``reference`` by more
    than ``min_drop``."""
    (ref, ref_var), (cur, cur_var) = reference, current
    if not all(math.isfinite(v) for v in (ref, ref_var, cur, cur_var)):  # an estimate that could not be made decides nothing
        return Drop(False, ref, cur, math.nan, alpha, min_drop, rows)
    se = math.sqrt(ref_var + cur_var)
    z = (ref - cur - min_drop) / se if se > 0 else (math.inf if ref - cur > min_drop else -math.inf)
    return Drop(bool(z >= _phi_inverse(1.0 - alpha)), ref, cur, z, alpha, min_drop, rows)
