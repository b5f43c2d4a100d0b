"""Training: tabular gradient boosting pipelines and Optuna tuning."""

from __future__ import annotations

from mloop.training._tabular import DEFAULT_PARAMS, TabularSpec, auc, build_pipeline, fit, tabular, time_split, tune

__all__ = ["DEFAULT_PARAMS", "TabularSpec", "auc", "build_pipeline", "fit", "tabular", "time_split", "tune"]
