"""Binned comparisons over the reference's quantile bins (or its categories): the chi-square test of
homogeneity, PSI and Jensen–Shannon distance. All three share one binning; PSI and Jensen–Shannon are effect
sizes whose p-value is the chi-square test on the same bins, so they share a multiple-testing correction."""

from __future__ import annotations

from typing import Self

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._univariate import TestResult

_EPS = 1e-4  # floor for empty bins, so that logarithms stay finite


class _Binned:
    """Quantile bins for numbers (missing values get a bin of their own), one bin per category otherwise."""

    name = "binned"
    categorical = False  # True: every value is a category, whatever its dtype

    def __init__(self, *, bins: int = 10) -> None:
        if not 2 <= bins <= 1000:
            raise InvalidInput(f"bins must be within [2, 1000], got {bins}.", field="bins")
        self.bins = bins

    @staticmethod
    def _labels(values: np.ndarray) -> np.ndarray:
        return np.array(["<missing>" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values], dtype=object)

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of ``values`` per bin, in the order of ``reference_counts_`` (missing or unseen values last)."""
        if self.numeric_:
            arr = np.asarray(values, dtype=float)
            missing = np.isnan(arr)
            idx = np.searchsorted(self.bin_edges_, arr[~missing], side="right")
            counts = np.bincount(idx, minlength=len(self.bin_edges_) + 1).astype(float)
            return np.append(counts, missing.sum())
        labels = self._labels(values)
        known = np.isin(labels, self.categories_)
        idx = np.searchsorted(self.categories_, labels[known])
        counts = np.bincount(idx, minlength=len(self.categories_)).astype(float)
        return np.append(counts, (~known).sum())

    def fit(self, reference: np.ndarray) -> Self:
        values = np.asarray(reference)
        if values.size == 0:
            raise InvalidInput("reference has no values to compare.", field="reference")
        self.numeric_ = not self.categorical and values.dtype.kind in "fiu"
        if self.numeric_:
            finite = values[np.isfinite(values.astype(float))].astype(float)
            if finite.size == 0:
                raise InvalidInput("reference has no finite values to bin.", field="reference")
            self.bin_edges_ = np.unique(np.quantile(finite, np.linspace(0, 1, self.bins + 1)[1:-1]))
        else:
            self.categories_ = np.unique(self._labels(values))
        self.reference_counts_ = self.counts(values)
        return self

    def _table(self, current: np.ndarray) -> np.ndarray:
        """Reference and current counts as a 2 × bins table, bins empty on both sides dropped."""
        if not hasattr(self, "reference_counts_"):
            raise NotFittedError(f"{type(self).__name__}.score called before fit(reference).")
        cur = self.counts(np.asarray(current))
        if cur.sum() == 0:
            raise InvalidInput("current has no values to compare.", field="current")
        table = np.vstack([self.reference_counts_, cur])
        return table[:, table.sum(axis=0) > 0]

    @staticmethod
    def _chi2(table: np.ndarray) -> tuple[float, float]:
        if table.shape[1] < 2:
            return 0.0, 1.0
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        return float(chi2), float(p)

    def _compare(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        table = self._table(current)
        _, p = self._chi2(table)
        return table[0] / table[0].sum(), table[1] / table[1].sum(), p


class ChiSquareTest(_Binned):
    """Chi-square test of homogeneity for a categorical feature; effect size is Cramér's V.

    Categories unseen in the reference are pooled into one level; missing values are a level too.

    >>> ref = np.array(["a"] * 500 + ["b"] * 500, dtype=object)
    >>> chi = ChiSquareTest().fit(ref)
    >>> chi.score(np.array(["a"] * 480 + ["b"] * 520, dtype=object)).p_value > 0.05
    True
    >>> round(chi.score(np.array(["a"] * 800 + ["b"] * 200, dtype=object)).effect_size, 2)
    0.31
    """

    name = "chi_square"
    categorical = True

    def score(self, current: np.ndarray) -> TestResult:
        table = self._table(current)
        chi2, p = self._chi2(table)
        cramers_v = float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))) if table.shape[1] >= 2 else 0.0
        return TestResult(self.name, chi2, p, cramers_v)


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
