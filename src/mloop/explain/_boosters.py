"""XGBoost's and LightGBM's trees read into leaves with boxes (see ``_trees``), exactly: XGBoost from its JSON form
(float32 thresholds and leaves), LightGBM from its model dump (float64), with each library's rules for missing
values and categories. What a reader cannot express exactly (XGBoost's categorical splits, LightGBM's
zero-as-missing or categories past 255) is refused, and the library's own contributions are used instead."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from mloop.errors import InvalidInput
from mloop.explain._trees import Builder, Nodes, TreeEnsemble


def read_xgboost(model: Any) -> TreeEnsemble:
    """An XGBoost gbtree model from its JSON form (float32 thresholds and leaves, read exactly): a split sends
    x < t left, which on float32 inputs is x <= the float32 just below t."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    learner = json.loads(booster.save_raw("json"))["learner"]
    gbm = learner["gradient_booster"]
    if gbm.get("name") != "gbtree":
        raise InvalidInput(f"XGBoost's {gbm.get('name')} booster has no trees mloop reads.", field="model")
    params = learner["learner_model_param"]
    if int(params.get("num_target", 1)) > 1:
        raise InvalidInput("Multi-target XGBoost models are not read.", field="model")
    k = max(1, int(params.get("num_class", 0)))
    builder = Builder(k)
    for tree, out in zip(gbm["model"]["trees"], gbm["model"]["tree_info"], strict=True):
        if any(tree["split_type"]):
            raise InvalidInput("This XGBoost model has categorical splits; its native contributions are used.", field="model")
        left = np.asarray(tree["left_children"], dtype=np.int64)
        cond = np.asarray(tree["split_conditions"], dtype=np.float32)
        below = np.nextafter(cond, np.float32(-np.inf)).astype(np.float64)
        value = np.zeros((len(left), k))
        value[:, out] = cond.astype(np.float64)
        builder.add_tree(Nodes(left, np.asarray(tree["right_children"]), np.asarray(tree["split_indices"]), below,
                                np.asarray(tree["default_left"], dtype=bool), np.asarray(tree["sum_hessian"], dtype=np.float64),
                                value, left < 0), 1.0)
    objective = learner["objective"]["name"]
    output = "log-odds" if objective in ("binary:logistic", "reg:logistic", "binary:logitraw") else \
        "logit" if objective.startswith("multi:") else \
        "link" if objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox") else "prediction"
    ensemble = builder.build(int(params["num_feature"]), np.zeros(k), output, np.float32)
    return replace(ensemble, base_offset=_xgboost_base(booster, ensemble))


def _xgboost_base(booster: Any, ensemble: TreeEnsemble) -> np.ndarray:
    """XGBoost's constant margin (its base score through the objective's link), measured: its margin on an
    all-missing row minus the leaves that row reaches."""
    import xgboost as xgb

    from mloop.explain._treeshap import tree_outputs

    row = np.full((1, ensemble.n_features), np.nan)
    matrix = xgb.DMatrix(row, feature_names=booster.feature_names)
    margin = np.asarray(booster.predict(matrix, output_margin=True), dtype=np.float64).reshape(ensemble.n_outputs)
    leaves = np.array([tree_outputs(ensemble, row, k)[0] for k in range(ensemble.n_outputs)])
    return margin - leaves


def _flatten(root: dict[str, Any]) -> list[dict[str, Any]]:
    """LightGBM's nested tree as a node list, children as indices."""
    nodes: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], int, str]] = [(root, -1, "")]
    while stack:
        node, parent, side = stack.pop()
        index = len(nodes)
        nodes.append(dict(node))
        if parent >= 0:
            nodes[parent][side] = index
        if "leaf_value" not in node:
            stack.append((node["right_child"], index, "right"))
            stack.append((node["left_child"], index, "left"))
    return nodes


def _lightgbm_tree(root: dict[str, Any], k: int, out: int) -> Nodes:
    nodes = _flatten(root)
    n = len(nodes)
    left, right, feature = np.full(n, -1), np.full(n, -1), np.zeros(n, dtype=np.int64)
    threshold, missing_left, cover = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)
    value, is_leaf, cat_left = np.zeros((n, k)), np.zeros(n, dtype=bool), [-1] * n
    for i, node in enumerate(nodes):
        if "leaf_value" in node:
            is_leaf[i] = True
            value[i, out] = float(node["leaf_value"])
            cover[i] = float(node.get("leaf_count", 0))
            continue
        left[i], right[i], feature[i] = node["left"], node["right"], int(node["split_feature"])
        cover[i] = float(node["internal_count"])
        missing = node.get("missing_type", "None")
        if node["decision_type"] == "==":  # categorical: the listed categories go left; missing and negative ones right
            cats = [int(c) for c in str(node["threshold"]).split("||")]
            if max(cats) > 255:
                raise InvalidInput("This LightGBM model splits on categories past 255; its native contributions are used.", field="model")
            cat_left[i] = sum(1 << c for c in cats)
            missing_left[i] = False
            continue
        if missing == "Zero":
            raise InvalidInput("This LightGBM model treats zero as missing; its native contributions are used.", field="model")
        threshold[i] = float(node["threshold"])
        # A missing value goes the default way where the split learnt one, and where 0.0 goes otherwise.
        missing_left[i] = bool(node["default_left"]) if missing == "NaN" else 0.0 <= threshold[i]
    return Nodes(left, right, feature, threshold, missing_left, cover, value, is_leaf, cat_left, {})


def read_lightgbm(model: Any) -> TreeEnsemble:
    """A LightGBM model from its dump: a split sends x <= t left (float64); categories 0..255 by set membership."""
    booster = model.booster_ if hasattr(model, "booster_") else model
    if getattr(booster, "pandas_categorical", None):
        raise InvalidInput("This LightGBM model encodes pandas categories itself; its native contributions are used.", field="model")
    dump = booster.dump_model()
    if any(t.get("is_linear") for t in dump["tree_info"]):
        raise InvalidInput("LightGBM's linear trees are not read; its native contributions are used.", field="model")
    k = int(dump.get("num_tree_per_iteration", 1))
    trees = dump["tree_info"]
    scale = 1.0 / max(1, len(trees) // k) if dump.get("average_output") else 1.0
    builder = Builder(k)
    for i, tree in enumerate(trees):
        builder.add_tree(_lightgbm_tree(tree["tree_structure"], k, i % k), scale)
    objective = str(dump.get("objective", "regression")).split(" ", 1)[0]
    output = "log-odds" if objective in ("binary", "cross_entropy") else "logit" if objective.startswith("multiclass") else \
        "link" if objective in ("poisson", "gamma", "tweedie") else "prediction"
    return builder.build(int(dump["max_feature_idx"]) + 1, np.zeros(k), output, np.float64)
