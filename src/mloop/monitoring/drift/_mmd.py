"""Maximum mean discrepancy with a permutation test: one multivariate test over many numeric features."""

from __future__ import annotations

import numpy as np

from mloop.errors import InvalidInput, NotFittedError
from mloop.monitoring.drift._univariate import TestResult


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T, 0.0)


def _mmd2(k: np.ndarray, n: int) -> float:
    """Unbiased MMD² from the joint kernel matrix whose first ``n`` rows are one sample."""
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    m = k.shape[0] - n
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean()
    )


class MMDTest:
    """RBF-kernel MMD between reference and current rows (features standardised by the reference; bandwidth by
    the median heuristic), with a seeded permutation test. At most ``max_samples`` rows per side are used.

    >>> rng = np.random.default_rng(0)
    >>> mmd = MMDTest(n_permutations=200, seed=0).fit(rng.normal(size=(300, 3)))
    >>> mmd.score(rng.normal(size=(300, 3))).p_value > 0.05
    True
    >>> mmd.score(rng.normal(0.4, size=(300, 3))).p_value < 0.01
    True
    """

    name = "mmd"

    def __init__(self, *, n_permutations: int = 200, max_samples: int = 500, seed: int = 0) -> None:
        if not 10 <= n_permutations <= 100_000:
            raise InvalidInput(f"n_permutations must be within [10, 100000], got {n_permutations}.", field="n_permutations")
        if max_samples < 10:
            raise InvalidInput(f"max_samples must be at least 10, got {max_samples}.", field="max_samples")
        self.n_permutations = n_permutations
        self.max_samples = max_samples
        self.seed = seed

    def _rows(self, values: np.ndarray, what: str, rng: np.random.Generator) -> np.ndarray:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        arr = arr[np.all(np.isfinite(arr), axis=1)]
        if len(arr) < 2:
            raise InvalidInput(f"{what} needs at least 2 rows with finite values.", field=what)
        if len(arr) > self.max_samples:
            arr = arr[rng.choice(len(arr), self.max_samples, replace=False)]
        return arr

    def fit(self, reference: np.ndarray) -> MMDTest:
        rng = np.random.default_rng(self.seed)
        ref = self._rows(reference, "reference", rng)
        self.mean_ = ref.mean(axis=0)
        self.std_ = np.where(ref.std(axis=0) > 0, ref.std(axis=0), 1.0)
        self.reference_ = (ref - self.mean_) / self.std_
        d = _sq_dists(self.reference_, self.reference_)
        self.bandwidth_ = float(np.sqrt(np.median(d[d > 0]) / 2.0)) if np.any(d > 0) else 1.0
        return self

    def score(self, current: np.ndarray) -> TestResult:
        if not hasattr(self, "reference_"):
            raise NotFittedError("MMDTest.score called before fit(reference).")
        rng = np.random.default_rng(self.seed + 1)
        raw = self._rows(current, "current", rng)
        if raw.shape[1] != self.reference_.shape[1]:
            raise InvalidInput(f"current has {raw.shape[1]} features, the reference {self.reference_.shape[1]}.", field="current")
        cur = (raw - self.mean_) / self.std_
        joint = np.vstack([self.reference_, cur])
        k = np.exp(-_sq_dists(joint, joint) / (2.0 * self.bandwidth_**2))
        n = len(self.reference_)
        observed = _mmd2(k, n)
        exceed = 0
        for _ in range(self.n_permutations):
            perm = rng.permutation(len(joint))
            exceed += _mmd2(k[np.ix_(perm, perm)], n) >= observed
        p = (1 + exceed) / (1 + self.n_permutations)
        effect = float(np.sqrt(max(observed, 0.0)))
        return TestResult(self.name, observed, p, effect, "mmd")
