"""Exact path-dependent TreeSHAP over leaves with boxes, compiled with Numba.

For one leaf with path features D (d of them), zero fractions z and value v, a row follows the leaf's region at
the features O ⊆ D. Its contribution to feature k is

    v · (o_k − z_k) · Σ_{S ⊆ O∖{k}} |S|!(d−|S|−1)!/d! · Π_{j ∈ D∖{k}∖S} z_j,

which is the same sum ``shap.TreeExplainer`` computes by extending and unwinding paths. With Q(t) = Π_{j∈O}(t + z_j)
it is ``v(1 − z_k)·Π_{j∉O} z_j · W(Q/(t + z_k))`` for k ∈ O and ``−v·Π_{j∉O} z_j · W(Q)`` for k ∉ O, W weighting the
coefficients — O(d²) per pattern. A row's contribution depends on the row only through O, so each leaf computes it
once per pattern its rows show (FastTreeSHAP's observation) and every other row with that pattern adds it: the
cost per row and leaf is O(d), not O(d²). Rows are split in chunks over the cores.
"""

from __future__ import annotations

import threading
from math import lgamma
from typing import Any

import numba
import numpy as np

from mloop.explain._trees import TreeEnsemble

MEMO_BITS = 12  # patterns of up to 12 path features are remembered per chunk (4096 slots)
MEMO_MIN_ROWS = 16  # fewer rows than this in a chunk: compute each row directly
_PARALLEL_ROWS = 512  # fewer rows: one chunk, so one thread does the work
_parallel_lock = threading.Lock()  # Numba's default threading layer is not re-entrant across Python threads


def shapley_weights(d_max: int) -> np.ndarray:
    """``w[d, s] = s!(d−s−1)!/d!``: the Shapley weight of a coalition of s among d players, for one more."""
    w = np.zeros((d_max + 1, d_max + 1))
    for d in range(1, d_max + 1):
        for s in range(d):
            w[d, s] = np.exp(lgamma(s + 1) + lgamma(d - s) - lgamma(d + 1))
    return w


@numba.njit(cache=True)
def _contributions(o: Any, zero: Any, start: int, d: int, v: float, w: Any, poly: Any, quot: Any, out: Any) -> None:
    """Each path feature's contribution for one follow pattern ``o`` (see the module's docstring)."""
    poly[0] = 1.0
    degree = 0
    outside = 1.0
    for j in range(d):
        z = zero[start + j]
        if o[j]:
            poly[degree + 1] = poly[degree]
            for i in range(degree, 0, -1):
                poly[i] = poly[i - 1] + z * poly[i]
            poly[0] = z * poly[0]
            degree += 1
        else:
            outside *= z
    total = 0.0
    for s in range(degree + 1):
        total += w[d, s] * poly[s]
    for j in range(d):
        if o[j]:
            z = zero[start + j]
            quot[degree - 1] = poly[degree]
            for i in range(degree - 1, 0, -1):
                quot[i - 1] = poly[i] - z * quot[i]
            acc = 0.0
            for s in range(degree):
                acc += w[d, s] * quot[s]
            out[j] = v * (1.0 - z) * outside * acc
        else:
            out[j] = -v * outside * total


@numba.njit(cache=True, inline="always")
def _follows(x: Any, r: int, i: int, feature: Any, lo: Any, hi: Any, nan: Any, cat: Any, sets: Any) -> bool:
    value = x[r, feature[i]]
    if np.isnan(value):
        return bool(nan[i])
    c = cat[i]
    if c >= 0:
        if value < 0 or value >= 256:  # out of range: treated as missing
            return bool(nan[i])
        code = int(value)
        return bool((sets[c, code >> 5] >> np.uint32(code & 31)) & np.uint32(1))
    return bool(lo[i] < value <= hi[i])


@numba.njit(cache=True, parallel=True)
def _kernel(x: Any, phi: Any, raw: Any, values: Any, starts: Any, feature: Any, lo: Any, hi: Any, nan: Any, cat: Any, zero: Any,
            sets: Any, w: Any, d_max: int, chunk: int) -> None:
    n = x.shape[0]
    n_chunks = (n + chunk - 1) // chunk
    bits = min(d_max, MEMO_BITS)
    width = max(d_max, 1)
    for c in numba.prange(n_chunks):
        r0 = c * chunk
        r1 = min(n, r0 + chunk)
        memo = (r1 - r0) >= MEMO_MIN_ROWS
        slots = (1 << bits) if memo else 1
        stamp = np.full(slots, -1, dtype=np.int64)
        table = np.empty((slots, width))
        o = np.zeros(width, dtype=np.uint8)
        poly = np.empty(width + 1)
        quot = np.empty(width + 1)
        out = np.empty(width)
        for leaf in range(values.shape[0]):
            v = values[leaf]
            start = starts[leaf]
            d = starts[leaf + 1] - start
            if d == 0:  # a tree that is one leaf: every row reaches it
                for r in range(r0, r1):
                    raw[r] += v
                continue
            if v == 0.0:
                continue
            cached = memo and d <= bits
            for r in range(r0, r1):
                pattern = 0
                reached = True
                for j in range(d):
                    f = _follows(x, r, start + j, feature, lo, hi, nan, cat, sets)
                    o[j] = f
                    if f:
                        pattern |= 1 << j
                    else:
                        reached = False
                if reached:
                    raw[r] += v
                if cached:
                    if stamp[pattern] != leaf:
                        _contributions(o, zero, start, d, v, w, poly, quot, out)
                        for j in range(d):
                            table[pattern, j] = out[j]
                        stamp[pattern] = leaf
                    for j in range(d):
                        phi[r, feature[start + j]] += table[pattern, j]
                else:
                    _contributions(o, zero, start, d, v, w, poly, quot, out)
                    for j in range(d):
                        phi[r, feature[start + j]] += out[j]


def tree_shap(ensemble: TreeEnsemble, x: np.ndarray, output: int = 0) -> np.ndarray:
    """Exact path-dependent SHAP values ``(rows, features)`` of output ``output`` for the rows of ``x`` (in the
    estimator's feature space). Each row's values sum to its raw output minus ``ensemble.expected_value()``."""
    return tree_shap_and_outputs(ensemble, x, output)[0]


@numba.njit(cache=True, parallel=True)
def _outputs_kernel(x: Any, raw: Any, values: Any, starts: Any, feature: Any, lo: Any, hi: Any, nan: Any, cat: Any,
                    sets: Any) -> None:
    """Each row's sum of the leaves it reaches: a leaf is reached when the row follows every path feature (the first
    that fails ends the check)."""
    for r in numba.prange(x.shape[0]):
        total = 0.0
        for leaf in range(values.shape[0]):
            reached = True
            for i in range(starts[leaf], starts[leaf + 1]):
                if not _follows(x, r, i, feature, lo, hi, nan, cat, sets):
                    reached = False
                    break
            if reached:
                total += values[leaf]
        raw[r] += total


def tree_outputs(ensemble: TreeEnsemble, x: np.ndarray, output: int = 0) -> np.ndarray:
    """The raw output ``output`` of the ensemble's trees for the rows of ``x``, in float64 (base offset included)."""
    if np.ndim(x) != 2 or np.shape(x)[1] != ensemble.n_features:
        raise ValueError(f"expected rows of {ensemble.n_features} features, got shape {np.shape(x)}")
    rows = ensemble.features(x)
    raw = np.full(rows.shape[0], float(ensemble.base_offset[output]))
    with _parallel_lock:
        _outputs_kernel(rows, raw, np.ascontiguousarray(ensemble.leaf_value[:, output]), ensemble.leaf_start, ensemble.path_feature,
                        ensemble.path_lo, ensemble.path_hi, ensemble.path_nan, ensemble.path_cat, ensemble.cat_sets)
    return raw


def tree_shap_and_outputs(ensemble: TreeEnsemble, x: np.ndarray, output: int = 0, *,
                          weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values and the raw outputs they explain, in one pass over the leaves."""
    if np.ndim(x) != 2 or np.shape(x)[1] != ensemble.n_features:
        raise ValueError(f"expected rows of {ensemble.n_features} features, got shape {np.shape(x)}")
    x = ensemble.features(x)
    d_max = ensemble.max_path
    w = shapley_weights(d_max) if weights is None else weights
    phi = np.zeros((x.shape[0], ensemble.n_features))
    raw = np.full(x.shape[0], float(ensemble.base_offset[output]))
    values = np.ascontiguousarray(ensemble.leaf_value[:, output])
    args = (values, ensemble.leaf_start, ensemble.path_feature, ensemble.path_lo, ensemble.path_hi, ensemble.path_nan,
            ensemble.path_cat, ensemble.path_zero, ensemble.cat_sets, w, d_max)
    rows = x.shape[0]
    chunk = max(rows, 1) if rows < _PARALLEL_ROWS else max(64, -(-rows // (4 * numba.get_num_threads())))
    with _parallel_lock:
        _kernel(x, phi, raw, *args, chunk)
    return ensemble.to_inputs(phi), raw
