"""Feature steps on scikit-learn: a transform fit on a table (transformers, polynomial and interaction terms,
selection by mutual information or an L1 model) over its numeric columns, the others passed through; and a model
composed of that transform and an estimator fit on its output, so that what is registered takes the raw columns."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from mloop.errors import InvalidInput
from mloop.pipelines._spec import Features, Select


def task_of(section: Features, y: pd.Series) -> str:
    """``classification`` or ``regression``: as declared, else a float target with more than 10 values regresses."""
    if section.task != "auto":
        return section.task
    many = 10 if pd.api.types.is_float_dtype(y) else 20 if pd.api.types.is_integer_dtype(y) else None
    return "regression" if many is not None and y.nunique() > many else "classification"


def _selector(select: Select, task: str, columns: int, seed: int, classes: int) -> Any:
    from sklearn.feature_selection import SelectFromModel, SelectKBest, mutual_info_classif, mutual_info_regression
    from sklearn.linear_model import Lasso, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if select.method == "mutual_info":
        score = mutual_info_classif if task == "classification" else mutual_info_regression
        k = int(select.k or columns)
        return SelectKBest(functools.partial(score, random_state=seed), k="all" if k >= columns else k)
    if task == "classification":  # liblinear for two classes; saga takes L1 with more
        solver = "liblinear" if classes <= 2 else "saga"
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / select.strength, l1_ratio=1.0, solver=solver, max_iter=2000,
                                                                   random_state=seed))
        getter = "named_steps.logisticregression.coef_"
    else:
        model = make_pipeline(StandardScaler(), Lasso(alpha=select.strength, random_state=seed))
        getter = "named_steps.lasso.coef_"
    return SelectFromModel(model, threshold=1e-5, importance_getter=getter)


def _transformer(spec: Any, where: str) -> Any:
    from mloop.pipelines._steps import resolve_callable

    try:
        return resolve_callable(spec.callable, where)(**spec.params)
    except TypeError as exc:
        raise InvalidInput(f"{where}: {spec.callable}({spec.params}) cannot be made: {exc}.", field=where) from None


def fit(section: Features, frame: pd.DataFrame, where: str) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """The fitted transform, the transformed table (the target column kept) and what to record about it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures

    if section.target not in frame.columns:
        raise InvalidInput(f"{where}.target: the input has no column {section.target!r}; it has {list(frame.columns)}.", field=f"{where}.target")
    x, y = frame.drop(columns=[section.target]), frame[section.target]
    numeric = [str(c) for c in x.columns if pd.api.types.is_numeric_dtype(x[c]) and not pd.api.types.is_bool_dtype(x[c])]
    columns = section.columns or numeric
    wrong = [c for c in columns if c not in numeric]
    if wrong:
        raise InvalidInput(f"{where}.columns: {wrong} are not numeric columns of the input; numeric columns: {numeric}.", field=f"{where}.columns")
    if not columns:
        raise InvalidInput(f"{where}: the input has no numeric columns to work on.", field=f"{where}.columns")
    if y.isna().any():
        raise InvalidInput(f"{where}.target: {int(y.isna().sum())} rows have no {section.target!r}; drop them (a call step) before fitting features.",
                           field=f"{where}.target")
    task = task_of(section, y)
    target = y.to_numpy()
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    steps += [(f"transformer{i}", _transformer(t, f"{where}.transformers[{i}].callable")) for i, t in enumerate(section.transformers)]
    if section.polynomial is not None:
        steps.append(("polynomial", PolynomialFeatures(section.polynomial.degree, interaction_only=section.polynomial.interaction_only,
                                                       include_bias=False)))
    if section.select is not None:  # k is checked against the columns the steps before it make, counted by fitting them
        made = Pipeline(steps).fit_transform(x[columns], target).shape[1] if section.select.method == "mutual_info" else len(columns)
        steps.append(("select", _selector(section.select, task, made, section.seed, int(y.nunique()))))
    transform = ColumnTransformer([("features", Pipeline(steps), columns)], remainder="passthrough", verbose_feature_names_out=False)
    transform.set_output(transform="pandas")
    with warnings.catch_warnings():  # an L1 fit that stops short of convergence still ranks the columns it keeps
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="No features were selected")  # refused below, naming the field
        try:
            out = transform.fit_transform(x, target)
        except ValueError as exc:
            raise InvalidInput(f"{where}: the features could not be fit: {exc}", field=where) from None
    if not isinstance(out, pd.DataFrame):  # a transformer that cannot name its outputs
        out = pd.DataFrame(np.asarray(out), columns=[f"f{i}" for i in range(np.asarray(out).shape[1])], index=x.index)
    out.columns = [str(c) for c in out.columns]
    made = [c for c in out.columns if c not in x.columns or c in columns]
    if not made:
        strength = section.select.strength if section.select is not None else None
        raise InvalidInput(f"{where}.select.strength: the L1 model kept none of the columns at strength {strength}; lower it.",
                           field=f"{where}.select.strength")
    out[section.target] = y.to_numpy()
    record = {"task": task, "columns_in": len(columns), "columns_out": len(made), "kept": ", ".join(made)[:500]}
    return transform, out.reset_index(drop=True), record


def compose(transform: Any, model: Any) -> Any:
    """The transform, then the model fit on its output: one estimator that takes the raw columns."""
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", transform), ("model", model)])
