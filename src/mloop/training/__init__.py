"""Training: tabular gradient boosting pipelines and Optuna tuning; models that learn online for the loop's adaptive
response. Names load lazily: the tabular recipe does not import River and the online models with it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.training._online import OnlineClassifier, RiverClassifier, can_learn_online, online, river, updated
    from mloop.training._tabular import DEFAULT_PARAMS, TabularSpec, auc, build_pipeline, fit, tabular, time_split, tune

_WHERE: dict[str, str] = {
    **{n: "_online" for n in ("OnlineClassifier", "RiverClassifier", "can_learn_online", "online", "river", "updated")},
    **{n: "_tabular" for n in ("DEFAULT_PARAMS", "TabularSpec", "auc", "build_pipeline", "fit", "tabular", "time_split", "tune")},
}

__all__ = [
    "DEFAULT_PARAMS", "OnlineClassifier", "RiverClassifier", "TabularSpec", "auc", "build_pipeline", "can_learn_online", "fit", "online",
    "river", "tabular", "time_split", "tune", "updated",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mloop.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mloop.training.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
