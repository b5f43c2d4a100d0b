"""Parity between a model and its ONNX twin: both score the same rows; the largest difference decides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Parity:
    """The largest absolute difference between native and twin outputs, and where it happened."""

    max_abs_diff: float
    row: int
    column: int
    rows: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff) and self.max_abs_diff <= self.tolerance)

    def describe(self) -> str:
        return f"max |native - onnx| = {self.max_abs_diff:.3g} at row {self.row}, output {self.column} over {self.rows} rows (tolerance {self.tolerance:g})"


def compare(native: Any, twin: Any, tolerance: float) -> Parity:
    a = np.asarray(native, dtype=float).reshape(len(native), -1)
    b = np.asarray(twin, dtype=float).reshape(len(twin), -1)
    if a.shape != b.shape:
        return Parity(float("inf"), 0, 0, len(a), tolerance)
    diff = np.abs(a - b)
    diff[np.isnan(a) & np.isnan(b)] = 0.0
    diff[np.isnan(diff)] = np.inf
    row, col = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return Parity(float(diff[row, col]), int(row), int(col), len(a), tolerance)
