"""Binned comparisons: PSI and Jensen–Shannon distance over the reference's quantile bins (or its categories).

Both are effect sizes, not tests; their p-value is the chi-square test of homogeneity on the same bins, so
they can share a multiple-testing correction with the other tests.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._univariate import TestResult

_EPS = 1e-4  # floor for empty bins, so that logarithms stay finite


class _Binned:
    """Quantile bins for numbers (missing values get a bin of their own), one bin per category otherwise."""

    name = "binned"

    def __init__(self, *, bins: int = 10) -> None:
        if not 2 <= bins <= 1000:
            raise InvalidInput(f"bins must be within [2, 1000], got {bins}.", field="bins")
        self.bins = bins

    def _counts(self, values: np.ndarray) -> np.ndarray:
        if self.numeric_:
            arr = np.asarray(values, dtype=float)
            missing = np.isnan(arr)
            idx = np.searchsorted(self.bin_edges_, arr[~missing], side="right")
            counts = np.bincount(idx, minlength=len(self.bin_edges_) + 1).astype(float)
            return np.append(counts, missing.sum())
        labels = np.array(["<missing>" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values], dtype=object)
        known = np.isin(labels, self.categories_)
        idx = np.searchsorted(self.categories_, labels[known])
        counts = np.bincount(idx, minlength=len(self.categories_)).astype(float)
        return np.append(counts, (~known).sum())

    def fit(self, reference: np.ndarray) -> _Binned:
        values = np.asarray(reference)
        if values.size == 0:
            raise InvalidInput("reference has no values to compare.", field="reference")
        self.numeric_ = values.dtype.kind in "fiu"
        if self.numeric_:
            finite = values[np.isfinite(values.astype(float))].astype(float)
            if finite.size == 0:
                raise InvalidInput("reference has no finite values to bin.", field="reference")
            self.bin_edges_ = np.unique(np.quantile(finite, np.linspace(0, 1, self.bins + 1)[1:-1]))
        else:
            labels = ["<missing>" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
            self.categories_ = np.unique(np.array(labels, dtype=object))
        self.reference_counts_ = self._counts(values)
        return self

    def _compare(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        if not hasattr(self, "reference_counts_"):
            raise NotFittedError(f"{type(self).__name__}.score called before fit(reference).")
        cur = self._counts(np.asarray(current))
        if cur.sum() == 0:
            raise InvalidInput("current has no values to compare.", field="current")
        ref = self.reference_counts_
        table = np.vstack([ref, cur])
        table = table[:, table.sum(axis=0) > 0]
        p = 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table, correction=False)[1])
        return ref / ref.sum(), cur / cur.sum(), p


class PSI(_Binned):
    """Population Stability Index: ``Σ (cur − ref) · ln(cur / ref)`` over the reference's bins.

    >>> rng = np.random.default_rng(0)
    >>> psi = PSI(bins=10).fit(rng.normal(size=5000))
    >>> round(psi.score(rng.normal(size=5000)).statistic, 3) < 0.01
    True
    >>> round(psi.score(rng.normal(0.5, size=5000)).statistic, 2)
    0.25
    """

    name = "psi"

    def score(self, current: np.ndarray) -> TestResult:
        ref, cur, p = self._compare(current)
        ref, cur = np.maximum(ref, _EPS), np.maximum(cur, _EPS)
        value = float(np.sum((cur - ref) * np.log(cur / ref)))
        return TestResult(self.name, value, p, value)


class JensenShannon(_Binned):
    """Jensen–Shannon distance (base 2, so within [0, 1]) between the binned distributions (SciPy's)."""

    name = "jensen_shannon"

    def score(self, current: np.ndarray) -> TestResult:
        ref, cur, p = self._compare(current)
        value = float(jensenshannon(ref, cur, base=2))
        return TestResult(self.name, value, p, value)
