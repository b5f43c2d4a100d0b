"""A shallow decision tree fitted to a model's scores: the model in a few readable rules, how faithful they are to it
(R² on rows the surrogate did not see), and the tree drawn as a self-contained SVG."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import pandas as pd

MAX_LEVELS = 10  # a categorical column becomes one indicator per level, its most frequent ones


@dataclass(frozen=True)
class Rule:
    """One leaf of the surrogate: the conditions that lead to it, the score it predicts and its share of rows."""

    conditions: list[str]
    score: float
    share: float

    def text(self) -> str:
        return f"IF {' AND '.join(self.conditions) or 'always'} THEN score ≈ {self.score:.3g} ({self.share:.0%} of rows)"


@dataclass(frozen=True)
class Surrogate:
    """The surrogate's rules (leaves, left to right), its fidelity and its drawing."""

    depth: int
    fidelity_r2: float
    rules: list[Rule]
    svg: str

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "fidelity_r2": self.fidelity_r2, "rules": [r.text() for r in self.rules], "svg": self.svg}


def _design(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, Any]]]:
    """Numbers as they are (missing kept: the tree routes it), each categorical level as an indicator."""
    parts, names = [], []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values.dtype):
            parts.append(values.to_numpy(dtype=np.float64, na_value=np.nan))
            names.append((column, None))
        else:
            text = values.astype(object).where(values.notna(), None)
            for level in values.dropna().astype(str).value_counts().index[:MAX_LEVELS]:
                parts.append((text.astype(str) == level).to_numpy(dtype=np.float64))
                names.append((column, level))
    return np.column_stack(parts) if parts else np.zeros((len(frame), 0)), names


Step = tuple[tuple[str, Any], float, bool, bool]  # (column, level), threshold, went left, missing went that way


def _condition(name: tuple[str, Any], threshold: float, left: bool, with_missing: bool) -> str:
    column, level = name
    if level is not None:
        return f"{column} {'≠' if left else '='} {level}"
    return f"{column} {'≤' if left else '>'} {threshold:.4g}" + (" or missing" if with_missing else "")


def _merged(path: list[Step]) -> list[str]:
    """A leaf's conditions, the splits on one numeric column merged into one interval."""
    out: list[str] = []
    numeric: dict[str, list[Any]] = {}  # column -> [low, high, missing still allowed]
    for name, threshold, left, with_missing in path:
        column, level = name
        if level is not None:
            out.append(_condition(name, threshold, left, False))
            continue
        if column not in numeric:
            numeric[column] = [-np.inf, np.inf, True]
            out.append(column)  # a placeholder keeps the column's first position
        bounds = numeric[column]
        if left:
            bounds[1] = min(bounds[1], threshold)
        else:
            bounds[0] = max(bounds[0], threshold)
        bounds[2] = bounds[2] and with_missing
    for column, (low, high, missing) in numeric.items():
        if high == np.inf:
            text = f"{column} > {low:.4g}" if low > -np.inf else column
        else:
            text = (f"{low:.4g} < " if low > -np.inf else "") + f"{column} ≤ {high:.4g}"
        out[out.index(column)] = text + (" or missing" if missing else "")
    return out


def _rules(tree: Any, names: list[tuple[str, Any]], has_missing: set[str]) -> tuple[list[Rule], dict[int, str], dict[int, tuple[float, float]]]:
    t = tree.tree_
    missing = getattr(t, "missing_go_to_left", None)
    total = float(t.weighted_n_node_samples[0])
    rules: list[Rule] = []
    labels: dict[int, str] = {}
    leaves: dict[int, tuple[float, float]] = {}

    def walk(node: int, path: list[Step]) -> None:
        if t.children_left[node] < 0:
            score, share = float(t.value[node][0][0]), float(t.weighted_n_node_samples[node]) / total
            rules.append(Rule(_merged(path), score, share))
            leaves[node] = (score, share)
            return
        name = names[int(t.feature[node])]
        threshold = float(t.threshold[node])
        missing_left = name[0] in has_missing and name[1] is None and missing is not None and bool(missing[node])
        missing_right = name[0] in has_missing and name[1] is None and missing is not None and not bool(missing[node])
        labels[node] = _condition(name, threshold, True, missing_left)
        walk(int(t.children_left[node]), [*path, (name, threshold, True, missing_left)])
        walk(int(t.children_right[node]), [*path, (name, threshold, False, missing_right)])

    walk(0, [])
    return rules, labels, leaves


def _svg(tree: Any, labels: dict[int, str], leaves: dict[int, tuple[float, float]]) -> str:
    """The tree top-down: split conditions in the inner boxes (yes to the left), the score and share in the leaves,
    shaded by score."""
    t = tree.tree_
    order: list[int] = []
    depth: dict[int, int] = {}

    def place(node: int, d: int) -> None:
        depth[node] = d
        if t.children_left[node] >= 0:
            place(int(t.children_left[node]), d + 1)
        order.append(node)
        if t.children_left[node] >= 0:
            place(int(t.children_right[node]), d + 1)

    place(0, 0)
    box_w, box_h, gap_x, gap_y = 170, 44, 10, 40
    x = {node: i * (box_w + gap_x) / 2 for i, node in enumerate(order)}
    width = max(x.values()) + box_w + 10
    height = (max(depth.values()) + 1) * (box_h + gap_y) + 10
    scores = [s for s, _ in leaves.values()]
    lo, hi = min(scores), max(scores)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
             'font-family="sans-serif" font-size="11">']

    def center(node: int) -> tuple[float, float]:
        return x[node] + 5 + box_w / 2, depth[node] * (box_h + gap_y) + 5

    for node in order:
        if t.children_left[node] >= 0:
            cx, cy = center(node)
            for child, tag in ((int(t.children_left[node]), "yes"), (int(t.children_right[node]), "no")):
                kx, ky = center(child)
                parts.append(f'<line x1="{cx:.0f}" y1="{cy + box_h:.0f}" x2="{kx:.0f}" y2="{ky:.0f}" stroke="#888"/>')
                parts.append(f'<text x="{(cx + kx) / 2:.0f}" y="{(cy + box_h + ky) / 2:.0f}" fill="#555">{tag}</text>')
    for node in order:
        cx, cy = center(node)
        if node in leaves:
            score, share = leaves[node]
            level = 0.0 if hi == lo else (score - lo) / (hi - lo)
            fill = f"rgb({int(235 - 120 * level)},{int(240 - 60 * level)},{int(250 - 10 * level)})"
            lines = [f"score {score:.3g}", f"{share:.0%} of rows"]
        else:
            fill = "#f7f7f7"
            lines = [labels[node]]
        parts.append(f'<rect x="{x[node] + 5:.0f}" y="{cy:.0f}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="#666"/>')
        for i, line in enumerate(lines):
            parts.append(f'<text x="{cx:.0f}" y="{cy + 18 + 14 * i:.0f}" text-anchor="middle">{escape(line[:32])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def surrogate_tree(frame: pd.DataFrame, scores: np.ndarray, *, depth: int = 3, seed: int = 0) -> Surrogate | None:
    """A depth-``depth`` regression tree of the model's ``scores`` on ``frame``; fidelity is R² on a 30 % holdout."""
    from sklearn.tree import DecisionTreeRegressor

    design, names = _design(frame)
    if design.shape[1] == 0 or len(frame) < 20:
        return None
    rng = np.random.default_rng(seed)
    holdout = rng.random(len(frame)) < 0.3
    fitted = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=max(5, len(frame) // 50), random_state=seed)
    fitted.fit(design[~holdout], scores[~holdout])
    predicted = fitted.predict(design[holdout])
    spread = float(np.var(scores[holdout]))
    fidelity = 1.0 - float(np.mean((scores[holdout] - predicted) ** 2)) / spread if spread > 0 else 1.0
    has_missing = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype) and frame[c].isna().any()}
    rules, labels, leaves = _rules(fitted, names, has_missing)
    return Surrogate(depth, fidelity, rules, _svg(fitted, labels, leaves))
