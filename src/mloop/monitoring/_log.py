"""The prediction and feedback log: append-only Parquet segments, written off the serving path, read with DuckDB.

Serving calls ``log_predictions`` / ``log_feedback``, which only append to an in-memory buffer; a
background thread writes the buffer every ``flush_interval`` seconds as one new segment per
deployment and kind (written to a temporary name, fsynced, then renamed: a segment is whole or absent).
Rows acknowledged to a client are on disk at most ``flush_interval`` seconds later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.monitoring._buffer import INPUT_PREFIX, FailureBuffer, FeedbackBuffer, PredictionBuffer
from mloop.monitoring._transport import LocalSegments, SegmentSink
from mloop.names import check_name

log = logging.getLogger("mloop.monitoring")


class PredictionLog:
    """Buffered writer of prediction and feedback batches: segments under ``root/<deployment>/`` by default,
    or any :class:`SegmentSink` (a Redis Stream, JetStream). Thread-safe.

    Requests are buffered column by column (:class:`PredictionBuffer`), so appending costs a few list operations
    and a flush holds the interpreter only to hand each column to Arrow (the Parquet write and the fsync release
    it). A batch the sink refuses (say Redis is down) is kept, already built, and written first at the next flush."""

    def __init__(self, root: Path, *, flush_interval: float = 1.0, sink: SegmentSink | None = None) -> None:
        self.root = root
        self.flush_interval = flush_interval
        self.sink: SegmentSink = sink or LocalSegments(root)
        self._lock = threading.Lock()
        self._predictions: dict[str, PredictionBuffer] = {}
        self._feedback: dict[str, FeedbackBuffer] = {}
        self._failures: dict[str, FailureBuffer] = {}
        self._unwritten: list[tuple[str, str, Any]] = []  # (kind, deployment, table or buffer) not written yet
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
        arm: str = "baseline",
        probability: float = 1.0,
    ) -> None:
        """Buffer one answered request. ``inputs`` is a frame, a mapping of column arrays, or a matrix with its
        ``columns``; ``scores`` holds one number per row; ``arm`` and ``probability`` say which arm of the
        deployment's traffic policy answered and how likely it was to be routed the request (for evaluating
        policies offline)."""
        with self._lock:
            buffer = self._predictions.get(deployment)
            if buffer is None:
                buffer = self._predictions[deployment] = PredictionBuffer()
            buffer.add(request_id, ts, version, latency_ms, inputs, scores, columns, arm, probability)

    def log_failure(self, deployment: str, version: int, request_id: str, ts: float, *, arm: str, probability: float, status: int,
                    error: str) -> None:
        """Buffer one request the routed version failed (``status`` as answered, ``error`` its class): error rates
        per arm come from these beside the predictions."""
        with self._lock:
            buffer = self._failures.get(deployment)
            if buffer is None:
                buffer = self._failures[deployment] = FailureBuffer()
            buffer.add(request_id, ts, version, arm, probability, status, error)

    def log_feedback(self, deployment: str, request_id: str, labels: list[float], ts: float) -> None:
        with self._lock:
            buffer = self._feedback.get(deployment)
            if buffer is None:
                buffer = self._feedback[deployment] = FeedbackBuffer()
            buffer.add(request_id, labels, ts)

    # -- flushing (background) ------------------------------------------------------------

    def flush(self) -> int:
        """Write everything buffered so far; returns the number of rows written. Batches that fail to write are
        kept for the next flush, and the first failure is raised after the rest were tried."""
        with self._flush_lock:
            with self._lock:
                predictions, self._predictions = self._predictions, {}
                feedback, self._feedback = self._feedback, {}
                failures, self._failures = self._failures, {}
            batches: list[tuple[str, str, Any]] = [
                *self._unwritten,
                *(("predictions", d, b) for d, b in predictions.items() if len(b)),
                *(("feedback", d, b) for d, b in feedback.items() if len(b)),
                *(("failures", d, b) for d, b in failures.items() if len(b)),
            ]
            self._unwritten = []
            written = 0
            failure: Exception | None = None
            for kind, deployment, batch in batches:
                try:
                    table = batch.table() if isinstance(batch, PredictionBuffer | FeedbackBuffer | FailureBuffer) else batch
                    self.sink.write(deployment, kind, table)
                except Exception as exc:  # keep the rows: nothing acknowledged is dropped because a sink hiccuped
                    self._unwritten.append((kind, deployment, batch))
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


def _window(since: float | None, until: float | None) -> tuple[list[str], list[object]]:
    """SQL conditions and parameters for ``since <= ts < until`` (either bound optional)."""
    conds: list[str] = []
    params: list[object] = []
    if since is not None:
        conds.append("ts >= ?")
        params.append(since)
    if until is not None:
        conds.append("ts < ?")
        params.append(until)
    return conds, params


def _column(name: str) -> str:
    """A log column for SQL: one of the log's own columns (never user text spliced into a query)."""
    if name not in LOG_FIELDS:
        raise InvalidInput(f"columns: {name!r} is not a column of the prediction log ({', '.join(LOG_FIELDS)}).", field="columns")
    return name


#: The prediction log's own columns (beside the inputs).
LOG_FIELDS = ("request_id", "row", "ts", "version", "latency_ms", "score", "arm", "probability")


class LogReader:
    """Query the segments of ``root`` with DuckDB; late feedback is joined to predictions by (request id, row)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _glob(self, deployment: str, kind: str, since: float | None = None, *, slack: float = 60.0) -> str | list[str] | None:
        """The segments of ``kind`` to read: every one, or with ``since`` only those written at or after it, less
        ``slack`` seconds for the clock that stamped the rows disagreeing with the one that stamped the file. A segment
        is written after its rows happened, so a row at or after ``since`` is never in an older one; a log of thousands
        of segments is then read in its last few."""
        check_name(deployment, "deployment name")
        folder = self.root / deployment / kind
        if not folder.exists():
            return None
        if since is None or since > time.time():  # rows stamped ahead of this clock cannot be placed by write time
            return str(folder / "*.parquet") if any(folder.glob("*.parquet")) else None
        floor = since - slack
        recent = []
        for path in folder.glob("*.parquet"):
            try:
                if path.stat().st_mtime >= floor:
                    recent.append(str(path))
            except FileNotFoundError:  # removed (archived) while listing
                continue
        return sorted(recent) or None

    def written_since(self, deployment: str, kind: str, since: float) -> int:
        """Rows of ``kind`` in segments written at or after ``since`` (by the segment's write time, not the rows'
        own): a cheap "has anything arrived since I last looked" for a consumer that then reads in full."""
        import duckdb

        files = self._glob(deployment, kind, since, slack=0.0)  # the segments' own write times, compared on one clock
        if files is None:
            return 0
        with duckdb.connect() as con:
            row = con.execute("SELECT count(*) FROM read_parquet(?, union_by_name=true)", [files]).fetchone()
        return int(row[0]) if row else 0

    def count(self, deployment: str, *, since: float | None = None, kind: str = "predictions") -> int:
        """Rows of ``kind`` (``predictions``, ``feedback`` or ``failures``) written at or after ``since``."""
        import duckdb

        if kind not in ("predictions", "feedback", "failures"):
            raise InvalidInput(f"kind must be 'predictions', 'feedback' or 'failures', got {kind!r}.", field="kind")
        glob = self._glob(deployment, kind, since)
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

        glob = self._glob(deployment, "predictions", since if after is None else max(since or after[0], after[0]))
        if glob is None:
            return pd.DataFrame()
        conds, params = _window(since, until)
        params.insert(0, glob)
        if after is not None:
            conds.append("(ts > ? OR (ts = ? AND (request_id > ? OR (request_id = ? AND row > ?))))")
            params += [after[0], after[0], after[1], after[1], after[2]]
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with duckdb.connect() as con:
            frame = con.execute(f"SELECT * FROM read_parquet(?, union_by_name=true) {where} ORDER BY ts, request_id, row{tail}", params).df()
        return frame.rename(columns=lambda c: c.removeprefix(INPUT_PREFIX))

    def failures(self, deployment: str, *, since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """Failed requests with ``since <= ts < until``, in time order: request id, version, arm, probability,
        status and error class."""
        import duckdb

        glob = self._glob(deployment, "failures", since)
        if glob is None:
            return pd.DataFrame(columns=["request_id", "ts", "version", "arm", "probability", "status", "error"])
        conds, params = _window(since, until)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        with duckdb.connect() as con:
            return con.execute(f"SELECT * FROM read_parquet(?, union_by_name=true) {where} ORDER BY ts, request_id", [glob, *params]).df()

    def outcomes(self, deployment: str, *, since: float, until: float) -> pd.DataFrame:
        """One row per request with ``since <= ts < until``, answered or failed, in time order: request id, ts,
        version, arm, ``ok`` (1 answered, 0 failed) and ``latency_ms`` (NaN for a failure). What a canary's error
        and latency tests read; a request's rows collapse to one, so a large batch counts once."""
        import duckdb

        parts, params = [], []
        if (glob := self._glob(deployment, "predictions", since)) is not None:
            parts.append("SELECT request_id, min(ts) AS ts, any_value(version) AS version, any_value(arm) AS arm, 1 AS ok, "
                         "max(latency_ms) AS latency_ms FROM read_parquet(?, union_by_name=true) WHERE ts >= ? AND ts < ? GROUP BY request_id")
            params += [glob, since, until]
        if (glob := self._glob(deployment, "failures", since)) is not None:
            parts.append("SELECT request_id, ts, version, arm, 0 AS ok, CAST(NULL AS DOUBLE) AS latency_ms "
                         "FROM read_parquet(?, union_by_name=true) WHERE ts >= ? AND ts < ?")
            params += [glob, since, until]
        if not parts:
            return pd.DataFrame(columns=["request_id", "ts", "version", "arm", "ok", "latency_ms"])
        with duckdb.connect() as con:
            return con.execute(" UNION ALL ".join(parts) + " ORDER BY ts, request_id", params).df()

    def labelled(
        self, deployment: str, *, since: float | None = None, until: float | None = None, labels_after: float | None = None,
        labels_until: float | None = None, columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Predictions in ``[since, until)`` with their ``label`` and its arrival time ``label_ts``
        (NaN while none arrived); inputs under their own names. ``labels_after`` (and ``labels_until``) keep only
        rows whose label arrived in ``(labels_after, labels_until]``: what a streaming consumer has not seen yet.
        ``columns`` reads only those log columns of the predictions (say ``arm``, ``version``, ``score``): the inputs
        are then never read."""
        import duckdb

        preds = self._glob(deployment, "predictions", since)
        if preds is None:
            return pd.DataFrame()
        # A label comes after its prediction: predictions from ``since`` have their labels in segments written since.
        bounds = [b for b in (since, labels_after) if b is not None]
        feedback = self._glob(deployment, "feedback", max(bounds) if bounds else None)
        conds: list[str] = []
        params: list[object] = [preds]
        if since is not None:
            conds.append("p.ts >= ?")
        if until is not None:
            conds.append("p.ts < ?")
        if labels_after is not None or labels_until is not None:
            if feedback is None:
                return pd.DataFrame()
        if labels_after is not None:
            conds.append("f.label_ts > ?")
        if labels_until is not None:
            conds.append("f.label_ts <= ?")
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        picked = "p.*" if columns is None else ", ".join(f"p.{_column(c)}" for c in dict.fromkeys(["ts", "request_id", "row", *columns]))
        if feedback is None:
            sql = (
                f"SELECT {picked}, CAST(NULL AS DOUBLE) AS label, CAST(NULL AS DOUBLE) AS label_ts FROM read_parquet(?, union_by_name=true) p "
                f"{where} ORDER BY p.ts, p.request_id, p.row"
            )
        else:
            params.append(feedback)
            sql = (
                f"SELECT {picked}, f.label, f.label_ts FROM read_parquet(?, union_by_name=true) p "
                "LEFT JOIN (SELECT request_id, row, last(label ORDER BY ts) AS label, max(ts) AS label_ts "
                "FROM read_parquet(?, union_by_name=true) GROUP BY request_id, row) f "
                f"USING (request_id, row) {where} ORDER BY p.ts, p.request_id, p.row"
            )
        params += [v for v in (since, until, labels_after, labels_until) if v is not None]
        with duckdb.connect() as con:
            frame = con.execute(sql, params).df()
        return frame.rename(columns=lambda c: c.removeprefix(INPUT_PREFIX))
