"""Binned comparisons over the reference's quantile bins (or its categories): the chi-square test of
homogeneity, PSI and Jensen–Shannon distance. All three share one binning; PSI and Jensen–Shannon are effect
sizes whose p-value is the chi-square test on the same bins, so they share a multiple-testing correction."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._univariate import TestResult

_EPS = 1e-4  # floor for empty bins, so that logarithms stay finite


_MISSING = "<missing>"
_OTHER = "<other>"


def _values(values: np.ndarray | pd.Series) -> np.ndarray | pd.Series:
    """A Series stays a Series (Arrow-backed strings factorize without a conversion); anything else becomes an array."""
    return values if isinstance(values, pd.Series) else np.asarray(values)


def _factorize(values: np.ndarray | pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes into the labels of the distinct values (missing values are one label of their own): one hash
    pass over the values, Python only over the distinct ones."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    labels = [str(u) for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(_MISSING)
    return codes, labels


class _Binned:
    """Quantile bins for numbers (missing values get a bin of their own), one bin per category otherwise.

    Categories are capped at ``max_categories``: beyond it the reference's rarest levels are pooled with
    levels never seen in the reference, so an ID-like column gives a test with sound expected counts
    instead of one cell per row.
    """

    name = "binned"
    categorical = False  # True: every value is a category, whatever its dtype

    def __init__(self, *, bins: int = 10, max_categories: int = 50) -> None:
        if not 2 <= bins <= 1000:
            raise InvalidInput(f"bins must be within [2, 1000], got {bins}.", field="bins")
        if not 2 <= max_categories <= 10_000:
            raise InvalidInput(f"max_categories must be within [2, 10000], got {max_categories}.", field="max_categories")
        self.bins = bins
        self.max_categories = max_categories

    def counts(self, values: np.ndarray | pd.Series) -> np.ndarray:
        """Counts of ``values`` per bin, in the order of ``reference_counts_`` (missing, unseen or pooled values last)."""
        if self.numeric_:
            arr = np.asarray(values, dtype=float)
            missing = np.isnan(arr)
            idx = np.searchsorted(self.bin_edges_, arr[~missing], side="right")
            counts = np.bincount(idx, minlength=len(self.bin_edges_) + 1).astype(float)
            return np.append(counts, missing.sum())
        codes, labels = _factorize(_values(values))
        other = len(self.categories_)
        slot = np.array([self._slots.get(label, other) for label in labels], dtype=np.int64)
        return np.bincount(slot[codes], minlength=other + 1).astype(float) if len(codes) else np.zeros(other + 1)

    @classmethod
    def from_sorted(cls, finite: np.ndarray, *, missing: int = 0, bins: int = 10) -> Self:
        """A numeric binner fitted on already sorted finite values (and a count of missing ones), without
        another pass over the data: how reports draw the histogram of a KS-tested feature."""
        binner = cls(bins=bins)
        binner.numeric_ = True
        binner.bin_edges_ = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        per_bin = np.diff(np.searchsorted(finite, binner.bin_edges_, side="right"), prepend=0, append=len(finite))
        binner.reference_counts_ = np.append(per_bin, missing).astype(float)
        return binner

    def bin_labels(self) -> list[str]:
        """One readable label per count of ``reference_counts_``."""
        if self.numeric_:
            edges = [float(e) for e in self.bin_edges_]
            inner = [f"{a:.3g} – {b:.3g}" for a, b in zip(edges, edges[1:], strict=False)]
            return [f"≤ {edges[0]:.3g}", *inner, f"> {edges[-1]:.3g}", _MISSING] if edges else ["all", _MISSING]
        return [*[str(c) for c in self.categories_], _OTHER]

    def fit(self, reference: np.ndarray | pd.Series) -> Self:
        values = _values(reference)
        if len(values) == 0:
            raise InvalidInput("reference has no values to compare.", field="reference")
        self.numeric_ = not self.categorical and values.dtype.kind in "fiu"
        if self.numeric_:
            numbers = np.asarray(values, dtype=float)
            finite = numbers[np.isfinite(numbers)]
            if finite.size == 0:
                raise InvalidInput("reference has no finite values to bin.", field="reference")
            self.bin_edges_ = np.unique(np.quantile(finite, np.linspace(0, 1, self.bins + 1)[1:-1]))
        else:
            codes, labels = _factorize(values)
            frequency = np.bincount(codes, minlength=len(labels))
            keep = np.argsort(-frequency, kind="stable")[: self.max_categories - 1] if len(labels) > self.max_categories else np.arange(len(labels))
            self.categories_ = np.array(sorted(labels[i] for i in keep), dtype=object)
            self._slots = {label: i for i, label in enumerate(self.categories_)}
            self.pooled_ = len(labels) - len(keep)
        self.reference_counts_ = self.counts(values)
        return self

    def _table(self, current: np.ndarray | pd.Series) -> np.ndarray:
        """Reference and current counts as a 2 × bins table, bins empty on both sides dropped."""
        if not hasattr(self, "reference_counts_"):
            raise NotFittedError(f"{type(self).__name__}.score called before fit(reference).")
        cur = self.counts(_values(current))
        if cur.sum() == 0:
            raise InvalidInput("current has no values to compare.", field="current")
        table = np.vstack([self.reference_counts_, cur])
        return table[:, table.sum(axis=0) > 0]

    @staticmethod
    def _chi2(table: np.ndarray) -> tuple[float, float]:
        """Pearson's chi-square of homogeneity on a 2 × k table without empty columns (what SciPy's
        ``chi2_contingency(correction=False)`` computes), its tail probability from ``scipy.special``."""
        if table.shape[1] < 2:
            return 0.0, 1.0
        from scipy.special import chdtrc

        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        return chi2, float(chdtrc(table.shape[1] - 1, chi2))

    def _compare(self, current: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray, float]:
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

    def score(self, current: np.ndarray | pd.Series) -> TestResult:
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

    def score(self, current: np.ndarray | pd.Series) -> TestResult:
        ref, cur, p = self._compare(current)
        ref, cur = np.maximum(ref, _EPS), np.maximum(cur, _EPS)
        value = float(np.sum((cur - ref) * np.log(cur / ref)))
        return TestResult(self.name, value, p, value)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance in base 2 (within [0, 1]) between two distributions over the same bins, as SciPy's
    ``jensenshannon(p, q, base=2)`` defines it.

    >>> js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])), js_distance(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    (1.0, 0.0)
    """
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float(np.sum(a[nonzero] * np.log2(a[nonzero] / m[nonzero])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


class JensenShannon(_Binned):
    """Jensen–Shannon distance (base 2, so within [0, 1]) between the binned distributions."""

    name = "jensen_shannon"

    def score(self, current: np.ndarray | pd.Series) -> TestResult:
        ref, cur, p = self._compare(current)
        value = js_distance(ref, cur)
        return TestResult(self.name, value, p, value)
