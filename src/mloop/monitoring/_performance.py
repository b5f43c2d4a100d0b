"""Accuracy over a labelled window, overall and per slice, with confidence intervals, and fairness across groups.

Pure functions over arrays: a binary classifier's scores, its labels and the columns to slice by. Overall, ROC AUC
with a bootstrap interval and accuracy with a Wilson interval; per slice (each value of a categorical column,
quantile bins of a numeric one) the same with the Hanley–McNeil interval for AUC, so a window with twenty slices
costs milliseconds; a slice is flagged *worst* when its whole accuracy interval lies below the overall accuracy.
Fairness through Fairlearn's ``MetricFrame`` (selection rate, true and false positive rates per group) and its
demographic-parity and equalised-odds differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

Z95 = 1.959963984540054


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged); NaN without both classes."""
    from scipy.stats import rankdata

    pos = labels == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def hanley_mcneil(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """The 95 % interval of an AUC by Hanley and McNeil's standard error (1982)."""
    if not np.isfinite(auc) or positives == 0 or negatives == 0:
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    half = Z95 * float(np.sqrt(max(var, 0.0)))
    return max(0.0, auc - half), min(1.0, auc + half)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return float(centre - half), float(centre + half)


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, *, resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of the AUC."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(labels), len(labels))
        value = _auc(labels[pick], scores[pick])
        if np.isfinite(value):
            values.append(value)
    if len(values) < resamples // 2:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted = scores >= threshold
    correct = int((predicted == (labels == 1)).sum())
    positives = int((labels == 1).sum())
    auc = _auc(labels, scores)
    return {
        "rows": int(len(labels)), "positives": positives, "auc": auc, "auc_ci": list(hanley_mcneil(auc, positives, len(labels) - positives)),
        "accuracy": correct / len(labels) if len(labels) else float("nan"), "accuracy_ci": list(wilson(correct, len(labels))),
        "selection_rate": float(predicted.mean()) if len(labels) else float("nan"),
        "brier": float(np.mean((scores - labels) ** 2)) if len(labels) else float("nan"),
    }


def slice_values(column: pd.Series, bins: int) -> pd.Series:
    """A column as slice labels: its values for a categorical column, quantile bins ``[low, high)`` (the last one
    closed) for a number with more than ``bins`` values; ``missing`` for missing values."""
    if pd.api.types.is_numeric_dtype(column.dtype) and column.nunique(dropna=True) > bins:
        values = column.to_numpy(dtype=float)
        edges = np.unique(np.nanquantile(values, np.linspace(0, 1, bins + 1)))
        if len(edges) >= 2:
            which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
            names = [f"[{edges[i]:.4g}, {edges[i + 1]:.4g}{']' if i == len(edges) - 2 else ')'}" for i in range(len(edges) - 1)]
            labels = np.array(names, dtype=object)[which]
            labels[np.isnan(values)] = "missing"
            return pd.Series(labels, index=column.index)
    return column.astype(object).where(column.notna(), "missing").astype(str)


def _fairness(labels: np.ndarray, predicted: np.ndarray, groups: pd.Series) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    frame = MetricFrame(metrics={"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
                                 "false_positive_rate": false_positive_rate},
                        y_true=labels, y_pred=predicted, sensitive_features=groups.to_numpy())
    by_group = {str(g): {k: float(v) for k, v in row.items()} for g, row in frame.by_group.iterrows()}
    return {
        "by_group": by_group,
        "demographic_parity_difference": float(demographic_parity_difference(labels, predicted, sensitive_features=groups.to_numpy())),
        "equalized_odds_difference": float(equalized_odds_difference(labels, predicted, sensitive_features=groups.to_numpy())),
    }


def performance_report(scores: np.ndarray, labels: np.ndarray, columns: pd.DataFrame, *, groups: list[str], sensitive: list[str],
                       bins: int = 4, threshold: float = 0.5, min_rows: int = 30, resamples: int = 200, seed: int = 0) -> dict[str, Any]:
    """The window's metrics overall and per slice of each ``groups`` column (slices of fewer than ``min_rows`` rows
    are counted but not scored), the worst slices, and fairness across each ``sensitive`` and ``groups`` column."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = (np.asarray(labels, dtype=np.float64) >= 0.5).astype(np.int64)
    overall = _metrics(labels, scores, threshold)
    overall["auc_ci"] = list(bootstrap_auc(labels, scores, resamples=resamples, seed=seed))
    overall["auc_ci_method"] = "bootstrap"
    slices: list[dict[str, Any]] = []
    for column in groups:
        values = slice_values(columns[column].reset_index(drop=True), bins)
        for value, index in values.groupby(values).groups.items():
            rows = np.asarray(index, dtype=np.int64)  # positions: the index was reset
            entry: dict[str, Any] = {"column": column, "value": str(value), "rows": int(len(rows))}
            if len(rows) >= min_rows:
                entry.update(_metrics(labels[rows], scores[rows], threshold))
                entry["worst"] = bool(entry["accuracy_ci"][1] < overall["accuracy"])
            slices.append(entry)
    slices.sort(key=lambda s: (s.get("accuracy", float("inf")), -s["rows"]))
    predicted = (scores >= threshold).astype(np.int64)
    fairness = {c: _fairness(labels, predicted, slice_values(columns[c].reset_index(drop=True), bins)) for c in dict.fromkeys([*sensitive, *groups])}
    return {"threshold": threshold, "overall": overall, "slices": slices, "worst": [s for s in slices if s.get("worst")],
            "fairness": fairness, "sensitive": list(sensitive)}
