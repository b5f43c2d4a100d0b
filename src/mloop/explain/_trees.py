"""Tree ensembles as leaves with boxes: for every leaf, the features on its path, the region of each feature that
leads to it (an interval, or a set of categories, and whether a missing value does), the share of training cover
that takes each feature's branches towards it, and its value. That is all exact path-dependent TreeSHAP needs,
and it is read from the model's own trees: scikit-learn's decision trees, random forests, extra trees, gradient
boosting and HistGradientBoosting (native categorical splits included — ``shap.TreeExplainer`` reads those as
numeric thresholds and gets them wrong).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mloop.errors import InvalidInput

ALL_CATEGORIES = (1 << 256) - 1  # HistGradientBoosting's categories are 0..255


@dataclass(frozen=True)
class TreeEnsemble:
    """Leaves with boxes, flattened for the TreeSHAP kernel. ``raw output = base_offset + Σ values of the leaves a
    row reaches``; ``output`` names that scale (``log-odds``, ``logit``, ``probability``, ``prediction``, ``link``)."""

    n_features: int
    leaf_value: np.ndarray  # (leaves, outputs), scaled (learning rate, 1/trees) so that leaves simply add up
    leaf_start: np.ndarray  # (leaves + 1,) offsets into the path arrays
    path_feature: np.ndarray  # int64: the feature of each (leaf, path feature)
    path_lo: np.ndarray  # the leaf's region of a numeric feature is lo < x <= hi
    path_hi: np.ndarray
    path_nan: np.ndarray  # uint8: a missing value (and a negative category) follows the path
    path_cat: np.ndarray  # int64: row of cat_sets holding the allowed categories, or -1 for a numeric feature
    path_zero: np.ndarray  # the share of cover that follows the path at this feature's splits
    cat_sets: np.ndarray  # (sets, 8) uint32 bitsets of categories 0..255
    base_offset: np.ndarray  # (outputs,): the model's constant (baseline prediction, initial estimator)
    output: str
    input_dtype: Any = np.float64  # scikit-learn's trees compare in float32
    encode: Any = None  # the model's own input step (HistGradientBoosting's category encoder), applied before the trees
    feature_of: np.ndarray | None = None  # the input feature each tree feature is (the encoder reorders them)

    def features(self, x: np.ndarray) -> np.ndarray:
        """Rows as the trees see them (through the model's own encoder), float64."""
        x = np.asarray(x)
        if self.encode is not None:
            x = self.encode(x)
        return np.ascontiguousarray(np.asarray(x, dtype=np.float64).astype(self.input_dtype).astype(np.float64))

    def to_inputs(self, phi: np.ndarray) -> np.ndarray:
        """Attributions on tree features put back in input-feature order."""
        if self.feature_of is None:
            return phi
        out = np.empty_like(phi)
        out[:, self.feature_of] = phi
        return out

    @property
    def n_outputs(self) -> int:
        return int(self.leaf_value.shape[1])

    @property
    def max_path(self) -> int:
        return int(np.diff(self.leaf_start).max(initial=0))

    def expected_value(self) -> np.ndarray:
        """The path-dependent expectation of the raw output: each leaf's value times its paths' zero fractions."""
        weights = np.ones(len(self.leaf_value))
        owner = np.repeat(np.arange(len(self.leaf_value)), np.diff(self.leaf_start))
        np.multiply.at(weights, owner, self.path_zero)
        return self.base_offset + weights @ self.leaf_value


@dataclass
class Nodes:
    """One tree as node arrays. ``cat_left[i]`` is the set (an int bitmask) of categories going left at a
    categorical split, ``-1`` at a numeric one; ``known`` maps a categorical feature to the categories it saw."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    cover: np.ndarray
    value: np.ndarray  # (nodes, outputs)
    is_leaf: np.ndarray
    cat_left: list[int] | None = None
    known: dict[int, int] | None = None


class Builder:
    """Collects the leaves of several trees (a depth-first walk per tree, one region per path feature)."""

    def __init__(self, n_outputs: int) -> None:
        self.n_outputs = n_outputs
        self.values: list[np.ndarray] = []
        self.starts = [0]
        self.feature: list[int] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.nan: list[int] = []
        self.cat: list[int] = []
        self.zero: list[float] = []
        self.sets: list[int] = []

    def add_tree(self, t: Nodes, scale: float) -> None:
        # A region: feature -> [lo, hi, nan follows, categories or None, zero fraction]
        stack: list[tuple[int, dict[int, list[Any]]]] = [(0, {})]
        while stack:
            node, region = stack.pop()
            if t.is_leaf[node]:
                self._leaf(t.value[node] * scale, region)
                continue
            f = int(t.feature[node])
            cats = t.cat_left[node] if t.cat_left is not None else -1
            for child, goes_left in ((int(t.left[node]), True), (int(t.right[node]), False)):
                share = float(t.cover[child]) / float(t.cover[node]) if t.cover[node] > 0 else 0.0
                lo, hi, nan, allowed, zero = region.get(f, [-np.inf, np.inf, True, None, 1.0])
                nan = nan and bool(t.missing_left[node]) == goes_left
                if cats >= 0:
                    known = (t.known or {}).get(f, ALL_CATEGORIES)
                    # Unknown categories go where missing values go (HistGradientBoosting's rule).
                    unknown = ALL_CATEGORIES & ~known
                    side = cats if goes_left else known & ~cats
                    if bool(t.missing_left[node]) == goes_left:
                        side |= unknown
                    allowed = (ALL_CATEGORIES if allowed is None else allowed) & side
                elif goes_left:
                    hi = min(hi, float(t.threshold[node]))
                else:
                    lo = max(lo, float(t.threshold[node]))
                stack.append((child, {**region, f: [lo, hi, nan, allowed, zero * share]}))

    def _leaf(self, value: np.ndarray, region: dict[int, list[Any]]) -> None:
        self.values.append(np.asarray(value, dtype=np.float64).reshape(self.n_outputs))
        for f, (lo, hi, nan, allowed, zero) in sorted(region.items()):
            self.feature.append(f)
            self.lo.append(lo)
            self.hi.append(hi)
            self.nan.append(int(nan))
            if allowed is None:
                self.cat.append(-1)
            else:
                self.cat.append(len(self.sets))
                self.sets.append(allowed)
            self.zero.append(zero)
        self.starts.append(len(self.feature))

    def build(self, n_features: int, base_offset: np.ndarray, output: str, input_dtype: Any) -> TreeEnsemble:
        sets = np.zeros((len(self.sets), 8), dtype=np.uint32)
        for i, bits in enumerate(self.sets):
            for word in range(8):
                sets[i, word] = (bits >> (32 * word)) & 0xFFFFFFFF
        return TreeEnsemble(
            n_features=n_features,
            leaf_value=np.vstack(self.values) if self.values else np.zeros((0, self.n_outputs)),
            leaf_start=np.asarray(self.starts, dtype=np.int64),
            path_feature=np.asarray(self.feature, dtype=np.int64),
            path_lo=np.asarray(self.lo, dtype=np.float64),
            path_hi=np.asarray(self.hi, dtype=np.float64),
            path_nan=np.asarray(self.nan, dtype=np.uint8),
            path_cat=np.asarray(self.cat, dtype=np.int64),
            path_zero=np.asarray(self.zero, dtype=np.float64),
            cat_sets=sets,
            base_offset=np.asarray(base_offset, dtype=np.float64).reshape(self.n_outputs),
            output=output,
            input_dtype=input_dtype,
        )


def _bits(words: np.ndarray) -> int:
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


def _hist_gradient_boosting(model: Any) -> TreeEnsemble:
    predictors = model._predictors
    k = len(predictors[0])
    known_sets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    encoder = getattr(model, "_preprocessor", None)  # with categorical features: an ordinal encoder, categoricals moved first
    is_cat = model._is_categorical_remapped if encoder is not None else getattr(model, "is_categorical_", None)
    known = {int(f): _bits(known_sets[f_idx_map[f]]) for f in np.flatnonzero(is_cat)} if is_cat is not None else {}
    builders = Builder(k)
    for iteration in predictors:
        for out, predictor in enumerate(iteration):
            nodes = predictor.nodes
            bitsets = predictor.raw_left_cat_bitsets
            cat_left = [_bits(bitsets[n["bitset_idx"]]) if n["is_categorical"] else -1 for n in nodes]
            value = np.zeros((len(nodes), k))
            value[:, out] = nodes["value"]
            builders.add_tree(
                Nodes(nodes["left"], nodes["right"], nodes["feature_idx"], nodes["num_threshold"], nodes["missing_go_to_left"],
                       nodes["count"].astype(np.float64), value, nodes["is_leaf"].astype(bool), cat_left, known),
                1.0,
            )
    link = type(model._loss.link).__name__
    if hasattr(model, "classes_"):
        output = "log-odds" if k == 1 else "logit"
    else:
        output = "prediction" if link == "IdentityLink" else "link"
    ensemble = builders.build(model.n_features_in_, np.asarray(model._baseline_prediction).reshape(k), output, np.float64)
    if encoder is None:
        return ensemble
    order = np.concatenate([np.flatnonzero(model.is_categorical_), np.flatnonzero(~model.is_categorical_)])
    return replace(ensemble, encode=_category_codes(model, order), feature_of=order)


def _category_codes(model: Any, order: np.ndarray) -> Any:
    """HistGradientBoosting's own input step — its categorical columns through an ordinal encoder (an unknown value
    becomes missing), moved first — done with sorted lookups instead of a ColumnTransformer call."""
    encoder = model._preprocessor.named_transformers_["encoder"]
    known = [np.asarray([c for c in cats if not np.isnan(c)], dtype=np.float64) for cats in encoder.categories_]
    cat_columns = np.flatnonzero(model.is_categorical_)

    def encode(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = x[:, order].copy()
        for j, (column, cats) in enumerate(zip(cat_columns, known, strict=True)):
            values = x[:, column]
            at = np.clip(np.searchsorted(cats, values), 0, max(len(cats) - 1, 0))
            found = (cats[at] == values) if len(cats) else np.zeros(len(values), dtype=bool)
            out[:, j] = np.where(found, at, np.nan)
        return out

    return encode


def _sklearn_tree(tree: Any, k: int, value_of: Any) -> Nodes:
    t = tree.tree_
    missing = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8))
    return Nodes(t.children_left, t.children_right, t.feature, t.threshold, missing, t.weighted_n_node_samples,
                  value_of(t.value).reshape(t.node_count, k), t.children_left < 0)


def _forest(model: Any) -> TreeEnsemble:
    trees = getattr(model, "estimators_", None)
    trees = [model] if trees is None else list(trees)
    classifier = hasattr(model, "classes_")
    k = len(model.classes_) if classifier else int(getattr(model, "n_outputs_", 1))
    builder = Builder(k)
    for tree in trees:
        builder.add_tree(_sklearn_tree(tree, k, lambda v: v[:, 0, :] if classifier else v[:, :, 0]), 1.0 / len(trees))
    return builder.build(model.n_features_in_, np.zeros(k), "probability" if classifier else "prediction", np.float32)


def _gradient_boosting(model: Any) -> TreeEnsemble:
    stages = model.estimators_  # (iterations, outputs) of regression trees
    k = stages.shape[1]
    builder = Builder(k)
    for row in stages:
        for out, tree in enumerate(row):
            def one_output(v: np.ndarray, out: int = out) -> np.ndarray:
                value = np.zeros((v.shape[0], k))
                value[:, out] = v[:, 0, 0]
                return value

            builder.add_tree(_sklearn_tree(tree, k, one_output), float(model.learning_rate))
    base = np.asarray(model._raw_predict_init(np.zeros((1, model.n_features_in_), dtype=np.float32)))[0]
    output = ("log-odds" if k == 1 else "logit") if hasattr(model, "classes_") else "prediction"
    return builder.build(model.n_features_in_, base, output, np.float32)


_READERS = {
    "HistGradientBoostingClassifier": _hist_gradient_boosting,
    "HistGradientBoostingRegressor": _hist_gradient_boosting,
    "DecisionTreeClassifier": _forest,
    "DecisionTreeRegressor": _forest,
    "ExtraTreeClassifier": _forest,
    "ExtraTreeRegressor": _forest,
    "RandomForestClassifier": _forest,
    "RandomForestRegressor": _forest,
    "ExtraTreesClassifier": _forest,
    "ExtraTreesRegressor": _forest,
    "GradientBoostingClassifier": _gradient_boosting,
    "GradientBoostingRegressor": _gradient_boosting,
}


BOOSTERS = {
    "xgboost": ("Booster", "XGBClassifier", "XGBRegressor"),
    "lightgbm": ("Booster", "LGBMClassifier", "LGBMRegressor"),
}


def is_tree_model(estimator: Any) -> bool:
    """Whether ``estimator`` is a tree model this module reads (scikit-learn's, XGBoost's, LightGBM's)."""
    module, name = type(estimator).__module__, type(estimator).__name__
    library = module.split(".", 1)[0]
    return (name in _READERS and module.startswith("sklearn.")) or name in BOOSTERS.get(library, ())


def read_trees(estimator: Any) -> TreeEnsemble:
    """The leaves of a fitted scikit-learn tree model (see ``is_tree_model``)."""
    if not is_tree_model(estimator):
        raise InvalidInput(f"{type(estimator).__name__} is not a tree model mloop reads; valid: {', '.join(sorted(_READERS))}.",
                           field="model")
    library = type(estimator).__module__.split(".", 1)[0]
    if library in BOOSTERS:
        from mloop.explain._boosters import read_lightgbm, read_xgboost

        return read_xgboost(estimator) if library == "xgboost" else read_lightgbm(estimator)
    if not hasattr(estimator, "n_features_in_"):
        raise InvalidInput(f"The {type(estimator).__name__} is not fitted.", field="model")
    return _READERS[type(estimator).__name__](estimator)
