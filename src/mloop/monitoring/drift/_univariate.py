"""Two-sample tests for one feature, estimator-style: ``fit(reference)`` then ``score(current)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mloop.errors import InvalidInput, NotFittedError


@dataclass(frozen=True)
class TestResult:
    """``statistic`` and ``p_value`` of the test; ``effect_size`` on a 0–1 scale (KS D, Cramér's V)."""

    test: str
    statistic: float
    p_value: float
    effect_size: float


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise InvalidInput(f"{what} has no finite values to compare.", field=what)
    return arr


class KSTest:
    """Two-sample Kolmogorov–Smirnov test for a numeric feature (SciPy's ``ks_2samp``); effect size is D.

    >>> rng = np.random.default_rng(0)
    >>> ks = KSTest().fit(rng.normal(size=2000))
    >>> ks.score(rng.normal(size=2000)).p_value > 0.05
    True
    >>> ks.score(rng.normal(0.5, size=2000)).p_value < 1e-6
    True
    """

    name = "ks"

    def fit(self, reference: np.ndarray) -> KSTest:
        self.reference_ = np.sort(_finite(reference, "reference"))
        return self

    def score(self, current: np.ndarray) -> TestResult:
        if not hasattr(self, "reference_"):
            raise NotFittedError("KSTest.score called before fit(reference).")
        cur = _finite(current, "current")
        res = stats.ks_2samp(self.reference_, cur)
        return TestResult(self.name, float(res.statistic), float(res.pvalue), float(res.statistic))
