"""From a model's input columns to the features its final estimator sees, and back: a scikit-learn pipeline's
preprocessing is split off, and each feature it produces is owned by the one input column it came from (an
ordinal-encoded or scaled column by itself, a one-hot column by the categorical it encodes). Attributions on the
estimator's features then add up, per owner, to attributions on the model's input columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Transformers that map each input column to exactly one output column, by itself.
_ELEMENTWISE = {
    "OrdinalEncoder", "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "QuantileTransformer", "PowerTransformer",
    "Binarizer", "SimpleImputer", "KBinsDiscretizer",
}


class NotSeparable(Exception):
    """The preprocessing mixes input columns, so attributions cannot be given back to them one by one."""


@dataclass(frozen=True)
class Prepared:
    """A model split into ``transform`` (input frame → the estimator's matrix) and ``estimator``; ``owner[j]`` is the
    input column (an index into ``columns``) that estimator feature j comes from."""

    columns: list[str]
    owner: np.ndarray
    transform: Callable[[pd.DataFrame], Any]
    estimator: Any

    def to_inputs(self, values: np.ndarray) -> np.ndarray:
        """Attributions ``(rows, estimator features)`` summed into ``(rows, input columns)``."""
        out = np.zeros((values.shape[0], len(self.columns)))
        for j, col in enumerate(self.owner):
            out[:, col] += values[:, j]
        return out


def _one_to_one(transformer: Any, n_in: int) -> list[int]:
    """Output feature → input position for a transformer of ``n_in`` columns, or NotSeparable."""
    name = type(transformer).__name__
    if transformer == "passthrough" or (name == "FunctionTransformer" and transformer.func is None):  # identity
        return list(range(n_in))
    if name == "Pipeline":
        owner = list(range(n_in))
        for _, step in transformer.steps:
            if step is None or step == "passthrough":
                continue
            owner = [owner[i] for i in _one_to_one(step, len(owner))]
        return owner
    if name == "OneHotEncoder":
        sizes = getattr(transformer, "_n_features_outs", None)
        if sizes is None or len(sizes) != n_in:
            raise NotSeparable("a OneHotEncoder without per-column output sizes")
        return [i for i, size in enumerate(sizes) for _ in range(size)]
    if name in _ELEMENTWISE:
        if name == "SimpleImputer" and getattr(transformer, "add_indicator", False):
            raise NotSeparable("a SimpleImputer that adds indicator columns")
        if name == "KBinsDiscretizer" and getattr(transformer, "encode", "") != "ordinal":
            raise NotSeparable("a KBinsDiscretizer that one-hot encodes")
        out = getattr(transformer, "n_features_out_", None) or len(transformer.get_feature_names_out())
        if out != n_in:
            raise NotSeparable(f"a {name} whose outputs ({out}) are not its inputs ({n_in})")
        return list(range(n_in))
    raise NotSeparable(f"a {name}, which may mix its input columns")


def _column_transformer(ct: Any, columns: list[str]) -> list[int]:
    owner: list[int] = []
    positions = ct._transformer_to_input_indices  # name -> input positions, remainder included
    for name, transformer, _ in ct.transformers_:
        indices = list(positions.get(name, []))
        if transformer == "drop" or not indices:
            continue
        owner += [indices[i] for i in _one_to_one(transformer, len(indices))]
    return owner


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


def prepare(model: Any, columns: list[str]) -> Prepared:
    """Split ``model`` (a bare estimator or a scikit-learn ``Pipeline``) over input ``columns``; NotSeparable when
    its preprocessing mixes columns."""
    if type(model).__name__ != "Pipeline":
        def bare(frame: pd.DataFrame) -> np.ndarray:
            return _dense(frame[columns].to_numpy(dtype=np.float64, na_value=np.nan))

        return Prepared(columns, np.arange(len(columns)), bare, model)
    steps = [s for _, s in model.steps[:-1] if s is not None and s != "passthrough"]
    owner = list(range(len(columns)))
    for step in steps:
        mapped = _column_transformer(step, columns) if type(step).__name__ == "ColumnTransformer" else _one_to_one(step, len(owner))
        owner = [owner[i] for i in mapped]
    head = model[:-1]
    fast = _compiled(steps[0], columns) if len(steps) == 1 and type(steps[0]).__name__ == "ColumnTransformer" else None

    def transform(frame: pd.DataFrame) -> np.ndarray:
        if fast is not None:
            return fast(frame)
        return _dense(head.transform(frame[columns]))

    return Prepared(columns, np.asarray(owner, dtype=np.int64), transform, model.steps[-1][1])


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _ordinal(encoder: Any, i: int) -> Callable[[list[Any]], list[float]] | None:
    """Input column i of a fitted ``OrdinalEncoder`` as a lookup, as the encoder maps it; None where it would raise."""
    categories = list(encoder.categories_[i])
    missing_code = encoder.encoded_missing_value
    unknown = encoder.unknown_value if encoder.handle_unknown == "use_encoded_value" else None
    seen_missing = any(_is_missing(c) for c in categories)
    codes = {c: float(k) for k, c in enumerate(categories) if not _is_missing(c)}
    if unknown is None:
        return None
    unknown = float(unknown)
    on_missing = float(missing_code) if seen_missing else unknown

    def lookup(values: list[Any]) -> list[float]:
        return [on_missing if _is_missing(v) else codes.get(v, unknown) for v in values]

    return lookup


def _compiled(ct: Any, columns: list[str]) -> Callable[[pd.DataFrame], np.ndarray] | None:
    """A ColumnTransformer of ordinal encoders and pass-throughs as plain lookups: a few microseconds a row where
    scikit-learn's transform costs milliseconds. None for anything else (scikit-learn's transform is used)."""
    if getattr(ct, "sparse_output_", False):
        return None
    parts: list[tuple[str, Any]] = []  # (input column, lookup or None for a pass-through)
    positions = ct._transformer_to_input_indices
    for name, transformer, _ in ct.transformers_:
        indices = list(positions.get(name, []))
        if transformer == "drop" or not indices:
            continue
        kind = type(transformer).__name__
        if transformer == "passthrough" or (kind == "FunctionTransformer" and transformer.func is None):
            parts += [(columns[i], None) for i in indices]
        elif kind == "OrdinalEncoder" and getattr(transformer, "infrequent_categories_", None) is None \
                and transformer.max_categories is None and transformer.min_frequency is None:
            for k, i in enumerate(indices):
                lookup = _ordinal(transformer, k)
                if lookup is None:
                    return None
                parts.append((columns[i], lookup))
        else:
            return None

    def transform(frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(parts)))
        for j, (column, lookup) in enumerate(parts):
            values = frame[column]
            if lookup is None:
                numbers = values if pd.api.types.is_numeric_dtype(values.dtype) else pd.to_numeric(values, errors="raise")
                out[:, j] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                out[:, j] = lookup(values.tolist())
        return out

    return transform
