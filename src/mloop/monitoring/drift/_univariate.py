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


class ChiSquareTest:
    """Chi-square test of homogeneity for a categorical feature; effect size is Cramér's V.

    Categories unseen in the reference are pooled into one ``<other>`` level; missing values are a level too.

    >>> ref = np.array(["a"] * 500 + ["b"] * 500, dtype=object)
    >>> chi = ChiSquareTest().fit(ref)
    >>> chi.score(np.array(["a"] * 480 + ["b"] * 520, dtype=object)).p_value > 0.05
    True
    >>> round(chi.score(np.array(["a"] * 800 + ["b"] * 200, dtype=object)).effect_size, 2)
    0.31
    """

    name = "chi_square"
    _OTHER = "<other>"
    _MISSING = "<missing>"

    def _labels(self, values: np.ndarray) -> np.ndarray:
        arr = np.asarray(values, dtype=object)
        mask = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr], dtype=bool)
        out = arr.astype(str)
        out[mask] = self._MISSING
        return out

    def fit(self, reference: np.ndarray) -> ChiSquareTest:
        labels = self._labels(reference)
        if labels.size == 0:
            raise InvalidInput("reference has no values to compare.", field="reference")
        self.categories_, self.reference_counts_ = np.unique(labels, return_counts=True)
        return self

    def score(self, current: np.ndarray) -> TestResult:
        if not hasattr(self, "categories_"):
            raise NotFittedError("ChiSquareTest.score called before fit(reference).")
        labels = self._labels(current)
        if labels.size == 0:
            raise InvalidInput("current has no values to compare.", field="current")
        known = np.isin(labels, self.categories_)
        idx = np.searchsorted(self.categories_, labels[known])
        cur_counts = np.bincount(idx, minlength=self.categories_.size).astype(float)
        ref_counts = self.reference_counts_.astype(float)
        other = float((~known).sum())
        if other:
            cur_counts = np.append(cur_counts, other)
            ref_counts = np.append(ref_counts, 0.0)
        table = np.vstack([ref_counts, cur_counts])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return TestResult(self.name, 0.0, 1.0, 0.0)
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        n = table.sum()
        cramers_v = float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))
        return TestResult(self.name, float(chi2), float(p), cramers_v)
