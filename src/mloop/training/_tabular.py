"""Tabular gradient boosting: a scikit-learn pipeline (ordinal-encoded categoricals into
HistGradientBoosting) and a short Optuna search over it, validated on a time-ordered holdout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput


@dataclass(frozen=True)
class TabularSpec:
    """Which columns are numeric, which are categorical, and which is the binary target."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def check(self, frame: pd.DataFrame, *, with_target: bool = True) -> None:
        needed = self.features + ([self.target] if with_target else [])
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise InvalidInput(f"Training frame lacks column(s) {missing}; it has {list(frame.columns)}.", field=missing[0])


DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 200,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 0.0,
}


def build_pipeline(spec: TabularSpec, params: dict[str, Any], seed: int) -> Any:
    """An unfitted pipeline: categoricals through an ``OrdinalEncoder`` (unknown levels become missing)
    into ``HistGradientBoostingClassifier`` with native categorical splits. Single-threaded on purpose."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    prep = ColumnTransformer(
        [("cat", encoder, list(spec.categorical)), ("num", "passthrough", list(spec.numeric))],
        verbose_feature_names_out=False,
    )
    n_cat = len(spec.categorical)
    model = HistGradientBoostingClassifier(
        categorical_features=list(range(n_cat)) if n_cat else None,
        early_stopping=False,
        random_state=seed,
        **{**DEFAULT_PARAMS, **params},
    )
    return Pipeline([("prep", prep), ("model", model)])


def fit(frame: pd.DataFrame, spec: TabularSpec, params: dict[str, Any], seed: int) -> Any:
    spec.check(frame)
    pipe = build_pipeline(spec, params, seed)
    return pipe.fit(frame[spec.features], frame[spec.target].astype(int))


def tabular(frame: pd.DataFrame, target: str, *, seed: int = 0, numeric: list[str] | None = None, categorical: list[str] | None = None,
            **params: Any) -> Any:
    """The default retraining recipe: the gradient-boosted pipeline over every column but ``target`` (numbers as
    numeric features, anything else as categories, unless ``numeric`` / ``categorical`` say), with ``params`` over
    :data:`DEFAULT_PARAMS`."""
    features = [c for c in frame.columns if c != target]
    if numeric is None:
        numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and c not in (categorical or [])]
    if categorical is None:
        categorical = [c for c in features if c not in numeric]
    return fit(frame, TabularSpec(tuple(numeric), tuple(categorical), target), params, seed)


def auc(y_true: np.ndarray | pd.Series, score: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present (a window with no positives)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true).astype(int)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))


def time_split(frame: pd.DataFrame, holdout: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First ``1 - holdout`` of the rows (already in time order) to train, the rest to validate."""
    if not 0.0 < holdout < 1.0:
        raise InvalidInput(f"holdout must be within (0, 1), got {holdout}.", field="holdout")
    cut = int(len(frame) * (1.0 - holdout))
    return frame.iloc[:cut], frame.iloc[cut:]


def tune(
    frame: pd.DataFrame,
    spec: TabularSpec,
    *,
    n_trials: int,
    seed: int,
    holdout: float = 0.2,
    on_trial: Callable[[int, float, dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], float]:
    """A seeded Optuna TPE search maximising holdout AUC; returns the best params and their AUC."""
    import optuna

    if n_trials < 1:
        raise InvalidInput(f"n_trials must be at least 1, got {n_trials}.", field="n_trials")
    spec.check(frame)
    train, valid = time_split(frame, holdout)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 15, 63),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 200, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True),
            "max_iter": trial.suggest_int("max_iter", 100, 300, step=50),
        }
        model = fit(train, spec, params, seed)
        value = auc(valid[spec.target], model.predict_proba(valid[spec.features])[:, 1])
        if on_trial is not None:
            on_trial(trial.number, value, params)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return dict(study.best_params), float(study.best_value)
