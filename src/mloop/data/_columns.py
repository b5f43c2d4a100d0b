"""Columns as the statistics read them: numbers as NumPy arrays, categories as integer codes into their labels.

A table comes in as a pandas DataFrame (the Python API, the monitors) or as a mapping of names to columns (the
CLI reads files with Arrow straight into this form, so a report never loads pandas)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Coded:
    """A categorical column: ``codes`` index ``labels``; ``-1`` marks a missing value."""

    codes: np.ndarray
    labels: list[str]

    def __len__(self) -> int:
        return len(self.codes)


Column = np.ndarray | Coded
Columns = dict[str, Column]


def is_numeric(column: Column) -> bool:
    """True for numbers (booleans are categories)."""
    return isinstance(column, np.ndarray) and column.dtype.kind in "fiu"


def factorize(values: np.ndarray) -> Coded:
    """Codes for an array of arbitrary values (strings, booleans, objects): missing values (None, NaN) get ``-1``."""
    import pandas as pd  # only arrays of Python objects from the Python API come here

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return Coded(np.asarray(codes, dtype=np.int64), [str(u) for u in uniques])


def coded(column: Column) -> Coded:
    """``column`` as categories: numbers become one category per distinct value (NaN is missing)."""
    if isinstance(column, Coded):
        return column
    if column.dtype.kind not in "fiub":
        return factorize(column)
    uniques, codes = np.unique(column, return_inverse=True)
    codes = codes.astype(np.int64)
    if column.dtype.kind == "f" and len(uniques) and np.isnan(uniques[-1]):  # NaNs sort last and share one code
        codes[codes == len(uniques) - 1] = -1
        uniques = uniques[:-1]
    return Coded(codes, [_number_label(u) for u in uniques.tolist()])


def _number_label(value: object) -> str:
    """A number's category by its value: 3 and 3.0 are one category (an integer column with a missing value
    arrives as floats), so a window with one null is not a new world."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _series(series: pd.Series) -> Column:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy() if isinstance(series.dtype, np.dtype) else series.to_numpy(dtype=float, na_value=np.nan)
    if series.dtype == object:
        return _objects(str(series.name), series.to_numpy())
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return Coded(np.asarray(codes, dtype=np.int64), [str(u) for u in uniques])


_NUMBERS = frozenset({"floating", "integer", "mixed-integer-float", "decimal"})


def _objects(name: str, values: np.ndarray) -> Column:
    """An array of Python objects: numbers (with None or NaN among them) stay numbers, anything else is categories."""
    import pandas as pd

    if pd.api.types.infer_dtype(values, skipna=True) not in _NUMBERS:
        return factorize(values)
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):  # numbers too large for a float (huge Decimals): compare them as categories
        return factorize(values)


def _column(name: str, values: Any) -> Column:
    if isinstance(values, Coded):
        codes = np.asarray(values.codes)
        if codes.ndim != 1 or codes.dtype.kind not in "iu":
            raise InvalidInput(f"Column {name!r}: codes must be a one-dimensional integer array.", field=name)
        if len(codes) and (codes.min() < -1 or codes.max() >= len(values.labels)):
            raise InvalidInput(f"Column {name!r}: codes must lie within [-1, {len(values.labels) - 1}] (its labels).", field=name)
        return Coded(codes.astype(np.int64, copy=False), [str(label) for label in values.labels])
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"Column {name!r} must be one-dimensional, got shape {arr.shape}.", field=name)
    if arr.dtype.kind in "fiu":
        return arr
    return _objects(name, arr) if arr.dtype.kind == "O" else factorize(arr)


def as_columns(table: pd.DataFrame | Mapping[str, Any]) -> Columns:
    """``table`` as named columns: a DataFrame's or a mapping's (of arrays, lists or :class:`Coded`)."""
    if isinstance(table, Mapping):
        return {str(name): _column(str(name), values) for name, values in table.items()}
    if hasattr(table, "columns") and hasattr(table, "dtypes"):
        names = [str(name) for name in table.columns]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInput(f"The table has column {twice[0]!r} more than once; give each column one name.", field=twice[0])
        return {str(name): _series(table[name]) for name in table.columns}
    raise InvalidInput(f"Expected a DataFrame or a mapping of column names to arrays, got {type(table).__name__}.", field="table")


def rows(columns: Columns) -> int:
    """The common length of ``columns`` (0 when there are none); columns of different lengths are refused."""
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise InvalidInput(f"Columns have different lengths: {sorted(lengths)}.", field="table")
    return lengths.pop() if lengths else 0
