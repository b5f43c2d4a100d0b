"""What each kind of step does, as plain functions of its section and its loaded inputs: they return the outputs and
what the step's MLflow run should record, and touch nothing else (the runner stores, caches and tracks)."""

from __future__ import annotations

import importlib
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.pipelines._cache import fresh
from mloop.pipelines._spec import GATE, Call, Evaluate, Ingest, Split, Train


@dataclass
class Done:
    outputs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    stop: str | None = None  # why nothing after this step may run (a gate that failed), recorded with the step
    children: list[dict[str, Any]] = field(default_factory=list)  # a tune step's trials, each logged as a nested run


def resolve_callable(path: str, where: str) -> Callable[..., Any]:
    """``module:function`` imported; a failure names the step's field."""
    module_name, _, name = path.partition(":")
    try:
        module = fresh(importlib.import_module(module_name))
    except Exception as exc:
        raise InvalidInput(f"{where}: cannot import {module_name!r} ({type(exc).__name__}: {exc}).", field=where) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise InvalidInput(f"{where}: {module_name!r} has no function {name!r}.", field=where)
    return function  # type: ignore[no-any-return]


def ingest(section: Ingest, root: Path, where: str) -> Done:
    if section.callable is not None:
        frame = resolve_callable(section.callable, f"{where}.callable")(**section.params)
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"{where}: {section.callable} returned a {type(frame).__name__}, not a table.", field=where)
        return Done({"table": frame}, params={"callable": section.callable, "rows": len(frame), "columns": len(frame.columns),
                                              **{f"params.{k}": v for k, v in section.params.items()}})
    path = root / str(section.path)
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        frame = pd.read_hdf(path, key=section.key)
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"{path}: key {section.key!r} holds a {type(frame).__name__}, not a table.", field="ingest.key")
    else:
        from mloop.data import read_table

        frame = read_table(path)
    return Done({"table": frame}, params={"path": str(path), "rows": len(frame), "columns": len(frame.columns)})


def call(section: Call, frame: pd.DataFrame, where: str) -> Done:
    out = resolve_callable(section.callable, where)(frame, **section.params)
    if not isinstance(out, pd.DataFrame):
        raise InvalidInput(f"{where}: {section.callable} returned a {type(out).__name__}, not a table.", field=where)
    return Done({"table": out}, params={"callable": section.callable, **{f"params.{k}": v for k, v in section.params.items()}})


def split(section: Split, frame: pd.DataFrame) -> Done:
    if section.by is not None and section.by not in frame.columns:
        raise InvalidInput(f"split.by: the input has no column {section.by!r}; it has {list(frame.columns)}.", field="split.by")
    if section.method == "time":
        ordered = frame.sort_values(str(section.by), kind="stable")
        cut = int(round(len(ordered) * (1 - section.test)))
        train, test = ordered.iloc[:cut], ordered.iloc[cut:]
    else:
        from sklearn.model_selection import train_test_split

        stratify = frame[section.by] if section.method == "stratified" else None
        train, test = train_test_split(frame, test_size=section.test, random_state=section.seed, stratify=stratify)
    return Done({"train": train.reset_index(drop=True), "test": test.reset_index(drop=True)},
                params={"method": section.method, "test": section.test, "train_rows": len(train), "test_rows": len(test)})


def train(section: Train, frame: pd.DataFrame, where: str) -> Done:
    if section.target not in frame.columns:
        raise InvalidInput(f"{where}.target: the input has no column {section.target!r}; it has {list(frame.columns)}.", field=f"{where}.target")
    model = resolve_callable(section.callable, f"{where}.callable")(frame, section.target, **section.params)
    return Done({"model": model}, params={"callable": section.callable, "rows": len(frame),
                                          **{f"params.{k}": v for k, v in section.params.items()}})


def model_inputs(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` the model was fit on (``feature_names_in_``), whatever else the table holds."""
    names = getattr(model, "feature_names_in_", None)
    return frame if names is None else frame[[str(n) for n in names]]


def _scores(model: Any, frame: pd.DataFrame) -> np.ndarray:
    frame = model_inputs(model, frame)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(frame))
        return proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
    return np.asarray(model.predict(frame), dtype=float)


def metric(name: str, y: np.ndarray, score: np.ndarray) -> float:
    from sklearn import metrics as m

    if name == "auc":
        return float(m.roc_auc_score(y, score)) if len(np.unique(y)) == 2 else math.nan
    if name == "accuracy":
        return float(m.accuracy_score(y, score >= 0.5))
    if name == "log_loss":
        return float(m.log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1]))
    if name == "brier":
        return float(np.mean((score - y) ** 2))
    if name == "rmse":
        return float(np.sqrt(np.mean((score - y) ** 2)))
    if name == "mae":
        return float(np.mean(np.abs(score - y)))
    return float(m.r2_score(y, score))


OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


def evaluate(section: Evaluate, model: Any, frame: pd.DataFrame, where: str) -> Done:
    if section.target not in frame.columns:
        raise InvalidInput(f"{where}.target: the input has no column {section.target!r}.", field=f"{where}.target")
    y = frame[section.target].to_numpy(dtype=float)
    score = _scores(model, frame.drop(columns=[section.target]))
    values: dict[str, float] = {str(name): metric(name, y, score) for name in section.metrics}
    failed = []
    for gate in section.gates:
        match = GATE.match(gate)
        assert match is not None  # checked when the pipeline was read
        name, op, bound = match.group(1), match.group(2), float(match.group(3))
        if not OPS[op](values[name], bound):
            failed.append(f"{gate} (it is {values[name]:.4f})")
    return Done({"metrics": {**values, "gates": section.gates, "passed": not failed}}, metrics=values,
                params={"rows": len(frame), "gates": "; ".join(section.gates)},
                stop=f"{where}: gate failed: {', '.join(failed)}" if failed else None)
