"""Two-sample tests for one feature, estimator-style: ``fit(reference)`` then ``score(current)``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def ks_p_value(d: float, n1: int, n2: int) -> float:
    """Two-sided p-value of a two-sample KS statistic: the Kolmogorov distribution at the effective size
    ``n1·n2/(n1+n2)`` with Stephens' small-sample correction, from ``scipy.special`` (a tenth of the import of
    ``scipy.stats``). Against SciPy's exact ``ks_2samp`` it is within 0.01 for 50 values a side or more, and
    within a factor 1.3 deep in the tail (p ≈ 1e-6) from 100 a side.

    >>> round(ks_p_value(0.1, 1000, 1000), 4)
    0.0001
    """
    from scipy.special import kolmogorov

    root = math.sqrt(n1 * n2 / (n1 + n2))
    return float(min(1.0, max(0.0, kolmogorov((root + 0.12 + 0.11 / root) * d))))


class KSTest:
    """Two-sample Kolmogorov–Smirnov test for a numeric feature; effect size is D.

    D is computed against the reference sorted once at ``fit`` (the same counts and divisions as SciPy's
    ``ks_2samp``, so bit-identical) and its p-value by :func:`ks_p_value`.

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
        d = ks_statistic(self.reference_, cur)
        return TestResult(self.name, d, ks_p_value(d, len(self.reference_), len(cur)), d)
