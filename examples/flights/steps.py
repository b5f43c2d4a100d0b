"""The flights example's own steps: the demo's first two months, and its recipe without the time columns."""

from __future__ import annotations

from typing import Any

import pandas as pd

TIME_COLUMNS = ["departure", "month"]


def first_months(frame: pd.DataFrame, months: int = 2) -> pd.DataFrame:
    """The flights of the first ``months`` months of 2013 (what the demo trains v1 on)."""
    return frame[frame["month"] <= months].reset_index(drop=True)


def without_time(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs and label: the departure time and month only order and select the rows."""
    return frame.drop(columns=TIME_COLUMNS)


def tabular(frame: pd.DataFrame, target: str, **params: Any) -> Any:
    """mloop's gradient-boosted pipeline on every column but the time ones."""
    from mloop.training import tabular as fit

    return fit(without_time(frame), target, **params)
