"""HistGradientBoosting → ONNX, for bare estimators and mloop's tabular pipeline.

skl2onnx cannot convert HistGradientBoosting with current onnx (see GOTCHAS); this converter writes the trees
into ONNX-ML's ``TreeEnsemble`` (opset 5: double precision, set membership for categorical splits), so ONNX
Runtime evaluates exactly the splits scikit-learn evaluates. The pipeline form is
``ColumnTransformer([("cat", OrdinalEncoder, cats), ("num", "passthrough", nums)]) → HistGradientBoosting``;
its encoder becomes one ``LabelEncoder`` per categorical column (unknown → missing, as the encoder does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mloop.errors import InvalidInput

_LEQ, _MEMBER = 0, 6
_ML = "ai.onnx.ml"


class NotConvertible(InvalidInput):
    """The model has no ONNX twin; it is served natively."""


def _tree_arrays(predictor: Any, target: int, acc: dict[str, list[Any]]) -> None:
    """Append one tree (a sklearn ``TreePredictor``) to the ensemble arrays in ``acc``."""
    nodes = predictor.nodes
    bitsets = predictor.raw_left_cat_bitsets
    interior = [i for i in range(len(nodes)) if not nodes[i]["is_leaf"]]
    leaves = [i for i in range(len(nodes)) if nodes[i]["is_leaf"]]
    node_base, leaf_base = len(acc["nodes_featureids"]), len(acc["leaf_weights"])
    node_pos = {old: node_base + k for k, old in enumerate(interior)}
    leaf_pos = {old: leaf_base + k for k, old in enumerate(leaves)}
    for old in leaves:
        acc["leaf_targetids"].append(target)
        acc["leaf_weights"].append(float(nodes[old]["value"]))
    if not interior:  # a single-leaf tree: one split whose branches meet at that leaf
        acc["tree_roots"].append(node_base)
        for key, value in (("nodes_featureids", 0), ("nodes_splits", 0.0), ("nodes_modes", _LEQ), ("nodes_missing_value_tracks_true", 1),
                           ("nodes_truenodeids", leaf_pos[leaves[0]]), ("nodes_trueleafs", 1),
                           ("nodes_falsenodeids", leaf_pos[leaves[0]]), ("nodes_falseleafs", 1)):
            acc[key].append(value)
        return
    acc["tree_roots"].append(node_pos[0])
    for old in interior:
        node = nodes[old]
        acc["nodes_featureids"].append(int(node["feature_idx"]))
        acc["nodes_missing_value_tracks_true"].append(int(node["missing_go_to_left"]))
        if node["is_categorical"]:
            words = bitsets[node["bitset_idx"]]
            members = [float(v) for v in range(32 * len(words)) if (int(words[v // 32]) >> (v % 32)) & 1]
            acc["nodes_modes"].append(_MEMBER)
            acc["nodes_splits"].append(0.0)
            acc["membership_values"].extend([*members, math.nan])
        else:
            acc["nodes_modes"].append(_LEQ)
            acc["nodes_splits"].append(float(node["num_threshold"]))
        for side, child in (("true", int(node["left"])), ("false", int(node["right"]))):
            is_leaf = bool(nodes[child]["is_leaf"])
            acc[f"nodes_{side}nodeids"].append(leaf_pos[child] if is_leaf else node_pos[child])
            acc[f"nodes_{side}leafs"].append(int(is_leaf))


def _ensemble_node(model: Any, input_name: str, output_name: str) -> tuple[Any, int]:
    from onnx import helper, numpy_helper

    n_targets = len(model._predictors[0])
    acc: dict[str, list[Any]] = {k: [] for k in (
        "tree_roots", "nodes_featureids", "nodes_splits", "nodes_modes", "nodes_missing_value_tracks_true",
        "nodes_truenodeids", "nodes_trueleafs", "nodes_falsenodeids", "nodes_falseleafs",
        "leaf_targetids", "leaf_weights", "membership_values")}
    for iteration in model._predictors:
        for target, predictor in enumerate(iteration):
            _tree_arrays(predictor, target, acc)
    attrs: dict[str, Any] = {
        "aggregate_function": 1,  # SUM
        "post_transform": 0,  # NONE: the baseline is added after
        "n_targets": n_targets,
        "tree_roots": acc["tree_roots"],
        "nodes_featureids": acc["nodes_featureids"],
        "nodes_modes": numpy_helper.from_array(np.array(acc["nodes_modes"], dtype=np.uint8), "nodes_modes"),
        "nodes_splits": numpy_helper.from_array(np.array(acc["nodes_splits"], dtype=np.float64), "nodes_splits"),
        "nodes_missing_value_tracks_true": acc["nodes_missing_value_tracks_true"],
        "nodes_truenodeids": acc["nodes_truenodeids"],
        "nodes_trueleafs": acc["nodes_trueleafs"],
        "nodes_falsenodeids": acc["nodes_falsenodeids"],
        "nodes_falseleafs": acc["nodes_falseleafs"],
        "leaf_targetids": acc["leaf_targetids"],
        "leaf_weights": numpy_helper.from_array(np.array(acc["leaf_weights"], dtype=np.float64), "leaf_weights"),
    }
    if acc["membership_values"]:
        attrs["membership_values"] = numpy_helper.from_array(np.array(acc["membership_values"], dtype=np.float64), "membership_values")
    return helper.make_node("TreeEnsemble", [input_name], [output_name], domain=_ML, **attrs), n_targets


def convert_hgb(model: Any, inputs: list[Any]) -> bytes:
    """ONNX bytes for ``model``: a bare estimator takes one float64 matrix ``X`` (columns in ``inputs`` order);
    a pipeline takes one ``[n, 1]`` tensor per column (strings for categoricals). The output is
    ``probabilities`` (classifiers) or ``predictions`` (regressors), float64."""
    from onnx import TensorProto, helper, numpy_helper

    estimator, encoder, cats, nums = _unpack(model)
    names = [c.name for c in inputs]
    types = {c.name: c.type for c in inputs}
    nodes: list[Any] = []
    inits: list[Any] = []
    graph_inputs: list[Any] = []
    features: list[str] = []
    if encoder is None and not nums:  # a bare estimator: one matrix input, fed without any per-column work
        for col in names:
            if types[col] not in ("double", "float", "long", "integer"):
                raise NotConvertible(f"Column {col!r} of type {types[col]!r} has no numeric ONNX input.")
        graph_inputs.append(helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, len(names)]))
        order: list[str] = []
    else:
        order = [*cats, *nums]
    for j, col in enumerate(order):
        if col not in types:
            raise NotConvertible(f"The model uses column {col!r}, which its signature lacks.")
        if encoder is not None and col in cats:
            graph_inputs.append(helper.make_tensor_value_info(col, TensorProto.STRING, [None, 1]))
            levels = [str(v) for v in encoder.categories_[j]]
            encoded: Any = [v.encode() for v in levels]
            nodes.append(helper.make_node(
                "LabelEncoder", [col], [f"{col}__code"], domain=_ML,
                keys_tensor=helper.make_tensor("keys", TensorProto.STRING, [len(levels)], encoded),
                values_tensor=numpy_helper.from_array(np.arange(len(levels), dtype=np.float64), "values"),
                default_tensor=numpy_helper.from_array(np.array([math.nan]), "default"),
            ))
            features.append(f"{col}__code")
        else:
            if types[col] not in ("double", "float", "long", "integer"):
                raise NotConvertible(f"Column {col!r} of type {types[col]!r} has no numeric ONNX input.")
            graph_inputs.append(helper.make_tensor_value_info(col, TensorProto.DOUBLE, [None, 1]))
            features.append(col)
    if order:
        nodes.append(helper.make_node("Concat", features, ["X"], axis=1))
    tree, n_targets = _ensemble_node(estimator, "X", "raw")
    nodes.append(tree)
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(1, -1)
    inits.append(numpy_helper.from_array(baseline, "baseline"))
    nodes.append(helper.make_node("Add", ["raw", "baseline"], ["score"]))
    if hasattr(estimator, "classes_"):
        out_name = "probabilities"
        if n_targets == 1:
            inits.append(numpy_helper.from_array(np.array([[-1.0, 1.0]]), "signs"))
            nodes.append(helper.make_node("Mul", ["score", "signs"], ["signed"]))
            nodes.append(helper.make_node("Sigmoid", ["signed"], [out_name]))
        else:
            nodes.append(helper.make_node("Softmax", ["score"], [out_name], axis=1))
        width = max(2, n_targets)
    else:
        out_name = "predictions"
        nodes.append(helper.make_node("Identity", ["score"], [out_name]))
        width = n_targets
    graph = helper.make_graph(
        nodes, "mloop_hgb", graph_inputs,
        [helper.make_tensor_value_info(out_name, TensorProto.DOUBLE, [None, width])], initializer=inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(_ML, 5)])
    onnx_model.ir_version = 10
    return bytes(onnx_model.SerializeToString())


def _is_passthrough(transformer: Any) -> bool:
    """'passthrough' as given, or as a fitted ColumnTransformer stores it (an identity FunctionTransformer)."""
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(transformer, str):
        return transformer == "passthrough"
    return isinstance(transformer, FunctionTransformer) and transformer.func is None and transformer.inverse_func is None


def _unpack(model: Any) -> tuple[Any, Any, list[str], list[str]]:
    """(estimator, ordinal encoder or None, categorical columns, numeric columns) of a supported model."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    hgb = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    if isinstance(model, hgb):
        if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
            raise NotConvertible("A bare HistGradientBoosting model with categorical features has no ONNX twin; use a pipeline.")
        return model, None, [], []
    steps = getattr(model, "named_steps", None)
    if not steps or len(steps) != 2:
        raise NotConvertible(f"No ONNX converter for {type(model).__name__}.")
    prep, estimator = list(steps.values())
    if not isinstance(estimator, hgb):
        raise NotConvertible(f"No ONNX converter for a pipeline ending in {type(estimator).__name__}.")
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder

    if not isinstance(prep, ColumnTransformer):
        raise NotConvertible(f"No ONNX converter for a {type(prep).__name__} step.")
    encoder: Any = None
    cats: list[str] = []
    nums: list[str] = []
    for name, transformer, columns in prep.transformers_:
        if name == "remainder" and transformer == "drop":
            continue
        if isinstance(transformer, OrdinalEncoder) and not cats:
            encoder, cats = transformer, list(columns)
        elif _is_passthrough(transformer) and not nums:
            nums = list(columns)
        else:
            raise NotConvertible(f"No ONNX converter for transformer {name!r} ({type(transformer).__name__}).")
    if encoder is not None and list(prep.transformers_[0][2]) != cats:
        raise NotConvertible("The ordinal encoder must come first in the ColumnTransformer.")
    return estimator, encoder, cats, nums
