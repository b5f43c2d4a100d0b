"""Explainers: per-row attributions on a model's input columns that add up to its output minus a base value.

One Protocol, three kinds chosen by the model: exact TreeSHAP from scikit-learn's own trees (``tree-shap``),
LightGBM's and XGBoost's native contributions (``lightgbm``, ``xgboost`` — the same TreeSHAP, in C++), and SHAP's
permutation explainer over a background sample for any other model (``permutation``, exact additivity), with
SHAP's kernel explainer on request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.explain._inputs import NotSeparable, Prepared, prepare
from mloop.explain._trees import TreeEnsemble, is_tree_model, read_trees
from mloop.explain._treeshap import tree_shap_and_outputs

METHODS = ("auto", "tree", "permutation", "kernel", "lime", "integrated_gradients")
MAX_BACKGROUND = 100  # background rows SHAP's sampling explainers evaluate the model over, per coalition
OUTPUT_SCALES = {
    "log-odds": "the positive class's log-odds (the model's raw margin; the probability is its logistic)",
    "logit": "the explained class's raw score before the softmax",
    "probability": "the explained class's probability",
    "prediction": "the model's prediction",
    "link": "the model's raw score before its inverse link (log for Poisson, Gamma, Tweedie)",
}


@dataclass(frozen=True)
class Explanations:
    """Attributions ``(rows, columns)`` with, per row, the base value and the output they explain:
    ``base_values + attributions.sum(1) == outputs``. ``output`` names the scale, ``classes`` the class explained
    per row (None for a regressor)."""

    columns: list[str]
    base_values: np.ndarray
    outputs: np.ndarray
    attributions: np.ndarray
    method: str
    output: str
    classes: list[str] | None = None
    local_predictions: np.ndarray | None = None  # LIME: its surrogate's prediction, which base + Σ attributions equal

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready entry per row: ``{"base_value", "output", "attributions": {column: value}}`` (and the
        class explained, for a classifier)."""
        out = []
        for i in range(len(self.outputs)):
            entry: dict[str, Any] = {
                "base_value": float(self.base_values[i]),
                "output": float(self.outputs[i]),
                "attributions": dict(zip(self.columns, self.attributions[i].tolist(), strict=True)),
            }
            if self.classes is not None:
                entry["class"] = self.classes[i]
            if self.local_predictions is not None:
                entry["local_prediction"] = float(self.local_predictions[i])
            out.append(entry)
        return out

    def additivity_error(self) -> float:
        """The largest |base + Σ attributions − output| over the rows (for LIME, how far its local surrogate is from
        the model at the row: its attributions add up to its own prediction, not the model's)."""
        if not len(self.outputs):
            return 0.0
        return float(np.abs(self.base_values + self.attributions.sum(axis=1) - self.outputs).max())


class Explainer(Protocol):
    """What the server and the reports need: the method's name, the input columns, and ``explain(frame)``."""

    method: str
    columns: list[str]

    def explain(self, frame: pd.DataFrame) -> Explanations: ...


def _class_label(classes: Any, index: int) -> str:
    return str(classes[index]) if classes is not None else str(index)


def _pick(raw: np.ndarray, classes: Any) -> np.ndarray:
    """The output each row explains: the only one, a binary model's positive class, else the row's top class."""
    if raw.shape[1] == 1:
        return np.zeros(len(raw), dtype=np.int64)
    if raw.shape[1] == 2 and classes is not None and len(classes) == 2:
        return np.ones(len(raw), dtype=np.int64)
    return np.argmax(raw, axis=1)


class TreeShapExplainer:
    """Exact path-dependent TreeSHAP from a scikit-learn tree model's own trees (see ``_treeshap``)."""

    method = "tree-shap"

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.columns = prepared.columns
        self.estimator = prepared.estimator
        self.trees: TreeEnsemble = read_trees(self.estimator)
        self.base = self.trees.expected_value()
        self.classes = getattr(self.estimator, "classes_", None)
        self.output = self.trees.output

    def scores(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The model's score per row — a binary classifier's positive-class probability, a regressor's prediction —
        from its final estimator on the preprocessed rows (the pipeline's encoders as lookups: no pipeline call);
        None for several classes."""
        est = self.estimator
        x = self.prepared.transform(frame)
        names = getattr(est, "feature_names_in_", None)
        data: Any = pd.DataFrame(x, columns=names) if names is not None else x
        if hasattr(est, "predict_proba"):
            if self.classes is not None and len(self.classes) != 2:
                return None
            return np.asarray(est.predict_proba(data))[:, -1]
        if self.output == "log-odds":  # a bare Booster with a binary objective predicts the probability
            return np.asarray(est.predict(data if type(est).__module__.startswith("lightgbm") else _dmatrix(data)))
        return np.asarray(est.predict(data if not type(est).__module__.startswith("xgboost") or hasattr(est, "get_booster") else _dmatrix(data)))

    def explain(self, frame: pd.DataFrame) -> Explanations:
        x = self.prepared.transform(frame)
        if self.trees.n_outputs == 1:  # the raw output from the same pass over the leaves (tests hold it to the model's own)
            phi, out = tree_shap_and_outputs(self.trees, x, 0)
            raw = out[:, None]
            picked = np.zeros(len(x), dtype=np.int64)
        else:
            results = [tree_shap_and_outputs(self.trees, x, k) for k in range(self.trees.n_outputs)]
            raw = np.column_stack([r[1] for r in results])
            picked = _pick(raw, self.classes)
            phi = np.stack([r[0] for r in results])[picked, np.arange(len(x))]
        classes = None
        if self.classes is not None:  # one output for two classes: it is the second class's
            shift = 1 if raw.shape[1] == 1 and len(self.classes) == 2 else 0
            classes = [_class_label(self.classes, int(k) + shift) for k in picked]
        return Explanations(self.columns, self.base[picked], raw[np.arange(len(x)), picked], self.prepared.to_inputs(phi),
                            self.method, self.output, classes)


def _dmatrix(x: Any) -> Any:
    import xgboost as xgb

    return xgb.DMatrix(x)


def _booster_output(objective: str) -> str:
    if objective.startswith(("binary", "cross_entropy", "xentropy")):
        return "log-odds"
    if objective.startswith(("multi", "softmax", "multiclass")):
        return "logit"
    if objective.startswith(("count:poisson", "poisson", "gamma", "tweedie", "reg:gamma", "reg:tweedie", "survival")):
        return "link"
    return "prediction"


class BoosterExplainer:
    """LightGBM's ``pred_contrib`` and XGBoost's ``pred_contribs``: the libraries' own exact TreeSHAP, in C++."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.columns = prepared.columns
        est = prepared.estimator
        self.classes = getattr(est, "classes_", None)
        self.method = "xgboost" if type(est).__module__.startswith("xgboost") else "lightgbm"
        if self.method == "lightgbm":
            self.booster = est.booster_ if hasattr(est, "booster_") else est
            objective = str(self.booster.params.get("objective", "regression"))
        else:
            self.booster = est.get_booster() if hasattr(est, "get_booster") else est
            objective = json.loads(self.booster.save_config())["learner"]["objective"]["name"]
        self.output = _booster_output(objective)

    def _matrix(self, frame: pd.DataFrame) -> Any:
        if type(self.prepared.estimator).__name__ == "Pipeline":
            return self.prepared.transform(frame)
        return frame[self.columns]  # native models keep their own handling of dtypes (categoricals)

    def _contributions(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """(contributions (rows, outputs, features + 1), raw output (rows, outputs))."""
        if self.method == "lightgbm":
            contrib = np.asarray(self.booster.predict(x, pred_contrib=True))
            raw = np.asarray(self.booster.predict(x, raw_score=True))
        else:
            import xgboost as xgb

            matrix = xgb.DMatrix(x, enable_categorical=True)
            contrib = np.asarray(self.booster.predict(matrix, pred_contribs=True))
            raw = np.asarray(self.booster.predict(matrix, output_margin=True))
        rows = contrib.shape[0]
        raw = raw.reshape(rows, -1)
        return contrib.reshape(rows, raw.shape[1], -1), raw

    def explain(self, frame: pd.DataFrame) -> Explanations:
        contrib, raw = self._contributions(self._matrix(frame))
        picked = _pick(raw, self.classes) if raw.shape[1] > 1 else np.zeros(len(raw), dtype=np.int64)
        chosen = contrib[np.arange(len(raw)), picked]
        classes = None
        if self.output in ("log-odds", "logit"):
            labels = self.classes if self.classes is not None else (["1"] if raw.shape[1] == 1 else None)
            classes = [_class_label(labels, int(k) if raw.shape[1] > 1 else -1) for k in picked]
        return Explanations(self.columns, chosen[:, -1], raw[np.arange(len(raw)), picked], self.prepared.to_inputs(chosen[:, :-1]),
                            self.method, self.output, classes)


class SampledExplainer:
    """SHAP's permutation (default; exactly additive) or kernel explainer over ``background`` rows, explaining the
    model's score: the positive-class probability of a binary classifier, else its output."""

    output = "probability"

    def __init__(self, score: Callable[[pd.DataFrame], np.ndarray], columns: list[str], background: pd.DataFrame, *,
                 method: str = "permutation", classifier: bool = True, seed: int = 0) -> None:
        if background is None or not len(background):
            raise InvalidInput("Explaining this model needs background rows from its training data; none are recorded.", field="background")
        self.columns = columns
        self.method = method
        self.output = "probability" if classifier else "prediction"
        self.score = score
        self.background = background[columns].reset_index(drop=True)
        self.levels: dict[str, list[Any]] = {c: [] for c in columns if not pd.api.types.is_numeric_dtype(self.background[c])}
        self.seed = seed

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows as numbers for SHAP's maskers: a non-numeric column becomes codes into its levels (new levels added)."""
        out = np.empty((len(frame), len(self.columns)))
        for j, col in enumerate(self.columns):
            values = frame[col]
            if col in self.levels:
                levels = self.levels[col]
                index = {v: i for i, v in enumerate(levels)}
                codes = []
                for v in values.tolist():
                    key = None if v is None or (isinstance(v, float) and np.isnan(v)) else v
                    if key not in index:
                        index[key] = len(levels)
                        levels.append(key)
                    codes.append(index[key])
                out[:, j] = codes
            else:
                out[:, j] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def _decode(self, values: np.ndarray) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, col in enumerate(self.columns):
            if col in self.levels:
                levels = np.array(self.levels[col], dtype=object)
                data[col] = levels[values[:, j].astype(np.int64)]
            else:
                data[col] = values[:, j]
        return pd.DataFrame(data)

    def _f(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(self.score(self._decode(values)), dtype=np.float64).reshape(len(values))

    def explain(self, frame: pd.DataFrame) -> Explanations:
        import shap

        data = self._encode(frame)
        bg = self._encode(self.background)
        if self.method == "lime":
            return self._lime(data, bg)
        bg = bg[np.random.default_rng(self.seed).choice(len(bg), MAX_BACKGROUND, replace=False)] if len(bg) > MAX_BACKGROUND else bg
        if self.method == "kernel":
            explainer = shap.KernelExplainer(self._f, bg, silent=True)
            values = np.asarray(explainer.shap_values(data, silent=True), dtype=np.float64).reshape(len(data), -1)
            base = np.full(len(data), float(np.ravel(explainer.expected_value)[0]))
        else:
            masker = shap.maskers.Independent(bg, max_samples=len(bg))
            explainer = shap.PermutationExplainer(self._f, masker, seed=self.seed)
            result = explainer(data, max_evals=max(2 * len(self.columns) + 1, 10 * len(self.columns)), silent=True)
            values = np.asarray(result.values, dtype=np.float64).reshape(len(data), -1)
            base = np.asarray(result.base_values, dtype=np.float64).reshape(len(data))
        outputs = self._f(data)
        return Explanations(self.columns, base, outputs, values, self.method, self.output, None)


    def _lime(self, data: np.ndarray, bg: np.ndarray) -> Explanations:
        """LIME's local linear surrogate per row (discretised numbers, categories as themselves): its intercept is the
        base value, its weights the attributions, and they add up to its own prediction at the row."""
        from lime.lime_tabular import LimeTabularExplainer

        categorical = [j for j, c in enumerate(self.columns) if c in self.levels]
        classifier = self.output == "probability"
        explainer = LimeTabularExplainer(np.nan_to_num(bg), mode="classification" if classifier else "regression", feature_names=self.columns,
                                         categorical_features=categorical, discretize_continuous=True, random_state=self.seed)

        def predict(values: np.ndarray) -> np.ndarray:
            p = self._f(values)
            return np.column_stack([1 - p, p]) if classifier else p

        base, local, values = [], [], np.zeros((len(data), len(self.columns)))
        for i, row in enumerate(np.nan_to_num(data)):
            exp = explainer.explain_instance(row, predict, num_features=len(self.columns), num_samples=2000, labels=(1,) if classifier else None)
            key = 1 if classifier else next(iter(exp.local_exp))
            for j, weight in exp.local_exp[key]:
                values[i, j] = weight
            base.append(float(exp.intercept[key]))
            local.append(float(np.ravel(exp.local_pred)[0]))
        return Explanations(self.columns, np.asarray(base), self._f(data), values, "lime", self.output, None, np.asarray(local))


def explainer_for(model: Any, columns: list[str], *, background: pd.DataFrame | None = None, method: str = "auto",
                  score: Callable[[pd.DataFrame], np.ndarray] | None = None) -> Explainer:
    """The explainer for a fitted ``model`` over input ``columns``: exact TreeSHAP for tree ensembles (``auto``),
    else SHAP's ``permutation`` or ``kernel`` explainer over ``background`` rows of its training data."""
    if method not in METHODS:
        raise InvalidInput(f"Unknown explanation method {method!r}. Valid: {', '.join(METHODS)}.", field="method")
    if method == "integrated_gradients":  # a TabularNet's gradients through Captum (see _neural)
        from mloop.explain._neural import IntegratedGradientsExplainer

        return IntegratedGradientsExplainer(model, columns, background=background)
    if method in ("auto", "tree"):
        try:
            prepared = prepare(model, columns)
        except NotSeparable as exc:
            if method == "tree":
                raise InvalidInput(f"TreeSHAP needs preprocessing that keeps input columns apart; this model has {exc}.", field="method") from exc
            prepared = None
        if prepared is not None:
            module = type(prepared.estimator).__module__
            if is_tree_model(prepared.estimator):
                try:
                    return TreeShapExplainer(prepared)
                except InvalidInput:  # a booster with splits mloop does not read exactly: the library's own contributions
                    if not module.startswith(("lightgbm", "xgboost")):
                        raise
                    return BoosterExplainer(prepared)
        if method == "tree":
            raise InvalidInput(f"{type(model).__name__} is not a tree ensemble mloop explains exactly; use method permutation.", field="method")
    classifier = hasattr(model, "predict_proba")
    if score is None:
        def score(frame: pd.DataFrame) -> np.ndarray:
            out = np.asarray(model.predict_proba(frame) if classifier else model.predict(frame))
            return out[:, -1] if out.ndim == 2 else out

    return SampledExplainer(score, columns, background if background is not None else pd.DataFrame(),
                            method=method if method in ("kernel", "lime") else "permutation", classifier=classifier)
