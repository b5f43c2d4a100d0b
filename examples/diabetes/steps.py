"""The diabetes example's own step: scikit-learn's bundled diabetes table (the rest is declared in pipeline.yaml)."""

from __future__ import annotations

import pandas as pd


def diabetes() -> pd.DataFrame:
    """The 442 patients scikit-learn ships (ten baseline variables, ``progression`` a year later)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.frame.rename(columns={"target": "progression"})
