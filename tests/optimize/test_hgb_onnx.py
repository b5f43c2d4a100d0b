from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from mloop.optimize import NotConvertible, check, convert_hgb, onnx_feed, session
from mloop.optimize._twin import parity_sample
from mloop.registry import ColumnSpec
from mloop.training import fit
from tests.conftest import TOY_SPEC, toy_frame

NUMERIC = [ColumnSpec(f"f{i}", "double") for i in range(5)]
TOY_INPUTS = [ColumnSpec("x1", "double"), ColumnSpec("x2", "double"), ColumnSpec("x3", "double"), ColumnSpec("color", "string")]


def _numeric(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[rng.random(n) < 0.1, 2] = np.nan
    y = (X[:, 0] + np.nan_to_num(X[:, 2]) > 0).astype(int)
    return X, y


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_bare_models_match_scikit_learn_exactly(kind: str) -> None:
    X, y = _numeric()
    if kind == "multiclass":
        model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y + (X[:, 1] > 1))
        expected = model.predict_proba(X)
    elif kind == "binary":
        model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
        expected = model.predict_proba(X)
    else:
        model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, X[:, 0] * 3)
        expected = model.predict(X).reshape(-1, 1)
    out = session(convert_hgb(model, NUMERIC)).run(None, {"X": X})[0]
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_pipeline_with_categoricals_unknown_levels_and_missing_values() -> None:
    frame = toy_frame(3000)
    frame.loc[::7, "x2"] = np.nan
    model = fit(frame, TOY_SPEC, {"max_iter": 40}, 0)
    current = toy_frame(600, seed=5)
    current.loc[::3, "color"] = "purple"  # never seen in training
    current.loc[::11, "color"] = None
    current.loc[::5, "x1"] = np.nan
    twin = convert_hgb(model, TOY_INPUTS)
    out = session(twin).run(None, onnx_feed(current, TOY_INPUTS, False))[0]
    np.testing.assert_allclose(out, model.predict_proba(current[TOY_SPEC.features]), atol=1e-12)
    assert check(model, twin, parity_sample(current, TOY_INPUTS), TOY_INPUTS).ok


def test_unsupported_models_say_so() -> None:
    X, y = _numeric(200)
    with pytest.raises(NotConvertible, match="No ONNX converter for LogisticRegression"):
        convert_hgb(LogisticRegression().fit(np.nan_to_num(X), y), NUMERIC)


def test_parity_names_the_largest_difference() -> None:
    X, y = _numeric()
    a = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    b = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    sample = pd.DataFrame(X[:100], columns=[c.name for c in NUMERIC])
    parity = check(a, convert_hgb(b, NUMERIC), sample, NUMERIC)
    assert not parity.ok and parity.max_abs_diff > 1e-3
    assert "max |native - onnx|" in parity.describe() and f"row {parity.row}" in parity.describe()
