"""Training: tabular gradient boosting pipelines and Optuna tuning; models that learn online for the loop's adaptive
response."""

from __future__ import annotations

from mloop.training._online import OnlineClassifier, RiverClassifier, can_learn_online, online, river, updated
from mloop.training._tabular import DEFAULT_PARAMS, TabularSpec, auc, build_pipeline, fit, tabular, time_split, tune

__all__ = [
    "DEFAULT_PARAMS", "OnlineClassifier", "RiverClassifier", "TabularSpec", "auc", "build_pipeline", "can_learn_online", "fit", "online",
    "river", "tabular", "time_split", "tune", "updated",
]
