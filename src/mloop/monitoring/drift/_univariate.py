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


_EXACT_MAX_N = 10_000  # SciPy's ``ks_2samp`` computes the exact p-value up to this size, asymptotic above


def _right_counts(values: np.ndarray) -> np.ndarray:
    """``searchsorted(values, values, side="right")`` for a sorted array, in linear time."""
    ends = np.append(np.flatnonzero(values[1:] != values[:-1]) + 1, len(values))
    return np.repeat(ends, np.diff(ends, prepend=0))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided KS D between two sorted samples: the largest CDF gap over the union of points, computed
    as SciPy does (same counts, same divisions, same points) so that D is bit-identical, but with the
    reference sorted once (at ``fit``), no concatenation and linear-time self-counts."""
    n1, n2 = len(reference), len(current)
    at_ref = _right_counts(reference) / n1 - np.searchsorted(current, reference, side="right") / n2
    at_cur = np.searchsorted(reference, current, side="right") / n1 - _right_counts(current) / n2
    d_max = max(float(at_ref.max()), float(at_cur.max()))
    d_min = float(np.clip(-min(float(at_ref.min()), float(at_cur.min())), 0, 1))
    return d_min if d_min > d_max else d_max


class KSTest:
    """Two-sample Kolmogorov–Smirnov test for a numeric feature; effect size is D.

    Up to 10,000 values a side this is SciPy's ``ks_2samp`` (exact p-value); above, D is computed against
    the reference sorted once at ``fit`` and the p-value is SciPy's asymptotic one (``kstwo.sf`` at the
    effective size), exactly as ``ks_2samp`` would give, in about a third of its time.

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
        self.missing_ = len(reference) - len(self.reference_)
        return self

    def score(self, current: np.ndarray) -> TestResult:
        if not hasattr(self, "reference_"):
            raise NotFittedError("KSTest.score called before fit(reference).")
        cur = np.sort(_finite(current, "current"))
        n1, n2 = len(self.reference_), len(cur)
        if max(n1, n2) <= _EXACT_MAX_N:
            res = stats.ks_2samp(self.reference_, cur)
            d, p = float(res.statistic), float(res.pvalue)
        else:
            d = ks_statistic(self.reference_, cur)
            m, n = sorted([float(n1), float(n2)], reverse=True)
            p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
        return TestResult(self.name, d, p, d)
