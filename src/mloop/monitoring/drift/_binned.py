"""Binned comparisons over the reference's quantile bins (or its categories): the chi-square test of
homogeneity, PSI and Jensen–Shannon distance. All three share one binning; PSI and Jensen–Shannon are effect
sizes whose p-value is the chi-square test on the same bins, so they share a multiple-testing correction."""

from __future__ import annotations

import math
from typing import Self

import numpy as np

from mloop.data._columns import Coded, Column, coded, is_numeric
from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._univariate import TestResult

_EPS = 1e-4  # floor for empty bins, so that logarithms stay finite


_MISSING = "<missing>"
_OTHER = "<other>"


def _labelled(values: Column) -> tuple[np.ndarray, list[str]]:
    """Codes into the labels of the distinct values, missing values being one label of their own."""
    found = coded(values)
    codes, labels = found.codes, list(found.labels)
    if len(codes) and codes.min() < 0:
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(_MISSING)
    return codes, labels


def chi2_sf(x: float, df: int) -> float:
    """``P(χ²_df > x)``, the regularised upper incomplete gamma ``Q(df/2, x/2)`` (what ``scipy.special.chdtrc``
    computes): its power series below ``a + 1``, Lentz's continued fraction above, each to double precision.

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    """
    a, z = df / 2.0, x / 2.0
    if z <= 0.0:
        return 1.0
    log_front = -z + a * math.log(z) - math.lgamma(a)
    if z < a + 1.0:  # P by its series; Q = 1 − P is not small here, so no precision is lost
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-17:
            n += 1.0
            term *= z / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = z + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)


class _Binned:
    """Quantile bins for numbers (missing values get a bin of their own), one bin per category otherwise.

    Categories are capped at ``max_categories``: beyond it the reference's rarest levels are pooled with
    levels never seen in the reference, so an ID-like column gives a test with sound expected counts
    instead of one cell per row.
    """

    name = "binned"
    measure = "binned"
    categorical = False  # True: every value is a category, whatever its dtype

    def __init__(self, *, bins: int = 10, max_categories: int = 50) -> None:
        if not 2 <= bins <= 1000:
            raise InvalidInput(f"bins must be within [2, 1000], got {bins}.", field="bins")
        if not 2 <= max_categories <= 10_000:
            raise InvalidInput(f"max_categories must be within [2, 10000], got {max_categories}.", field="max_categories")
        self.bins = bins
        self.max_categories = max_categories

    def counts(self, values: Column) -> np.ndarray:
        """Counts of ``values`` per bin, in the order of ``reference_counts_`` (missing, unseen or pooled values last)."""
        if self.numeric_:
            if not is_numeric(values):
                raise InvalidInput("expected numbers, got categories: compare this feature with chi_square.", field="current")
            arr = np.asarray(values, dtype=float)
            missing = np.isnan(arr)
            idx = np.searchsorted(self.bin_edges_, arr[~missing], side="right")
            counts = np.bincount(idx, minlength=len(self.bin_edges_) + 1).astype(float)
            return np.append(counts, missing.sum())
        codes, labels = _labelled(values)
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

    def fit(self, reference: Column) -> Self:
        values = reference if isinstance(reference, Coded) else np.asarray(reference)
        if len(values) == 0:
            raise InvalidInput("reference has no values to compare.", field="reference")
        self.numeric_ = not self.categorical and is_numeric(values)
        if self.numeric_:
            numbers = np.asarray(values, dtype=float)
            finite = numbers[np.isfinite(numbers)]
            if finite.size == 0:
                raise InvalidInput("reference has no finite values to bin.", field="reference")
            self.bin_edges_ = np.unique(np.quantile(finite, np.linspace(0, 1, self.bins + 1)[1:-1]))
        else:
            codes, labels = _labelled(values)
            frequency = np.bincount(codes, minlength=len(labels))
            keep = np.argsort(-frequency, kind="stable")[: self.max_categories - 1] if len(labels) > self.max_categories else np.arange(len(labels))
            self.categories_ = np.array(sorted(labels[i] for i in keep), dtype=object)
            self._slots = {label: i for i, label in enumerate(self.categories_)}
            self.pooled_ = len(labels) - len(keep)
        self.reference_counts_ = self.counts(values)
        return self

    def _table(self, current: Column) -> np.ndarray:
        """Reference and current counts as a 2 × bins table, bins empty on both sides dropped."""
        if not hasattr(self, "reference_counts_"):
            raise NotFittedError(f"{type(self).__name__}.score called before fit(reference).")
        cur = self.counts(current)
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
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        chi2 = float(np.sum((table - expected) ** 2 / expected))
        return chi2, chi2_sf(chi2, table.shape[1] - 1)

    def _compare(self, current: Column) -> tuple[np.ndarray, np.ndarray, float]:
        table = self._table(current)
        _, p = self._chi2(table)
        return table[0] / table[0].sum(), table[1] / table[1].sum(), p


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ``½ Σ |p − q|`` between two distributions over the same bins: the share of
    rows that would have to change category to turn one into the other (within [0, 1]).

    >>> total_variation(np.array([0.5, 0.5]), np.array([0.6, 0.4]))
    0.1
    """
    return round(float(np.abs(p / p.sum() - q / q.sum()).sum() / 2), 15)


class ChiSquareTest(_Binned):
    """Chi-square test of homogeneity for a categorical feature; effect size is the total variation distance
    between the two distributions of categories.

    Categories unseen in the reference are pooled into one level; missing values are a level too.

    >>> ref = np.array(["a"] * 500 + ["b"] * 500, dtype=object)
    >>> chi = ChiSquareTest().fit(ref)
    >>> chi.score(np.array(["a"] * 480 + ["b"] * 520, dtype=object)).p_value > 0.05
    True
    >>> chi.score(np.array(["a"] * 800 + ["b"] * 200, dtype=object)).effect_size
    0.3
    """

    name = "chi_square"
    measure = "total_variation"
    categorical = True

    def score(self, current: Column) -> TestResult:
        table = self._table(current)
        chi2, p = self._chi2(table)
        return TestResult(self.name, chi2, p, total_variation(table[0], table[1]), self.measure)


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
    measure = "psi"

    def score(self, current: Column) -> TestResult:
        ref, cur, p = self._compare(current)
        ref, cur = np.maximum(ref, _EPS), np.maximum(cur, _EPS)
        value = float(np.sum((cur - ref) * np.log(cur / ref)))
        return TestResult(self.name, value, p, value, self.measure)


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
    measure = "jensen_shannon"

    def score(self, current: Column) -> TestResult:
        ref, cur, p = self._compare(current)
        value = js_distance(ref, cur)
        return TestResult(self.name, value, p, value, self.measure)
