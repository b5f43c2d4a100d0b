"""Normalised Wasserstein-1 distance as the test statistic: how far the distribution moved, in units of the
reference's spread."""

from __future__ import annotations

import numpy as np

from mloop.monitoring.drift._univariate import KSTest, TestResult, cdf_gaps, ks_p_value, ks_statistic


class Wasserstein(KSTest):
    """``W1(reference, current) / std(reference)`` as the statistic (Evidently's default for large samples); its
    p-value is the two-sample KS test's on the same values, since W1 has no closed-form test.

    >>> rng = np.random.default_rng(0)
    >>> w = Wasserstein().fit(rng.normal(size=4000))
    >>> round(w.score(rng.normal(0.5, size=4000)).statistic, 1)
    0.5
    """

    name = "wasserstein"

    def score(self, current: np.ndarray) -> TestResult:
        cur = self._sorted(current)
        gaps, widths = cdf_gaps(self.reference_, cur)
        distance = float(np.abs(gaps[:-1]) @ widths) / self.scale_
        p = ks_p_value(ks_statistic(self.reference_, cur, gaps), len(self.reference_), len(cur))
        return TestResult(self.name, distance, p, distance, self.measure)
