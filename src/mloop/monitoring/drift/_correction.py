"""Multiple-testing corrections: Benjamini–Hochberg (default) and Bonferroni."""

from __future__ import annotations

import numpy as np

from mloop.errors import InvalidInput

CORRECTIONS = ("bh", "bonferroni", "none")


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (the same as ``scipy.stats.false_discovery_control(p, method='bh')``).

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.2])).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.2]
    """
    p = np.asarray(p_values, dtype=float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.clip(ranked, 0.0, 1.0)
    return out


def bonferroni(p_values: np.ndarray) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    return np.clip(p * p.size, 0.0, 1.0)


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float)
    raise InvalidInput(f"Unknown correction {method!r}. Valid: {', '.join(CORRECTIONS)}.", field="correction")
