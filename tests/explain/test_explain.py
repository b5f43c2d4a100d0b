"""``mloop.explain.explain`` on every model kind: attributions on the model's input columns that add up to its
output minus the base value within 1e-6, with the output and base on the scale the explanation names."""

from __future__ import annotations

import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mloop.explain import explain
from mloop.training import fit
from tests.conftest import TOY_SPEC, toy_frame

NUMERIC = list(TOY_SPEC.numeric)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = toy_frame(900, seed=2)
    data.loc[::11, "x2"] = np.nan
    return data


def _one_hot_forest(data: pd.DataFrame) -> Pipeline:
    prep = ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=True), ["color"])])
    return Pipeline([("prep", prep), ("rf", RandomForestClassifier(20, max_depth=6, random_state=0))]).fit(
        data[TOY_SPEC.features].fillna(0.0), data["y"])


def test_mloops_categorical_pipeline_explains_in_input_columns(frame: pd.DataFrame) -> None:
    model = fit(frame, TOY_SPEC, {"max_iter": 30}, seed=0)
    rows = frame.head(40).copy()
    rows.loc[0, "color"] = "purple"  # unseen: encoded as missing, explained like any value
    result = explain(model, rows)
    assert result.method == "tree-shap" and result.output == "log-odds"
    assert result.columns == TOY_SPEC.features
    assert result.additivity_error() < 1e-6
    proba = model.predict_proba(rows[TOY_SPEC.features])[:, 1]
    assert np.allclose(1 / (1 + np.exp(-result.outputs)), proba, atol=1e-9)  # the output is the model's own
    assert set(result.classes or []) == {"1"}
    entry = result.rows()[0]
    assert set(entry) == {"base_value", "output", "attributions", "class"} and set(entry["attributions"]) == set(TOY_SPEC.features)
    # color drives the label, x3 does not: the attributions say so.
    mean_abs = np.abs(result.attributions).mean(axis=0)
    assert mean_abs[TOY_SPEC.features.index("x1")] > mean_abs[TOY_SPEC.features.index("x3")]


def test_one_hot_columns_are_given_back_to_their_input_column(frame: pd.DataFrame) -> None:
    model = _one_hot_forest(frame)
    rows = frame[TOY_SPEC.features].fillna(0.0).head(30)
    result = explain(model, rows)
    assert result.columns == TOY_SPEC.features and result.output == "probability"
    assert result.additivity_error() < 1e-6
    assert np.allclose(result.outputs, model.predict_proba(rows)[:, 1])
    # The three one-hot columns' SHAP values, summed, are color's attribution.
    from mloop.explain import read_trees, tree_shap

    xt = np.asarray(model[:-1].transform(rows))
    phi = tree_shap(read_trees(model[-1]), xt, output=1)
    assert np.allclose(result.attributions[:, 3], phi[:, 3:].sum(axis=1))
    assert np.allclose(result.attributions[:, :3], phi[:, :3])


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "gradient-boosting-regressor"])
def test_boosters_add_up_and_match_their_own_margin(frame: pd.DataFrame, kind: str) -> None:
    x, y = frame[NUMERIC], frame["y"]
    model: Any
    if kind == "lightgbm":
        model = lgb.LGBMClassifier(n_estimators=40, verbose=-1).fit(x, y)
        margin = model.predict(x.head(50), raw_score=True)
    elif kind == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier(n_estimators=40, max_depth=4).fit(x, y)
        margin = model.predict(x.head(50), output_margin=True)
    else:
        model = GradientBoostingRegressor(n_estimators=30).fit(x.fillna(0.0), frame["x1"] * 2)
        x = x.fillna(0.0)
        margin = model.predict(x.head(50))
    result = explain(model, x.head(50))
    assert result.additivity_error() < 1e-6
    assert np.allclose(result.outputs, margin, atol=1e-5)  # XGBoost's own margin is float32; mloop's is its trees in float64
    if kind != "gradient-boosting-regressor":
        import shap

        with warnings.catch_warnings():  # shap's notice that LightGBM's binary output changed shape
            warnings.simplefilter("ignore", UserWarning)
            theirs = np.asarray(shap.TreeExplainer(model).shap_values(x.head(50)))
        assert np.abs(theirs - result.attributions).max() < 1e-6


def test_an_xgboost_booster_within_multiclass(frame: pd.DataFrame) -> None:
    import xgboost as xgb

    y = np.digitize(frame["x1"].to_numpy(), [-0.5, 0.5])
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(frame[NUMERIC], y)
    result = explain(model, frame[NUMERIC].head(30))
    assert result.output == "logit" and result.additivity_error() < 1e-6
    margin = model.predict(frame[NUMERIC].head(30), output_margin=True)
    assert np.allclose(result.outputs, margin.max(axis=1), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["permutation", "kernel"])
def test_other_models_use_shaps_sampling_explainers_over_a_background(frame: pd.DataFrame, method: str) -> None:
    data = frame.fillna(0.0)
    model = Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["color"])])),
                      ("lr", LogisticRegression())]).fit(data[TOY_SPEC.features], data["y"])
    background = data[TOY_SPEC.features].sample(40, random_state=0)
    result = explain(model, data[TOY_SPEC.features].head(4), background=background, method=method)
    assert result.method == method and result.output == "probability"
    assert result.additivity_error() < 1e-6
    assert np.allclose(result.outputs, model.predict_proba(data[TOY_SPEC.features].head(4))[:, 1])
    assert np.allclose(result.base_values, model.predict_proba(background)[:, 1].mean())


def test_preprocessing_that_mixes_columns_falls_back_to_sampling(frame: pd.DataFrame) -> None:
    data = frame.fillna(0.0)
    model = make_pipeline(PCA(2), HistGradientBoostingClassifier(max_iter=10)).fit(data[NUMERIC], data["y"])
    from mloop.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        explain(model, data[NUMERIC].head(3))
    assert err.value.field == "background"
    result = explain(model, data[NUMERIC].head(3), background=data[NUMERIC].head(30))
    assert result.method == "permutation" and result.additivity_error() < 1e-6
    with pytest.raises(InvalidInput, match="PCA"):
        explain(model, data[NUMERIC].head(3), method="tree")


def test_lightgbm_trees_are_read_with_their_categories_and_missing_rules() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    x = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.integers(0, 8, n).astype(float), rng.normal(size=n)])
    x[rng.random(n) < 0.1, 1] = np.nan  # NaN seen in training: a learnt default direction
    y = x[:, 0] + np.nan_to_num(x[:, 1]) * np.isin(x[:, 2], [1, 3, 6]) + rng.normal(0, 0.3, n)
    model = lgb.LGBMRegressor(n_estimators=30, num_leaves=12, verbose=-1).fit(x, y, categorical_feature=[2])
    rows = np.vstack([x[:40], [[0.1, 0.2, -1.0, 0.0], [np.nan, np.nan, np.nan, np.nan], [0.5, -0.5, 9.0, 1.0], [0.0, 1.0, 300.0, 2.0],
                               [1.0, 0.0, 3.7, np.nan]]])
    frame = pd.DataFrame(rows, columns=["a", "b", "c", "d"])
    result = explain(model, frame, columns=["a", "b", "c", "d"])
    assert result.method == "tree-shap" and result.output == "prediction"
    assert result.additivity_error() < 1e-6
    assert np.allclose(result.outputs, model.predict(rows, raw_score=True), atol=1e-9)  # mloop's tree reading is the model's
    native = model.predict(rows, pred_contrib=True)
    assert np.abs(native[:, :-1] - result.attributions).max() < 1e-6


def test_lightgbm_with_pandas_categories_uses_its_native_contributions() -> None:
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"a": rng.normal(size=800), "c": pd.Categorical(rng.choice(["p", "q", "r"], 800))})
    y = frame["a"] + (frame["c"] == "q") * 1.5 > 0.5
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(frame, y.astype(int))
    result = explain(model, frame.head(20))
    assert result.method == "lightgbm" and result.additivity_error() < 1e-6


@pytest.mark.parametrize("seen_missing", [True, False])
def test_the_compiled_encoder_is_the_pipelines_own_transform(frame: pd.DataFrame, seen_missing: bool) -> None:
    from mloop.explain._inputs import prepare

    train = frame.copy()
    if seen_missing:
        train.loc[::7, "color"] = None
    model = fit(train, TOY_SPEC, {"max_iter": 5}, seed=0)
    rows = pd.DataFrame({"x1": [0.1, np.nan, 2.0, -1.0, 3.0], "x2": [1.0, 2.0, np.nan, 0.0, 1.0], "x3": [0.0, 0.0, 0.0, 1.0, 5.0],
                         "color": ["red", None, "purple", float("nan"), "blue"]})
    fast = prepare(model, TOY_SPEC.features).transform(rows)
    theirs = np.asarray(model[:-1].transform(rows[TOY_SPEC.features]), dtype=np.float64)
    assert np.array_equal(fast, theirs, equal_nan=True)


def test_lime_adds_up_to_its_own_local_prediction(frame: pd.DataFrame) -> None:
    data = frame.fillna(0.0)
    model = Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["color"])])),
                      ("lr", LogisticRegression())]).fit(data[TOY_SPEC.features], data["y"])
    rows = data[TOY_SPEC.features].head(3)
    result = explain(model, rows, background=data[TOY_SPEC.features].head(200), method="lime")
    assert result.method == "lime" and result.local_predictions is not None
    assert np.allclose(result.base_values + result.attributions.sum(axis=1), result.local_predictions, atol=1e-6)
    assert np.allclose(result.outputs, model.predict_proba(rows)[:, 1])  # the output is still the model's
    assert all("local_prediction" in entry for entry in result.rows())
    x1, x3 = TOY_SPEC.features.index("x1"), TOY_SPEC.features.index("x3")  # x1 drives the label, x3 is noise
    assert np.abs(result.attributions[:, x1]).mean() > np.abs(result.attributions[:, x3]).mean()
