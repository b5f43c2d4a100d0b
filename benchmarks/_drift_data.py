"""The benchmark's tables (numpy and pandas only, so both venvs build the very same data): 20 numeric
columns (normal, skewed, discrete counts) and 5 categorical ones with skewed level frequencies."""

from __future__ import annotations

import numpy as np
import pandas as pd


def table(n: int, seed: int, *, drift: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for i in range(12):
        shift = 0.3 if drift and i < 2 else 0.0
        columns[f"num_{i:02d}"] = rng.normal(i + shift, 1.0 + i / 10, n)
    for i in range(12, 16):
        columns[f"num_{i:02d}"] = rng.lognormal(0.0, 0.5 + (0.3 if drift and i == 12 else 0.0), n)
    for i in range(16, 20):
        columns[f"num_{i:02d}"] = rng.poisson(1 + i - 16, n).astype(np.int64)
    for j in range(5):
        levels = np.array([f"level_{k}" for k in range(3 + 2 * j)], dtype=object)
        p = np.linspace(1.0, 3.0, len(levels))
        if drift and j == 0:
            p = p[::-1]
        columns[f"cat_{j}"] = rng.choice(levels, n, p=p / p.sum())
    return pd.DataFrame(columns)
