"""Global explanations: importance that ranks the signal above the noise, with intervals; partial dependence that
follows the generating rule; a surrogate whose rules cover every row and whose drawing is valid SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from mloop.errors import InvalidInput
from mloop.explain import global_explanation
from mloop.training import fit
from tests.conftest import TOY_SPEC, toy_frame


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = toy_frame(1200, seed=4)
    frame.loc[::13, "x2"] = np.nan
    return frame


def test_the_signal_outranks_the_noise_with_intervals(data: pd.DataFrame) -> None:
    model = fit(data, TOY_SPEC, {"max_iter": 40}, seed=0)
    result = global_explanation(model, data[TOY_SPEC.features], labels=data["y"])
    shap_rank = result.top(4)
    assert shap_rank[0] == "x1" and shap_rank[-1] == "x3"  # y = 1.5·x1 − x2 + red; x3 is noise
    perm = result.permutation
    assert perm is not None and result.permutation_metric == "roc_auc"
    assert perm["x1"].low > perm["x3"].high  # the intervals separate signal from noise
    assert all(p.low <= p.value <= p.high for p in perm.values())
    assert result.model_importance is None and any("mean |SHAP|" in n for n in result.notes)  # HistGradientBoosting has none


def test_partial_dependence_follows_the_rule(data: pd.DataFrame) -> None:
    model = fit(data, TOY_SPEC, {"max_iter": 40}, seed=0)
    result = global_explanation(model, data[TOY_SPEC.features], top=4)
    curves = {d.column: d for d in result.dependence}
    x1, x2, color = curves["x1"], curves["x2"], curves["color"]
    assert x1.average[-1] - x1.average[0] > 0.3 and x2.average[-1] < x2.average[0]
    by_level = dict(zip(color.grid, color.average, strict=True))
    assert color.categorical and by_level["red"] > by_level["blue"]
    assert len(x1.individual) == 20 and all(len(c) == len(x1.grid) for c in x1.individual)


def test_the_surrogate_covers_every_row_and_draws(data: pd.DataFrame) -> None:
    model = fit(data, TOY_SPEC, {"max_iter": 40}, seed=0)
    surrogate = global_explanation(model, data[TOY_SPEC.features], surrogate_depth=3).surrogate
    assert surrogate is not None and surrogate.depth == 3
    assert 0.4 < surrogate.fidelity_r2 <= 1.0
    assert 2 <= len(surrogate.rules) <= 8 and abs(sum(r.share for r in surrogate.rules) - 1.0) < 1e-9
    assert all(r.text().startswith("IF ") and " THEN score ≈ " in r.text() for r in surrogate.rules)
    root = ET.fromstring(surrogate.svg)
    assert root.tag.endswith("svg") and len(root.findall("{http://www.w3.org/2000/svg}rect")) == 2 * len(surrogate.rules) - 1


def test_a_forest_reports_its_own_importances_per_input_column(data: pd.DataFrame) -> None:
    prep = ColumnTransformer([("cat", OrdinalEncoder(), ["color"]), ("num", "passthrough", list(TOY_SPEC.numeric))])
    model = Pipeline([("prep", prep), ("rf", RandomForestClassifier(30, max_depth=5, random_state=0))])
    clean = data.fillna(0.0)
    model.fit(clean[TOY_SPEC.features], clean["y"])
    result = global_explanation(model, clean[TOY_SPEC.features], labels=clean["y"])
    assert result.model_importance is not None and set(result.model_importance) == set(TOY_SPEC.features)
    assert abs(sum(result.model_importance.values()) - 1.0) < 1e-9
    assert max(result.model_importance, key=lambda c: result.model_importance[c]) == "x1"  # type: ignore[index]


def test_labels_must_match_the_rows(data: pd.DataFrame) -> None:
    model = fit(data, TOY_SPEC, {"max_iter": 5}, seed=0)
    with pytest.raises(InvalidInput) as err:
        global_explanation(model, data[TOY_SPEC.features], labels=data["y"].head(10))
    assert err.value.field == "labels"
