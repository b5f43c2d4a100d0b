"""What a server buffers between two flushes of the prediction log, kept column by column in typed arrays.

Appending a request writes its values into preallocated NumPy columns (one assignment per column, or one row
assignment for an all-numeric model). A flush hands the filled part of each column to Arrow without copying
numbers (strings take one C call per column), so it holds the interpreter the requests need for well under a
millisecond, where building the columns from per-request objects at flush time held it ~20 ms per 2,000 requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INPUT_PREFIX = "in__"
_START = 1024


def _empty(rows: int, numeric: bool, width: int | None = None) -> np.ndarray:
    """A column of missing values: NaN for numbers, None for anything else."""
    shape = (rows,) if width is None else (rows, width)
    return np.full(shape, np.nan, dtype=np.float64) if numeric else np.full(shape, None, dtype=object)


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = _empty(capacity, array.dtype.kind == "f", array.shape[1] if array.ndim == 2 else None)
    grown[: array.shape[0]] = array
    return grown


def _arrow(values: np.ndarray) -> Any:
    """``values`` as one Arrow array; a column whose values share no Arrow type (numbers from one model version,
    text from the next) is kept as text rather than failing the flush it is in."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values], pa.string())


def _input_columns(inputs: Any, columns: Sequence[str] | None) -> list[tuple[str, np.ndarray]]:
    """(name, 1-d array) for each input column of one request."""
    if isinstance(inputs, np.ndarray):
        names = columns or [f"x{j}" for j in range(inputs.shape[1])]
        return [(name, inputs[:, j]) for j, name in enumerate(names)]
    if isinstance(inputs, Mapping):
        return [(str(k), np.asarray(v)) for k, v in inputs.items()]
    return [(str(c), inputs[c].to_numpy()) for c in inputs.columns]  # a pandas DataFrame


class PredictionBuffer:
    """Answered requests of one deployment: typed, growable columns (float64 for numbers, object otherwise; a
    column a request did not have is missing for its rows). Not thread-safe: the log guards it with its lock.

    >>> buffer = PredictionBuffer()
    >>> names = ("x", "y")
    >>> for i in range(3):
    ...     buffer.add(f"r{i}", 1.0, 1, 0.5, np.array([[i, 2.0 * i]]), np.array([0.1 * i]), names)
    >>> buffer.table().column("in__y").to_pylist()
    [0.0, 2.0, 4.0]
    """

    def __init__(self) -> None:
        self.capacity = _START
        # The log's own columns: plain lists (an append is the cheapest write there is; Arrow reads them in C).
        self.request_id: list[str] = []
        self.row: list[int] = []
        self.ts: list[float] = []
        self.version: list[int] = []
        self.latency_ms: list[float] = []
        self.score: list[float] = []
        self.arm: list[str] = []  # the arm that answered, and the probability it had of being routed the request
        self.probability: list[float] = []
        self.inputs: dict[str, np.ndarray] = {}
        # All-numeric models: one 2-d float block, a row assignment per request, while every request has the
        # same columns (the one tuple a served version passes) and nothing else came first.
        self._matrix: np.ndarray | None = None
        self._matrix_columns: Sequence[str] | None = None
        # Other models: the column arrays in the order of the columns tuple seen last, for plain assignments.
        self._aligned_for: Sequence[str] | None = None
        self._aligned: list[tuple[str, np.ndarray]] = []

    @property
    def rows(self) -> int:
        """Rows buffered so far (one entry per row in each of the log's own columns)."""
        return len(self.request_id)

    def __len__(self) -> int:
        return self.rows

    def _reserve(self, rows: int) -> None:
        if rows <= self.capacity:
            return
        capacity = self.capacity
        while capacity < rows:
            capacity *= 2
        self.inputs = {name: _grown(column, capacity) for name, column in self.inputs.items()}
        if self._matrix is not None:
            self._matrix = _grown(self._matrix, capacity)
        self.capacity = capacity
        self._aligned_for, self._aligned = None, []

    def _settle_matrix(self) -> None:
        """Turn the 2-d block into per-column arrays (a request of another shape arrived)."""
        if self._matrix is not None and self._matrix_columns is not None:
            for j, name in enumerate(self._matrix_columns):
                self.inputs[name] = np.ascontiguousarray(self._matrix[:, j])
        self._matrix = self._matrix_columns = None

    def _put(self, name: str, start: int, values: np.ndarray) -> None:
        column = self.inputs.get(name)
        numeric = values.dtype.kind in "fiub"
        if column is None:
            column = self.inputs[name] = _empty(self.capacity, numeric)
        elif column.dtype.kind == "f" and not numeric:  # a column that held numbers now holds something else
            converted = _empty(self.capacity, False)
            converted[:] = column
            column = self.inputs[name] = converted
        column[start : start + len(values)] = values

    def _put_aligned(self, start: int, inputs: Mapping[str, np.ndarray]) -> bool:
        """One row into the columns of the last shape with plain assignments; False when a value does not fit its
        column's type (the general path then widens the column)."""
        try:
            for name, column in self._aligned:
                column[start] = inputs[name][0]
        except (ValueError, TypeError):
            return False
        return True

    def add(self, request_id: str, ts: float, version: int, latency_ms: float, inputs: Any, scores: Any, columns: Sequence[str] | None,
            arm: str = "baseline", probability: float = 1.0) -> None:
        n = len(inputs)
        start, end = self.rows, self.rows + n
        self._reserve(end)
        if n == 1:
            self.arm.append(arm)
            self.probability.append(probability)
            self.request_id.append(request_id)
            self.row.append(0)
            self.ts.append(ts)
            self.version.append(version)
            self.latency_ms.append(latency_ms)
            self.score.append(float(scores[-1]) if isinstance(scores, np.ndarray) and scores.ndim == 1 else float(np.ravel(scores)[-1]))
        else:
            self.arm.extend([arm] * n)
            self.probability.extend([probability] * n)
            self.request_id.extend([request_id] * n)
            self.row.extend(range(n))
            self.ts.extend([ts] * n)
            self.version.extend([version] * n)
            self.latency_ms.extend([latency_ms] * n)
            self.score.extend(np.asarray(scores, dtype=float).reshape(n, -1)[:, -1].tolist())
        if columns is not None and isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.dtype.kind == "f":
            if columns is self._matrix_columns and self._matrix is not None:
                self._matrix[start:end] = inputs
                return
            if start == 0 and not self.inputs:  # the first request, all numbers: keep a 2-d block
                self._matrix, self._matrix_columns = _empty(self.capacity, True, inputs.shape[1]), columns
                self._matrix[start:end] = inputs
                return
        if n == 1 and columns is not None and columns is self._aligned_for and isinstance(inputs, Mapping) and self._put_aligned(start, inputs):
            return
        self._settle_matrix()
        for name, values in _input_columns(inputs, columns):
            self._put(name, start, values)
        aligned = columns is not None and isinstance(inputs, Mapping) and list(inputs) == list(columns) == list(self.inputs)
        self._aligned_for = columns if aligned else None
        self._aligned = [(name, self.inputs[name]) for name in columns] if aligned and columns is not None else []

    def table(self) -> Any:
        """One Arrow table: the log's own columns, then every input under ``in__<name>`` (NaN and None as null)."""
        import pyarrow as pa

        n = self.rows
        arrays: dict[str, Any] = {
            "request_id": pa.array(self.request_id, pa.string()),
            "row": pa.array(self.row, pa.int32()),
            "ts": pa.array(self.ts, pa.float64()),
            "version": pa.array(self.version, pa.int32()),
            "latency_ms": pa.array(self.latency_ms, pa.float64()),
            "score": pa.array(self.score, pa.float64()),
            "arm": pa.array(self.arm, pa.string()),
            "probability": pa.array(self.probability, pa.float64()),
        }
        if self._matrix is not None and self._matrix_columns is not None:
            for j, name in enumerate(self._matrix_columns):
                arrays[INPUT_PREFIX + name] = pa.array(self._matrix[:n, j], from_pandas=True)
        for name, column in self.inputs.items():
            arrays[INPUT_PREFIX + name] = _arrow(column[:n])
        return pa.table(arrays)


class FeedbackBuffer:
    """Labels of one deployment since the last flush, one list per column (labels are few and small)."""

    def __init__(self) -> None:
        self.request_id: list[str] = []
        self.row: list[int] = []
        self.ts: list[float] = []
        self.label: list[float] = []

    def __len__(self) -> int:
        return len(self.label)

    def add(self, request_id: str, labels: Sequence[float], ts: float) -> None:
        n = len(labels)
        self.request_id.extend([request_id] * n)
        self.row.extend(range(n))
        self.ts.extend([ts] * n)
        self.label.extend(float(v) for v in labels)

    def table(self) -> Any:
        import pyarrow as pa

        return pa.table(
            {
                "request_id": pa.array(self.request_id, pa.string()),
                "row": pa.array(self.row, pa.int32()),
                "ts": pa.array(self.ts, pa.float64()),
                "label": pa.array(self.label, pa.float64()),
            }
        )


class FailureBuffer:
    """Requests a served version failed to answer (the arm routed there, the status sent back), since the last
    flush: how error rates per arm are counted, since a failed request leaves no prediction row."""

    def __init__(self) -> None:
        self.request_id: list[str] = []
        self.ts: list[float] = []
        self.version: list[int] = []
        self.arm: list[str] = []
        self.probability: list[float] = []
        self.status: list[int] = []
        self.error: list[str] = []

    def __len__(self) -> int:
        return len(self.request_id)

    def add(self, request_id: str, ts: float, version: int, arm: str, probability: float, status: int, error: str) -> None:
        self.request_id.append(request_id)
        self.ts.append(ts)
        self.version.append(version)
        self.arm.append(arm)
        self.probability.append(probability)
        self.status.append(status)
        self.error.append(error[:200])

    def table(self) -> Any:
        import pyarrow as pa

        return pa.table({
            "request_id": pa.array(self.request_id, pa.string()), "ts": pa.array(self.ts, pa.float64()),
            "version": pa.array(self.version, pa.int32()), "arm": pa.array(self.arm, pa.string()),
            "probability": pa.array(self.probability, pa.float64()), "status": pa.array(self.status, pa.int16()),
            "error": pa.array(self.error, pa.string()),
        })
