"""Normalised Wasserstein-1 distance: how far the distribution moved, in units of the reference's spread."""

from __future__ import annotations

import numpy as np

from mloop.errors import NotFittedError
from mloop.monitoring.drift._univariate import KSTest, TestResult, _finite


def wasserstein_1(reference: np.ndarray, current: np.ndarray) -> float:
    """W1 between two samples, both sorted: the area between their empirical CDFs (what SciPy's
    ``wasserstein_distance`` computes), without importing ``scipy.stats``.

    >>> wasserstein_1(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    1.0
    """
    points = np.sort(np.concatenate([reference, current]))
    widths = np.diff(points)
    below_ref = np.searchsorted(reference, points[:-1], side="right") / len(reference)
    below_cur = np.searchsorted(current, points[:-1], side="right") / len(current)
    return float(np.sum(np.abs(below_ref - below_cur) * widths))


class Wasserstein:
    """``W1(reference, current) / std(reference)``; its p-value is the two-sample KS test's on the same values,
    since W1 has no closed-form test.

    >>> rng = np.random.default_rng(0)
    >>> w = Wasserstein().fit(rng.normal(size=4000))
    >>> round(w.score(rng.normal(0.5, size=4000)).statistic, 1)
    0.5
    """

    name = "wasserstein"

    def fit(self, reference: np.ndarray) -> Wasserstein:
        self._ks = KSTest().fit(reference)  # the sorted reference and the p-value, computed once for both
        self.reference_ = self._ks.reference_
        self.missing_ = self._ks.missing_
        scale = float(np.std(self.reference_))
        if scale == 0.0:
            scale = float(np.subtract(*np.percentile(self.reference_, [75, 25]))) or 1.0
        self.scale_ = scale
        return self

    def score(self, current: np.ndarray) -> TestResult:
        if not hasattr(self, "reference_"):
            raise NotFittedError("Wasserstein.score called before fit(reference).")
        cur = np.sort(_finite(current, "current"))
        distance = wasserstein_1(self.reference_, cur) / self.scale_
        p = self._ks.score(cur).p_value
        return TestResult(self.name, distance, p, distance)



