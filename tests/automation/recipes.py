"""Training recipes the loop tests name by import path, as a user's policy would."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mloop.training import tabular


def shuffled(frame: pd.DataFrame, target: str, **params: Any) -> Any:
    """A recipe that learns nothing: the labels are shuffled first (the challenger that must not go live)."""
    rng = np.random.default_rng(0)
    broken = frame.assign(**{target: rng.permutation(frame[target].to_numpy())})
    return tabular(broken, target, **params)


def explodes(frame: pd.DataFrame, target: str, **params: Any) -> Any:
    raise RuntimeError("the recipe's own bug")
