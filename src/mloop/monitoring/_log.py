"""The prediction and feedback log: append-only Parquet segments, written off the serving path, read with DuckDB.

Serving calls ``log_predictions`` / ``log_feedback``, which only append to an in-memory buffer; a
background thread writes the buffer every ``flush_interval`` seconds as one new segment per
deployment and kind (written to a temporary name, fsynced, then renamed: a segment is whole or absent).
Rows acknowledged to a client are on disk at most ``flush_interval`` seconds later.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.monitoring._transport import LocalSegments, SegmentSink
from mloop.names import check_name

log = logging.getLogger("mloop.monitoring")

INPUT_PREFIX = "in__"


def _kind(inputs: Any) -> int:
    return 0 if isinstance(inputs, np.ndarray) else 1 if isinstance(inputs, pd.DataFrame) else 2


def _same_shape(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    kind = _kind(a[4])
    if kind != _kind(b[4]):
        return False
    if kind == 0:  # matrices: the runtime passes the same column tuple object every time
        return a[6] is b[6] or a[6] == b[6]
    if kind == 2:
        return a[4].keys() == b[4].keys()
    return True


def _runs(items: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """Consecutive requests of one shape, grouped: each group becomes one set of column arrays."""
    runs: list[list[tuple[Any, ...]]] = []
    for item in items:
        if runs and _same_shape(runs[-1][0], item):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _column_arrays(group: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The inputs of consecutive same-shaped requests as one array per column."""
    first, columns = group[0][4], group[0][6]
    if isinstance(first, np.ndarray):
        matrix = np.vstack([item[4] for item in group])
        return {name: matrix[:, j] for j, name in enumerate(columns or [f"x{j}" for j in range(matrix.shape[1])])}
    if isinstance(first, pd.DataFrame):
        frame = pd.concat([item[4] for item in group], ignore_index=True)
        return {str(c): frame[c].to_numpy() for c in frame.columns}
    return {k: np.concatenate([item[4][k] for item in group]) for k in first}


def _prediction_table(items: list[tuple[Any, ...]]) -> Any:
    """One Arrow table for many buffered requests, built column-wise with numpy: the flush holds the GIL
    for as little time as possible, because it shares the process with the serving event loop."""
    import pyarrow as pa

    sizes = np.fromiter((len(item[4]) for item in items), dtype=np.int64, count=len(items))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())
    columns: dict[str, Any] = {
        "request_id": np.repeat(np.array([item[0] for item in items], dtype=object), sizes),
        "row": (np.arange(total) - np.repeat(starts, sizes)).astype(np.int32),
        "ts": np.repeat(np.fromiter((item[1] for item in items), dtype=float, count=len(items)), sizes),
        "version": np.repeat(np.fromiter((item[2] for item in items), dtype=np.int32, count=len(items)), sizes),
        "latency_ms": np.repeat(np.fromiter((item[3] for item in items), dtype=float, count=len(items)), sizes),
        "score": np.concatenate([np.asarray(item[5], dtype=float).reshape(len(item[4]), -1)[:, -1] for item in items]),
    }
    inputs: dict[str, list[Any]] = {}
    for group in _runs(items):
        n = sum(len(item[4]) for item in group)
        arrays = _column_arrays(group)
        for name in inputs.keys() | arrays.keys():  # a column absent from a run is null there
            inputs.setdefault(name, [])
            inputs[name].append(arrays[name] if name in arrays else np.full(n, None, dtype=object))
    for name, parts in inputs.items():
        values = parts[0] if len(parts) == 1 else np.concatenate(parts)
        columns[INPUT_PREFIX + name] = pa.array(values, from_pandas=True)
    return pa.table(columns)


class PredictionLog:
    """Buffered writer of prediction and feedback batches: segments under ``root/<deployment>/`` by default,
    or any :class:`SegmentSink` (a Redis Stream, JetStream). Thread-safe. A batch the sink refuses (say
    Redis is down) goes back to the front of the buffer and is tried again at the next flush."""

    def __init__(self, root: Path, *, flush_interval: float = 1.0, sink: SegmentSink | None = None) -> None:
        self.root = root
        self.flush_interval = flush_interval
        self.sink: SegmentSink = sink or LocalSegments(root)
        self._lock = threading.Lock()
        self._predictions: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._feedback: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()

    # -- writing (hot path: append only) --------------------------------------------------

    def log_predictions(
        self,
        deployment: str,
        version: int,
        request_id: str,
        ts: float,
        inputs: pd.DataFrame | np.ndarray | Mapping[str, np.ndarray],
        scores: np.ndarray,
        latency_ms: float,
        columns: Sequence[str] | None = None,
    ) -> None:
        """Buffer one answered request. ``inputs`` is a frame, a mapping of column arrays (with ``len``), or a
        matrix with its ``columns``; frames are built at flush time, off the serving path."""
        with self._lock:
            self._predictions[deployment].append((request_id, ts, version, latency_ms, inputs, scores, columns))

    def log_feedback(self, deployment: str, request_id: str, labels: list[float], ts: float) -> None:
        with self._lock:
            self._feedback[deployment].append((request_id, ts, labels))

    # -- flushing (background) ------------------------------------------------------------

    def _requeue(self, kind: str, deployment: str, items: list[tuple[Any, ...]]) -> None:
        with self._lock:
            buffer = self._predictions if kind == "predictions" else self._feedback
            buffer[deployment][:0] = items

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of rows written. Batches that fail to
        write are kept for the next flush, and the first failure is raised after the rest were tried."""
        import pyarrow as pa

        with self._flush_lock:
            with self._lock:
                predictions, self._predictions = self._predictions, defaultdict(list)
                feedback, self._feedback = self._feedback, defaultdict(list)
            written = 0
            failure: Exception | None = None
            batches: list[tuple[str, str, list[tuple[Any, ...]]]] = [
                *(("predictions", d, items) for d, items in predictions.items()),
                *(("feedback", d, items) for d, items in feedback.items()),
            ]
            for kind, deployment, items in batches:
                if kind == "predictions":
                    table = _prediction_table(items)
                else:
                    frame = pd.DataFrame(
                        [(rid, i, ts, float(label)) for rid, ts, labels in items for i, label in enumerate(labels)],
                        columns=["request_id", "row", "ts", "label"],
                    ).astype({"row": np.int32})
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                try:
                    self.sink.write(deployment, kind, table)
                except Exception as exc:  # keep the rows: nothing acknowledged is dropped because a sink hiccuped
                    self._requeue(kind, deployment, items)
                    failure = failure or exc
                    continue
                written += table.num_rows
            if failure is not None:
                raise failure
            return written

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception as exc:
                log.warning("prediction log flush failed (kept for the next one): %s", exc)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mloop-prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread, write what is left, close the sink."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        try:
            self.flush()
        finally:
            self.sink.close()


class LogReader:
    """Query the segments of ``root`` with DuckDB; late feedback is joined to predictions by (request id, row)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _glob(self, deployment: str, kind: str) -> str | None:
        check_name(deployment, "deployment name")
        folder = self.root / deployment / kind
        if not folder.exists() or not any(folder.glob("*.parquet")):
            return None
        return str(folder / "*.parquet")

    def count(self, deployment: str, *, since: float | None = None, kind: str = "predictions") -> int:
        """Rows of ``kind`` (``predictions`` or ``feedback``) written at or after ``since``."""
        import duckdb

        if kind not in ("predictions", "feedback"):
            raise InvalidInput(f"kind must be 'predictions' or 'feedback', got {kind!r}.", field="kind")
        glob = self._glob(deployment, kind)
        if glob is None:
            return 0
        where = "WHERE ts >= ?" if since is not None else ""
        params = [since] if since is not None else []
        with duckdb.connect() as con:
            row = con.execute(f"SELECT count(*) FROM read_parquet(?, union_by_name=true) {where}", [glob, *params]).fetchone()
        return int(row[0]) if row else 0

    def predictions(
        self,
        deployment: str,
        *,
        since: float | None = None,
        until: float | None = None,
        after: tuple[float, str, int] | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Predictions with ``since <= ts < until``, strictly after the ``(ts, request_id, row)`` cursor
        ``after``, in log order (time, request, row), at most ``limit`` rows; inputs under their own names."""
        import duckdb

        glob = self._glob(deployment, "predictions")
        if glob is None:
            return pd.DataFrame()
        conds: list[str] = []
        params: list[object] = [glob]
        if since is not None:
            conds.append("ts >= ?")
            params.append(since)
        if until is not None:
            conds.append("ts < ?")
            params.append(until)
        if after is not None:
            conds.append("(ts > ? OR (ts = ? AND (request_id > ? OR (request_id = ? AND row > ?))))")
            params += [after[0], after[0], after[1], after[1], after[2]]
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with duckdb.connect() as con:
            frame = con.execute(f"SELECT * FROM read_parquet(?, union_by_name=true) {where} ORDER BY ts, request_id, row{tail}", params).df()
        return frame.rename(columns=lambda c: c.removeprefix(INPUT_PREFIX))

    def labelled(
        self, deployment: str, *, since: float | None = None, until: float | None = None, labels_after: float | None = None
    ) -> pd.DataFrame:
        """Predictions in ``[since, until)`` with their ``label`` and its arrival time ``label_ts``
        (NaN while none arrived); inputs under their own names. ``labels_after`` keeps only rows whose label
        arrived after that time: what a streaming consumer has not seen yet."""
        import duckdb

        preds = self._glob(deployment, "predictions")
        if preds is None:
            return pd.DataFrame()
        feedback = self._glob(deployment, "feedback")
        conds: list[str] = []
        params: list[object] = [preds]
        if since is not None:
            conds.append("p.ts >= ?")
        if until is not None:
            conds.append("p.ts < ?")
        if labels_after is not None:
            if feedback is None:
                return pd.DataFrame()
            conds.append("f.label_ts > ?")
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        if feedback is None:
            sql = (
                "SELECT p.*, CAST(NULL AS DOUBLE) AS label, CAST(NULL AS DOUBLE) AS label_ts FROM read_parquet(?, union_by_name=true) p "
                f"{where} ORDER BY p.ts, p.request_id, p.row"
            )
        else:
            params.append(feedback)
            sql = (
                "SELECT p.*, f.label, f.label_ts FROM read_parquet(?, union_by_name=true) p "
                "LEFT JOIN (SELECT request_id, row, last(label ORDER BY ts) AS label, max(ts) AS label_ts "
                "FROM read_parquet(?, union_by_name=true) GROUP BY request_id, row) f "
                f"USING (request_id, row) {where} ORDER BY p.ts, p.request_id, p.row"
            )
        params += [v for v in (since, until, labels_after) if v is not None]
        with duckdb.connect() as con:
            frame = con.execute(sql, params).df()
        return frame.rename(columns=lambda c: c.removeprefix(INPUT_PREFIX))
