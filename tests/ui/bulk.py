"""Many tracked runs at once, written straight into MLflow's SQLite store (MLflow's own API would take minutes for
10,000): the rows MLflow itself writes for a finished run with two metrics and its four system tags (MLflow 3's runs
page fails without ``mlflow.runName``), so MLflow's UI and mloop read them alike."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path


def bulk_runs(mlflow_db: Path, n: int, *, experiment: str = "bulk") -> int:
    """Add ``n`` finished runs with metrics ``auc`` and ``loss`` to a new experiment ``experiment`` of ``mlflow_db``;
    returns the experiment's id."""
    conn = sqlite3.connect(mlflow_db)
    try:
        now = int(time.time() * 1000)
        cur = conn.execute("SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments")
        exp_id = int(cur.fetchone()[0])
        artifacts = Path(mlflow_db).parent / "artifacts"
        conn.execute("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) "
                     "VALUES (?, ?, ?, 'active', ?, ?)", (exp_id, experiment, str(artifacts / str(exp_id)), now, now))
        runs, metrics, tags = [], [], []
        for i in range(n):
            run = uuid.uuid4().hex
            start = now - (n - i) * 1000
            runs.append((run, f"trial-{i:05d}", "LOCAL", "bulk", "", "mloop", "FINISHED", start, start + 500, "", "active",
                         str(artifacts / str(exp_id) / run / "artifacts"), exp_id))
            metrics += [("auc", 0.6 + (i % 97) / 400, start, 0, 0, run), ("loss", 1.0 - (i % 89) / 200, start, 0, 0, run)]
            tags += [("mlflow.runName", f"trial-{i:05d}", run), ("mlflow.user", "mloop", run), ("mlflow.source.name", "bulk", run),
                     ("mlflow.source.type", "LOCAL", run)]
        conn.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, "
                         "source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
        conn.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)", metrics)
        conn.executemany("INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)", metrics)
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
        conn.commit()
    finally:
        conn.close()
    return exp_id
