"""Exact TreeSHAP: against a brute-force Shapley reference written from the models' own nodes (categorical splits,
missing and unseen categories included), against ``shap.TreeExplainer`` where it reads the model right, and the
additivity of every explainer kind."""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier

from mloop.explain import explain, read_trees, tree_shap

# -- the reference: E[f(x) | x_S] by the path-dependent rule, then Shapley values by enumerating subsets -------------


def _hgb_trees(model: Any) -> list[tuple[Any, Any]]:
    known_sets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()

    def in_set(words: np.ndarray, code: int) -> bool:
        return bool((int(words[code // 32]) >> (code % 32)) & 1)

    def go_left(pred: Any, node: Any, value: float) -> bool:  # scikit-learn's _predict_one_from_raw_data, rule by rule
        if np.isnan(value):
            return bool(node["missing_go_to_left"])
        if node["is_categorical"]:
            if value < 0:
                return bool(node["missing_go_to_left"])
            if in_set(pred.raw_left_cat_bitsets[node["bitset_idx"]], int(value)):
                return True
            if in_set(known_sets[f_idx_map[node["feature_idx"]]], int(value)):
                return False
            return bool(node["missing_go_to_left"])
        return bool(value <= node["num_threshold"])

    def make(pred: Any) -> Any:
        nodes = pred.nodes

        def tree(i: int, x: np.ndarray, subset: frozenset[int]) -> float:
            n = nodes[i]
            if n["is_leaf"]:
                return float(n["value"])
            f = int(n["feature_idx"])
            left, right = int(n["left"]), int(n["right"])
            if f in subset:
                return tree(left if go_left(pred, n, x[f]) else right, x, subset)
            return (nodes[left]["count"] * tree(left, x, subset) + nodes[right]["count"] * tree(right, x, subset)) / n["count"]

        return tree

    return [(make(iteration[0]), None) for iteration in model._predictors]


def _sklearn_trees(estimators: list[Any], output: int) -> list[tuple[Any, Any]]:
    def make(t: Any) -> Any:
        def tree(i: int, x: np.ndarray, subset: frozenset[int]) -> float:
            if t.children_left[i] < 0:
                value = t.value[i]
                return float(value[0, output] if value.shape[1] > 1 else value[output, 0])
            f = int(t.feature[i])
            left, right = int(t.children_left[i]), int(t.children_right[i])
            if f in subset:
                v = np.float32(x[f])
                goes_left = bool(t.missing_go_to_left[i]) if np.isnan(v) else bool(v <= t.threshold[i])
                return tree(left if goes_left else right, x, subset)
            w = t.weighted_n_node_samples
            return (w[left] * tree(left, x, subset) + w[right] * tree(right, x, subset)) / w[i]

        return tree

    return [(make(est.tree_), None) for est in estimators]


def brute_force_shap(trees: list[tuple[Any, Any]], x: np.ndarray, n_features: int, scale: float = 1.0) -> np.ndarray:
    """Shapley values of Σ trees' path-dependent expectations, over every subset of features."""
    def value(subset: frozenset[int]) -> float:
        return scale * sum(tree(0, x, subset) for tree, _ in trees)

    phi = np.zeros(n_features)
    players = range(n_features)
    for i in players:
        others = [j for j in players if j != i]
        for size in range(n_features):
            weight = factorial(size) * factorial(n_features - size - 1) / factorial(n_features)
            for s in combinations(others, size):
                subset = frozenset(s)
                phi[i] += weight * (value(subset | {i}) - value(subset))
    return phi


def _categorical_data(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, 7, n).astype(float), rng.normal(size=n), rng.normal(size=n), rng.integers(0, 4, n).astype(float)])
    x[rng.random(n) < 0.08, 0] = np.nan
    x[rng.random(n) < 0.08, 1] = np.nan
    logit = np.where(np.isin(x[:, 0], [1, 4, 5]), 1.2, -0.6) + x[:, 1] * (x[:, 3] - 1.5) + 0.5 * np.nan_to_num(x[:, 2])
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def _awkward_rows() -> np.ndarray:
    """Rows that stress the categorical rules: missing, negative, unseen and non-integer categories, missing numbers."""
    return np.array([
        [1.0, 0.3, -0.2, 2.0], [np.nan, 1.5, 0.1, 0.0], [-1.0, -0.4, 2.0, 3.0], [9.0, 0.0, 0.0, 1.0],
        [4.7, np.nan, -1.0, 2.0], [300.0, 0.2, 0.2, np.nan], [6.0, -2.0, np.nan, 3.0], [0.0, 0.9, 0.5, 1.0],
    ])


def test_categorical_hist_gradient_boosting_matches_the_brute_force_reference_and_adds_up() -> None:
    x, y = _categorical_data()
    model = HistGradientBoostingClassifier(max_iter=12, max_leaf_nodes=8, categorical_features=[0, 3], random_state=0).fit(x, y)
    rows = np.vstack([x[:12], _awkward_rows()])
    ensemble = read_trees(model)
    phi = tree_shap(ensemble, rows)
    raw = model._raw_predict(rows)[:, 0]
    trees = _hgb_trees(model)
    # The model encodes its categoricals itself (unknown, negative and non-integer values become missing) and puts
    # them first: the trees see the encoded rows.
    encoded = model._preprocessor.transform(rows)
    order = np.concatenate([np.flatnonzero(model.is_categorical_), np.flatnonzero(~model.is_categorical_)])
    for i, row in enumerate(encoded):
        reference = np.empty(4)
        reference[order] = brute_force_shap(trees, row, 4)
        assert np.abs(phi[i] - reference).max() < 1e-9, (i, phi[i], reference)
        full = model._baseline_prediction[0, 0] + sum(tree(0, row, frozenset(range(4))) for tree, _ in trees)
        assert abs(full - raw[i]) < 1e-9  # the reference's rule is the model's own
    assert np.abs(phi.sum(axis=1) + ensemble.expected_value()[0] - raw).max() < 1e-9


@pytest.mark.parametrize("kind", ["random_forest", "decision_tree"])
def test_sklearn_trees_match_the_brute_force_reference(kind: str) -> None:
    x, y = _categorical_data(400, seed=1)
    x = np.nan_to_num(x, nan=-3.0)
    model = (RandomForestClassifier(5, max_depth=4, random_state=0) if kind == "random_forest" else DecisionTreeClassifier(max_depth=5)).fit(x, y)
    estimators = list(getattr(model, "estimators_", [model]))
    trees = _sklearn_trees(estimators, output=1)
    phi = tree_shap(read_trees(model), x[:10], output=1)
    for i in range(10):
        assert np.abs(phi[i] - brute_force_shap(trees, x[i], 4, scale=1 / len(estimators))).max() < 1e-9


def _shap_values(model: Any, x: Any, output: int) -> np.ndarray:
    import shap

    values = np.asarray(shap.TreeExplainer(model).shap_values(x, check_additivity=False))
    if values.ndim == 3:
        values = values[..., output] if values.shape[-1] != x.shape[1] else values[output]
    return values


@pytest.mark.parametrize("make", [
    lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0),
    lambda: HistGradientBoostingRegressor(max_iter=40, random_state=0),
    lambda: RandomForestClassifier(15, max_depth=7, random_state=0),
    lambda: RandomForestRegressor(10, max_depth=9, random_state=0),
    lambda: ExtraTreesRegressor(10, max_depth=8, random_state=0),
    lambda: GradientBoostingClassifier(n_estimators=25, random_state=0),
], ids=["hgb-classifier", "hgb-regressor", "random-forest", "random-forest-regressor", "extra-trees", "gradient-boosting"])
def test_numeric_models_equal_shap_tree_explainer(make: Any) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 6))
    y = x[:, 0] * 2 + np.sin(3 * x[:, 1]) + x[:, 2] * x[:, 3] + rng.normal(0, 0.3, 1500)
    model = make()
    target = (y > 0).astype(int) if hasattr(model, "predict_proba") else y
    model.fit(x, target)
    ensemble = read_trees(model)
    output = ensemble.n_outputs - 1
    phi = tree_shap(ensemble, x[:700], output)  # over 512 rows: the parallel chunks
    assert np.abs(phi - _shap_values(model, x[:700], output)).max() < 1e-6


def test_shap_tree_explainer_is_wrong_on_categorical_splits_and_mloop_is_not() -> None:
    """The defect mloop's own reader exists for: shap reads a categorical split's (meaningless) numeric threshold."""
    x, y = _categorical_data()
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features=[0, 3], random_state=0).fit(x, y)
    raw = model._raw_predict(x[:200])[:, 0]
    theirs = _shap_values(model, x[:200], 0)
    import shap

    base = float(np.ravel(shap.TreeExplainer(model).expected_value)[0])
    assert np.abs(theirs.sum(axis=1) + base - raw).max() > 0.01
    ours = explain(model, x[:200], columns=["c", "a", "b", "d"])
    assert ours.additivity_error() < 1e-9


def test_multiclass_explains_each_rows_top_class() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 3))
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(x, y)
    result = explain(model, x[:50], columns=["a", "b", "c"])
    raw = model._raw_predict(x[:50])
    assert result.output == "logit"
    assert [int(c) for c in result.classes or []] == list(np.argmax(raw, axis=1))
    assert result.additivity_error() < 1e-9
    assert np.allclose(result.outputs, raw.max(axis=1))


def test_rows_need_the_models_columns() -> None:
    from mloop.errors import InvalidInput

    x, y = _categorical_data(200)
    model = HistGradientBoostingClassifier(max_iter=3).fit(pd.DataFrame(x, columns=["c", "a", "b", "d"]), y)
    with pytest.raises(InvalidInput) as err:
        explain(model, [{"c": 1.0, "a": 0.0, "b": 1.0}])
    assert err.value.field == "d"
    with pytest.raises(InvalidInput) as err:
        explain(model, pd.DataFrame(x, columns=["c", "a", "b", "d"]), method="lime-ish")
    assert err.value.field == "method"
