"""Global explanations of a model over a sample of rows: mean |SHAP| per input column, permutation importance with
confidence intervals (when labels are given), partial dependence with ICE curves for the top columns, the model's
own feature importances where it has them, and a shallow surrogate tree — its rules, its fidelity to the model and
an SVG drawing — for a reader who wants the model in a few lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mloop.explain._explain import as_frame, explainer_of
from mloop.explain._surrogate import Surrogate, surrogate_tree

SAMPLED_ROWS = 20  # rows a sampling explainer explains for a global explanation (each costs thousands of model calls)
SAMPLED_OTHER_ROWS = 200  # rows permutation importance and partial dependence use when the model is not a tree model


@dataclass(frozen=True)
class Importance:
    """A column's importance: the point estimate and a 95 % interval (equal to it where there is no spread)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Dependence:
    """Partial dependence of the model's score on one column: the grid, the average (PD) and a few rows' curves
    (ICE)."""

    column: str
    grid: list[Any]
    average: list[float]
    individual: list[list[float]]
    categorical: bool


@dataclass(frozen=True)
class GlobalExplanation:
    """Everything a model card or report shows about how a model uses its inputs, computed on ``rows`` rows."""

    rows: int
    method: str
    output: str
    mean_abs_shap: dict[str, float]
    permutation: dict[str, Importance] | None
    permutation_metric: str | None
    dependence: list[Dependence]
    model_importance: dict[str, float] | None
    surrogate: Surrogate | None
    notes: list[str] = field(default_factory=list)

    def top(self, k: int = 5) -> list[str]:
        """The ``k`` columns with the largest mean |SHAP| (permutation importance where there is none)."""
        ranking = self.mean_abs_shap or {c: p.value for c, p in (self.permutation or {}).items()}
        return sorted(ranking, key=lambda c: -ranking[c])[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for reports and the card's data)."""
        return {
            "rows": self.rows, "method": self.method, "output": self.output, "mean_abs_shap": self.mean_abs_shap,
            "permutation": None if self.permutation is None else {c: vars(v) for c, v in self.permutation.items()},
            "permutation_metric": self.permutation_metric,
            "dependence": [vars(d) for d in self.dependence],
            "model_importance": self.model_importance,
            "surrogate": None if self.surrogate is None else self.surrogate.to_dict(),
            "notes": self.notes,
        }


def _score_function(model: Any) -> Any:
    """The model's score per row: the positive-class probability of a binary classifier, else its prediction."""
    from mloop.registry import LoadedModel

    if isinstance(model, LoadedModel):
        return model.score
    classifier = hasattr(model, "predict_proba")

    def score(frame: pd.DataFrame) -> np.ndarray:
        out = np.asarray(model.predict_proba(frame) if classifier else model.predict(frame))
        return out[:, -1] if out.ndim == 2 else out

    return score


def _estimator(model: Any) -> Any:
    from mloop.registry import LoadedModel

    return model.model if isinstance(model, LoadedModel) else model


def _interval(values: np.ndarray) -> Importance:
    mean = float(np.mean(values))
    if len(values) < 2:
        return Importance(mean, mean, mean)
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return Importance(mean, mean - half, mean + half)


def _permutation(model: Any, frame: pd.DataFrame, labels: np.ndarray, columns: list[str], repeats: int, seed: int,
                 fast: Any) -> tuple[dict[str, Importance], str]:
    """scikit-learn's permutation importance; scored from the trees alone where they give the score (``fast``), which
    is the same score without a pipeline call per permutation."""
    from sklearn.inspection import permutation_importance

    estimator = _estimator(model)
    classifier = hasattr(estimator, "predict_proba")
    metric = "roc_auc" if classifier and len(np.unique(labels)) == 2 else "accuracy" if classifier else "r2"
    scoring: Any = metric
    if fast is not None and metric in ("roc_auc", "r2"):
        from sklearn.metrics import r2_score, roc_auc_score

        measure = roc_auc_score if metric == "roc_auc" else r2_score

        def scoring(_estimator: Any, x: pd.DataFrame, y: Any) -> float:
            return float(measure(y, fast(x)))

    result = permutation_importance(estimator, frame[columns], labels, scoring=scoring, n_repeats=repeats, random_state=seed)
    return {c: _interval(result.importances[i]) for i, c in enumerate(columns)}, metric


def _grid(values: pd.Series, points: int) -> tuple[list[Any], bool]:
    if pd.api.types.is_numeric_dtype(values.dtype):
        finite = values.dropna().to_numpy(dtype=np.float64)
        if not len(finite):
            return [], False
        grid = np.unique(np.quantile(finite, np.linspace(0.05, 0.95, points)))
        return [float(v) for v in grid], False
    counts = values.dropna().astype(str).value_counts()
    return list(counts.index[:points]), True


def _dependence(score: Any, frame: pd.DataFrame, column: str, points: int, curves: int, seed: int) -> Dependence | None:
    """PD and ICE by setting ``column`` to each grid value for a sample of rows (missing values and object columns
    are handled the model's own way, which scikit-learn's percentile grid is not)."""
    grid, categorical = _grid(frame[column], points)
    if not grid:
        return None
    sample = frame.sample(min(len(frame), 200), random_state=seed).reset_index(drop=True)
    stacked = pd.concat([sample] * len(grid), ignore_index=True)
    stacked[column] = np.repeat(np.array(grid, dtype=object if categorical else np.float64), len(sample))
    scores = np.asarray(score(stacked), dtype=np.float64).reshape(len(grid), len(sample))
    return Dependence(column, grid, scores.mean(axis=1).tolist(), scores[:, :curves].T.tolist(), categorical)


def _model_importance(explainer: Any) -> dict[str, float] | None:
    """The final estimator's own ``feature_importances_`` summed per input column (None when it has none, as
    HistGradientBoosting does)."""
    prepared = getattr(explainer, "prepared", None)
    values = getattr(getattr(prepared, "estimator", None), "feature_importances_", None)
    if prepared is None or values is None or len(values) != len(prepared.owner):
        return None
    totals = prepared.to_inputs(np.asarray(values, dtype=np.float64)[None, :])[0]
    return {c: float(v) for c, v in zip(prepared.columns, totals, strict=True)}


def global_explanation(model: Any, rows: Any, *, labels: Any = None, columns: list[str] | None = None, top: int = 5,
                       max_rows: int = 2000, repeats: int = 5, grid_points: int = 12, curves: int = 20,
                       surrogate_depth: int = 3, seed: int = 0, sampled_rows: int = SAMPLED_ROWS) -> GlobalExplanation:
    """How ``model`` uses its inputs over ``rows`` (a sample of up to ``max_rows`` is used); ``labels`` (one per
    row) add permutation importance. A model explained by sampling gets mean |SHAP| from ``sampled_rows`` rows (0:
    none, as at registration, where it would cost seconds a model)."""
    explainer = explainer_of(model, columns=columns)
    frame = as_frame(rows, explainer.columns)
    y = None if labels is None else np.asarray(labels)
    if y is not None and len(y) != len(frame):
        from mloop.errors import InvalidInput

        raise InvalidInput(f"labels has {len(y)} values for {len(frame)} rows.", field="labels")
    sampled = explainer.method in ("permutation", "kernel", "lime")
    if sampled:  # the model is called row by row through pandas: fewer rows for everything
        max_rows = min(max_rows, SAMPLED_OTHER_ROWS)
    if len(frame) > max_rows:
        keep = np.random.default_rng(seed).choice(len(frame), max_rows, replace=False)
        keep.sort()
        frame = frame.iloc[keep].reset_index(drop=True)
        y = None if y is None else y[keep]
    frame = frame.reset_index(drop=True)
    notes: list[str] = []
    mean_abs: dict[str, float] = {}
    output = getattr(explainer, "output", "")
    if not sampled or sampled_rows > 0:
        result = explainer.explain(frame.head(sampled_rows) if sampled else frame)
        output = result.output
        mean_abs = {c: float(v) for c, v in zip(result.columns, np.abs(result.attributions).mean(axis=0), strict=True)}
        if sampled:
            notes.append(f"Mean |SHAP| from {sampled_rows} rows: the model is explained by sampling.")
    else:
        notes.append("No mean |SHAP| here: this model is explained by sampling, seconds a row; "
                     "mloop.explain.explain(model, rows) gives it for the rows you choose.")
    permutation, metric = None, None
    fast = getattr(explainer, "scores", None)
    if fast is not None and fast(frame.head(2)) is None:
        fast = None
    if y is not None and type(_estimator(model)).__module__.split(".", 1)[0] in ("sklearn", "lightgbm", "xgboost"):
        permutation, metric = _permutation(model, frame, y, explainer.columns, repeats, seed, fast)
    elif y is None:
        notes.append("Permutation importance needs labelled rows; none were given.")
    score = fast or _score_function(model)
    ranking = mean_abs or ({c: p.value for c, p in permutation.items()} if permutation else {c: 0.0 for c in explainer.columns})
    order = sorted(ranking, key=lambda c: -ranking[c])[:top]
    dependence = [d for c in order if (d := _dependence(score, frame, c, grid_points, curves, seed)) is not None]
    model_importance = _model_importance(explainer)
    if model_importance is None:
        notes.append("The model has no feature importances of its own; mean |SHAP| stands in for them.")
    surrogate = surrogate_tree(frame, np.asarray(score(frame), dtype=np.float64), depth=surrogate_depth, seed=seed)
    return GlobalExplanation(len(frame), explainer.method, output, mean_abs, permutation, metric, dependence, model_importance,
                             surrogate, notes)
