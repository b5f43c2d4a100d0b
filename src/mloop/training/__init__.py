"""Training: tabular gradient boosting pipelines and Optuna tuning; models that learn online for the loop's adaptive
response. Names load lazily: the tabular recipe does not import River and the online models with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

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


__getattr__ = lazy_names(__name__, _WHERE, globals())
