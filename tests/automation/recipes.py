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


def waits(frame: pd.DataFrame, target: str, *, folder: str, **params: Any) -> Any:
    """Say that training began (``folder/started``), then wait for ``folder/go`` before training: a training step a
    test can kill a process in the middle of."""
    import time
    from pathlib import Path

    Path(folder, "started").touch()
    deadline = time.monotonic() + 120
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return tabular(frame, target, **params)
