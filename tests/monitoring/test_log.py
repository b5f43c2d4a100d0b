from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from mloop.monitoring import LogReader, PredictionLog


def test_predictions_and_late_labels_join_by_request_and_row(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    t0 = time.time()
    log.log_predictions("dep", 1, "r1", t0, pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}), np.array([[0.9, 0.1], [0.2, 0.8]]), 1.5)
    log.log_predictions("dep", 2, "r2", t0 + 1, pd.DataFrame({"x": [3.0], "c": ["a"]}), np.array([0.3]), 2.0)
    assert log.flush() == 3
    log.log_feedback("dep", "r1", [0.0, 1.0], t0 + 5)
    log.flush()
    frame = LogReader(tmp_path).labelled("dep")
    assert frame[["request_id", "row", "version", "x", "c", "label"]].to_dict("records") == [
        {"request_id": "r1", "row": 0, "version": 1, "x": 1.0, "c": "a", "label": 0.0},
        {"request_id": "r1", "row": 1, "version": 1, "x": 2.0, "c": "b", "label": 1.0},
        {"request_id": "r2", "row": 0, "version": 2, "x": 3.0, "c": "a", "label": None},
    ] or frame["label"].isna().iloc[2]
    np.testing.assert_allclose(frame["score"], [0.1, 0.8, 0.3])
    assert LogReader(tmp_path).count("dep", since=t0 + 0.5) == 1
    assert LogReader(tmp_path).labelled("dep", labels_after=t0 + 4)["request_id"].tolist() == ["r1", "r1"]
    assert LogReader(tmp_path).labelled("dep", labels_after=t0 + 6).empty
    assert not list(tmp_path.rglob("*.tmp"))


def test_reader_on_an_empty_log(tmp_path: Path) -> None:
    reader = LogReader(tmp_path)
    assert reader.count("dep") == 0 and reader.labelled("dep").empty


def test_background_flush_and_close(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_interval=0.05)
    log.start()
    log.log_predictions("dep", 1, "r", time.time(), pd.DataFrame({"x": [1.0]}), np.array([0.5]), 1.0)
    deadline = time.time() + 5
    while LogReader(tmp_path).count("dep") == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert LogReader(tmp_path).count("dep") == 1
    log.log_feedback("dep", "r", [1.0], time.time())
    log.close()
    assert LogReader(tmp_path).labelled("dep")["label"].tolist() == [1.0]
