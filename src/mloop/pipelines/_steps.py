"""What each kind of step does, as plain functions of its section and its loaded inputs: they return the outputs and
what the step's MLflow run should record, and touch nothing else (the runner stores, caches and tracks)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.pipelines._cache import resolve_callable
from mloop.pipelines._spec import GATE, Call, Drift, Evaluate, Ingest, Split, Train, Validate


@dataclass
class Done:
    outputs: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    stop: str | None = None  # why nothing after this step may run (a gate that failed), recorded with the step
    children: list[dict[str, Any]] = field(default_factory=list)  # a tune step's trials, each logged as a nested run
    feature_lineage: dict[str, Any] | None = None  # a feature-store ingest's views and versions, recorded on the runs that use its table


def trainer(path: str, where: str) -> Callable[..., Any]:
    """A train or tune step's ``callable`` as ``fit(frame, target, **params) -> model``: a function of that shape as it
    is, or an estimator class (scikit-learn's, LightGBM's, XGBoost's) made with ``params`` and fit on the columns."""
    found = resolve_callable(path, where)
    if not (isinstance(found, type) and hasattr(found, "fit")):
        return found

    def fit(frame: pd.DataFrame, target: str, **params: Any) -> Any:
        try:
            estimator = found(**params)
        except TypeError as exc:
            raise InvalidInput(f"{where}: {path} does not take these params: {exc}.", field=where) from None
        return estimator.fit(frame.drop(columns=[target]), frame[target])

    return fit


def ingest(section: Ingest, root: Path, where: str) -> Done:
    if section.callable is not None:
        frame = resolve_callable(section.callable, f"{where}.callable")(**section.params)
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"{where}: {section.callable} returned a {type(frame).__name__}, not a table.", field=where)
        return Done({"table": frame}, params={"callable": section.callable, "rows": len(frame), "columns": len(frame.columns),
                                              **{f"params.{k}": v for k, v in section.params.items()}})
    path = root / str(section.path)
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        try:
            frame = pd.read_hdf(path, key=section.key)
        except (KeyError, ValueError) as exc:  # no such key, or several tables and no key
            with pd.HDFStore(path, mode="r") as store:
                keys = [k.lstrip("/") for k in store.keys()]
            raise InvalidInput(f"{where}.key: {path.name} has no single table {section.key!r} ({exc}); its tables: {keys}.",
                               field=f"{where}.key") from None
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"{path}: key {section.key!r} holds a {type(frame).__name__}, not a table.", field="ingest.key")
    else:
        from mloop.data import read_table

        frame = read_table(path)
    return Done({"table": frame}, params={"path": str(path), "rows": len(frame), "columns": len(frame.columns)})


def validate(section: Validate, frame: pd.DataFrame, reference: pd.DataFrame | None, where: str) -> Done:
    """The table checked against its rules, and against the reference's distribution when there is one: the step
    stops the run, naming every broken rule and every drifted column with its p-value, or passes the table on."""
    from mloop.data._validate import check_table

    table, failures = check_table(frame, dict(section.columns), strict=section.strict)
    problems = [str(f) for f in failures]
    metrics: dict[str, float] = {"rows": float(len(frame)), "rules_broken": float(len(failures))}
    report: dict[str, Any] = {"failures": [f.__dict__ for f in failures]}
    if reference is not None:
        from mloop.data._columns import as_columns
        from mloop.monitoring.drift import DatasetDrift

        drift = section.drift or Drift()
        names = drift.columns or [str(c) for c in reference.columns if c in frame.columns]
        missing = [c for c in names if c not in frame.columns or c not in reference.columns]
        if missing:
            raise InvalidInput(f"{where}.drift.columns: {missing} are not in both the input and the reference.", field=f"{where}.drift.columns")
        try:
            found = DatasetDrift(alpha=drift.alpha, drift_share=drift.share).fit(as_columns(reference[names])).score(as_columns(frame[names]))
        except InvalidInput as exc:  # a column with no usable values (all missing, say): a finding about the data, not a crash
            problems.append(f"the drift check could not run: {exc.message}")
            return Done({"table": table, "report": {**report, "passed": False}}, metrics=metrics, stop=f"{where}: the data failed validation: "
                        + "; ".join(problems))
        drifted = [f for f in found.features if f.drift]
        metrics.update({"share_drifted": found.share_drifted, "columns_drifted": float(len(drifted))})
        report["drift"] = {f.name: {"test": f.test, "statistic": f.statistic, "p_value_adjusted": f.p_value_adjusted, "drift": f.drift}
                           for f in found.features}
        if found.drift:
            problems.append(f"{len(drifted)} of {len(found.features)} columns drifted from the reference (share {found.share_drifted:.2f} "
                            f">= {drift.share}): " + ", ".join(f"{f.name} (p={f.p_value_adjusted:.2g})" for f in drifted))
    report["passed"] = not problems
    return Done({"table": table, "report": report}, metrics=metrics, params={"rules": len(section.columns), "strict": section.strict},
                stop=f"{where}: the data failed validation: " + "; ".join(problems) if problems else None)


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
    model = trainer(section.callable, f"{where}.callable")(frame, section.target, **section.params)
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
