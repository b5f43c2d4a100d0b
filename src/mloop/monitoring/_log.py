"""The prediction and feedback log: append-only Parquet segments, written off the serving path, read with DuckDB.

Serving calls ``log_predictions`` / ``log_feedback``, which only append to an in-memory buffer; a
background thread writes the buffer every ``flush_interval`` seconds as one new segment per
deployment and kind (written to a temporary name, fsynced, then renamed: a segment is whole or absent).
Rows acknowledged to a client are on disk at most ``flush_interval`` seconds later.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.names import check_name

INPUT_PREFIX = "in__"


class PredictionLog:
    """Buffered writer of prediction and feedback segments under ``root/<deployment>/``. Thread-safe."""

    def __init__(self, root: Path, *, flush_interval: float = 1.0) -> None:
        self.root = root
        self.flush_interval = flush_interval
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
        inputs: pd.DataFrame | np.ndarray,
        scores: np.ndarray,
        latency_ms: float,
        columns: list[str] | None = None,
    ) -> None:
        """Buffer one answered request; a matrix of ``inputs`` needs its ``columns`` (turned into a frame at flush time)."""
        with self._lock:
            self._predictions[deployment].append((request_id, ts, version, latency_ms, inputs, scores, columns))

    def log_feedback(self, deployment: str, request_id: str, labels: list[float], ts: float) -> None:
        with self._lock:
            self._feedback[deployment].append((request_id, ts, labels))

    # -- flushing (background) ------------------------------------------------------------

    def _write(self, folder: Path, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = folder / f".{name}.tmp"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with tmp.open("wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of rows written."""
        with self._flush_lock:
            with self._lock:
                predictions, self._predictions = self._predictions, defaultdict(list)
                feedback, self._feedback = self._feedback, defaultdict(list)
            written = 0
            for deployment, items in predictions.items():
                frames = []
                for request_id, ts, version, latency_ms, inputs, scores, columns in items:
                    n = len(inputs)
                    if isinstance(inputs, np.ndarray):
                        inputs = pd.DataFrame(inputs, columns=columns)
                    frame = inputs.reset_index(drop=True).add_prefix(INPUT_PREFIX)
                    frame.insert(0, "request_id", request_id)
                    frame.insert(1, "row", np.arange(n, dtype=np.int32))
                    frame.insert(2, "ts", ts)
                    frame.insert(3, "version", np.int32(version))
                    frame.insert(4, "latency_ms", latency_ms)
                    frame.insert(5, "score", np.asarray(scores, dtype=float).reshape(n, -1)[:, -1])
                    frames.append(frame)
                batch = pd.concat(frames, ignore_index=True)
                self._write(self.root / deployment / "predictions", batch)
                written += len(batch)
            for deployment, fb_items in feedback.items():
                batch = pd.DataFrame(
                    [
                        (request_id, i, ts, float(label))
                        for request_id, ts, labels in fb_items
                        for i, label in enumerate(labels)
                    ],
                    columns=["request_id", "row", "ts", "label"],
                ).astype({"row": np.int32})
                self._write(self.root / deployment / "feedback", batch)
                written += len(batch)
            return written

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mloop-prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()


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

    def labelled(self, deployment: str, *, since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """Predictions in ``[since, until)`` with their ``label`` and its arrival time ``label_ts``
        (NaN while none arrived); inputs under their own names."""
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
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        if feedback is None:
            sql = f"SELECT p.*, CAST(NULL AS DOUBLE) AS label, CAST(NULL AS DOUBLE) AS label_ts FROM read_parquet(?, union_by_name=true) p {where} ORDER BY p.ts, p.request_id, p.row"
        else:
            params.append(feedback)
            sql = (
                "SELECT p.*, f.label, f.label_ts FROM read_parquet(?, union_by_name=true) p "
                "LEFT JOIN (SELECT request_id, row, last(label ORDER BY ts) AS label, max(ts) AS label_ts FROM read_parquet(?, union_by_name=true) GROUP BY request_id, row) f "
                f"USING (request_id, row) {where} ORDER BY p.ts, p.request_id, p.row"
            )
        params += [v for v in (since, until) if v is not None]
        with duckdb.connect() as con:
            frame = con.execute(sql, params).df()
        return frame.rename(columns=lambda c: c.removeprefix(INPUT_PREFIX))
