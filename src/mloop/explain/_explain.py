"""``explain(model, rows)``: attributions for rows of a registered version or of a fitted estimator, with the
explainer built once per model and kept beside it."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.explain._explainers import Explainer, Explanations, explainer_for

_explainers: weakref.WeakKeyDictionary[Any, dict[str, Explainer]] = weakref.WeakKeyDictionary()


def as_frame(rows: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows as a frame: a DataFrame, a list of records, a dict of columns, or a 2-D array (with ``columns``)."""
    if isinstance(rows, pd.DataFrame):
        frame = rows
    elif isinstance(rows, dict):
        frame = pd.DataFrame(rows if all(isinstance(v, (list, tuple, np.ndarray)) for v in rows.values()) else [rows])
    elif isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        frame = pd.DataFrame(rows)
    elif isinstance(rows, np.ndarray) and rows.ndim == 2 and columns is not None and rows.shape[1] == len(columns):
        frame = pd.DataFrame(rows, columns=columns)
    else:
        raise InvalidInput("Rows to explain must be a DataFrame, a list of records, a dict of columns, or a 2-D array matching "
                           "the model's columns.", field="rows")
    if not len(frame):
        raise InvalidInput("There are no rows to explain.", field="rows")
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InvalidInput(f"The rows lack the model's input column(s) {missing}.", field=missing[0])
    return frame


def _columns_of(model: Any) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None and type(model).__name__ == "Pipeline":
        names = getattr(model[0], "feature_names_in_", None)
    if names is None and hasattr(model, "feature_name"):  # a LightGBM Booster
        names = model.feature_name()
    if names is None and hasattr(model, "feature_names"):  # an XGBoost Booster
        names = model.feature_names
    if names is None:
        raise InvalidInput("This model does not name its input columns; pass columns=[...].", field="columns")
    return [str(n) for n in names]


def explainer_of(model: Any, *, columns: list[str] | None = None, background: pd.DataFrame | None = None,
                 method: str = "auto") -> Explainer:
    """The explainer of ``model`` (a ``LoadedModel`` or a fitted estimator), built on first use and kept with it."""
    from mloop.registry import LoadedModel

    estimator, score = model, None
    if isinstance(model, LoadedModel):
        estimator = model.model
        columns = columns or model.feature_names or None
        if background is None:
            background = model.background
        if model.flavour == "pyfunc":
            score = model.score
    if columns is None:
        columns = _columns_of(estimator)
    if isinstance(model, LoadedModel):
        cache = model.explainers
    else:
        try:
            cache = _explainers.setdefault(model, {})
        except TypeError:  # neither hashable nor weak-referenceable: built every time
            cache = {}
    key = f"{method}:{','.join(columns)}"
    if key not in cache:
        cache[key] = explainer_for(estimator, columns, background=background, method=method, score=score)
    return cache[key]


def explain(model: Any, rows: Any, *, columns: list[str] | None = None, background: pd.DataFrame | None = None,
            method: str = "auto") -> Explanations:
    """Per-row attributions of ``model``'s output to its input columns: exact TreeSHAP for tree ensembles,
    SHAP's permutation explainer over ``background`` otherwise. ``base_values + attributions.sum(1) == outputs``."""
    explainer = explainer_of(model, columns=columns, background=background, method=method)
    return explainer.explain(as_frame(rows, explainer.columns))
