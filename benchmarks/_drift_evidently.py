"""Evidently's side of benchmarks/drift.py, run by the venv that has Evidently 0.7 (pandas < 3).

    python _drift_evidently.py speed REF.parquet CUR.parquet OUT.html   -> {"import_seconds", "read_seconds", "seconds", "peak_mib"}
    python _drift_evidently.py whole REF.parquet CUR.parquet OUT.html   (the whole job, as a process to be timed)
    python _drift_evidently.py aa WINDOWS ROWS                           -> {"any_column", "dataset"}
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

_started = time.perf_counter()
import pandas as pd  # noqa: E402

IMPORTED = time.perf_counter() - _started

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _drift_data import table  # noqa: E402
from _rss import PeakRSS  # noqa: E402

warnings.filterwarnings("ignore")


def _run(reference: pd.DataFrame, current: pd.DataFrame) -> dict:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)


def _drifted(snapshot: object) -> tuple[int, float]:
    for metric in snapshot.dict()["metrics"]:  # type: ignore[attr-defined]
        if metric["metric_name"].startswith("DriftedColumnsCount"):
            return int(metric["value"]["count"]), float(metric["value"]["share"])
    raise RuntimeError("Evidently's report has no DriftedColumnsCount")


def main() -> None:
    mode = sys.argv[1]
    if mode == "speed":
        started = time.perf_counter()
        import evidently.presets  # noqa: F401

        imported = time.perf_counter() - started + IMPORTED
        ref, cur = pd.read_parquet(sys.argv[2]), pd.read_parquet(sys.argv[3])
        read = time.perf_counter() - started - imported + IMPORTED
        _run(ref.head(200), cur.head(200))  # imports and first-call set-up are not what we time
        with PeakRSS() as mem:
            start = time.perf_counter()
            _run(ref, cur).save_html(sys.argv[4])
            seconds = time.perf_counter() - start
        print(json.dumps({"import_seconds": imported, "read_seconds": read, "seconds": seconds, "peak_mib": mem.peak_mib}))
    elif mode == "whole":  # what a user runs: read both tables, build the report, write the HTML
        _run(pd.read_parquet(sys.argv[2]), pd.read_parquet(sys.argv[3])).save_html(sys.argv[4])
    elif mode == "aa":
        windows, rows = int(sys.argv[2]), int(sys.argv[3])
        reference = table(5 * rows, seed=10_000)
        any_column = dataset = 0
        for w in range(windows):
            count, share = _drifted(_run(reference, table(rows, seed=w)))
            any_column += count > 0
            dataset += share >= 0.5  # the preset's default dataset rule
        print(json.dumps({"any_column": any_column / windows, "dataset": dataset / windows}))


if __name__ == "__main__":
    main()
