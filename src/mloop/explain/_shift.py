"""Which input columns drive a shift in a model's predictions between two sets of rows. Attributions add up to the
output minus one base value, so the change in the mean output between a reference and a window is exactly the sum,
over columns, of the change in their mean attribution: each column's share of the shift is measured, not guessed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mloop.explain._explain import explainer_of


@dataclass(frozen=True)
class ColumnShift:
    """One column: its mean attribution in the reference and in the window, the change, and its mean |attribution|
    in each (how much the model leans on it)."""

    name: str
    reference: float
    window: float
    shift: float
    reference_abs: float
    window_abs: float


@dataclass(frozen=True)
class AttributionShift:
    """``output_shift`` (window mean output − reference mean output, on ``output``'s scale) = Σ ``columns[i].shift``
    (up to float rounding); columns sorted by |shift|, largest first."""

    method: str
    output: str
    rows_reference: int
    rows_window: int
    output_shift: float
    columns: list[ColumnShift]

    def drivers(self, k: int = 3) -> list[str]:
        """The ``k`` columns that moved the mean output most."""
        return [c.name for c in self.columns[:k]]

    def to_dict(self) -> dict[str, Any]:
        total = sum(abs(c.shift) for c in self.columns) or 1.0
        return {
            "method": self.method, "output": self.output, "rows_reference": self.rows_reference, "rows_window": self.rows_window,
            "output_shift": self.output_shift,
            "columns": [{**vars(c), "share": abs(c.shift) / total} for c in self.columns],
        }


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(rows, random_state=seed) if len(frame) > rows else frame


def attribution_shift(model: Any, reference: pd.DataFrame, window: pd.DataFrame, *, columns: list[str] | None = None,
                      max_rows: int = 2000, seed: int = 0) -> AttributionShift:
    """Attribute the change in ``model``'s mean output from ``reference`` rows to ``window`` rows to its input columns
    (at most ``max_rows`` of each, sampled)."""
    explainer = explainer_of(model, columns=columns)
    ref = explainer.explain(_sample(reference[explainer.columns], max_rows, seed).reset_index(drop=True))
    win = explainer.explain(_sample(window[explainer.columns], max_rows, seed).reset_index(drop=True))
    ref_mean, win_mean = ref.attributions.mean(axis=0), win.attributions.mean(axis=0)
    ref_abs, win_abs = np.abs(ref.attributions).mean(axis=0), np.abs(win.attributions).mean(axis=0)
    shifts = [ColumnShift(c, float(ref_mean[i]), float(win_mean[i]), float(win_mean[i] - ref_mean[i]), float(ref_abs[i]), float(win_abs[i]))
              for i, c in enumerate(explainer.columns)]
    shifts.sort(key=lambda c: -abs(c.shift))
    output_shift = float(win.outputs.mean() - ref.outputs.mean())
    return AttributionShift(ref.method, ref.output, len(ref.outputs), len(win.outputs), output_shift, shifts)
