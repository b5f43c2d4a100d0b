"""The diabetes example's own steps: scikit-learn's bundled diabetes table, and a regression recipe."""

from __future__ import annotations

from typing import Any

import pandas as pd


def diabetes() -> pd.DataFrame:
    """The 442 patients scikit-learn ships (ten baseline variables, ``progression`` a year later)."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.frame.rename(columns={"target": "progression"})


def with_interactions(frame: pd.DataFrame, target: str = "progression") -> pd.DataFrame:
    """Pairwise products of the inputs beside them (scikit-learn's ``PolynomialFeatures``, interactions only)."""
    from sklearn.preprocessing import PolynomialFeatures

    inputs = frame.drop(columns=[target])
    poly = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False).set_output(transform="pandas")
    return pd.concat([poly.fit_transform(inputs), frame[[target]]], axis=1)


def ridge(frame: pd.DataFrame, target: str, alpha: float = 1.0) -> Any:
    """Standardised inputs into a ridge regression."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(frame.drop(columns=[target]), frame[target])
