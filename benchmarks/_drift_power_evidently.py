"""Evidently's side of benchmarks/drift_power.py, run by the venv that has Evidently 0.7 (pandas < 3).

    python _drift_power_evidently.py SEEDS SIZE[,SIZE...]   -> {"detection": {label: {size: rate}}, "aa": {size: rate}}

Detection: for each cell and size, one report over a frame whose columns are the seeds (each column one seed's
reference and current sample), so the per-column verdicts are Evidently's defaults for that size (at most 50
seeds at 100k rows, where its verdict is a fixed threshold on a distance and each report is slow). A/A: windows
of the 25-column benchmark table (20 numeric, 5 categorical), both sides drawn afresh: the share of windows with
any column flagged.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _drift_data import table  # noqa: E402
from _drift_shifts import CELLS, pair  # noqa: E402

warnings.filterwarnings("ignore")


def _flags(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    """Evidently's per-column verdicts: a p-value below its threshold, or a distance at or above it."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    flags = {}
    for metric in Report([DataDriftPreset()]).run(current_data=current, reference_data=reference).dict()["metrics"]:
        name = metric["metric_name"]
        if not name.startswith("ValueDrift("):
            continue
        config = metric["config"]
        column, method, threshold = config["column"], str(config.get("method", "")), float(config["threshold"])
        value = float(metric["value"])
        flags[column] = value < threshold if "p_value" in method.lower() else value >= threshold
    return flags


def main() -> None:
    seeds, sizes = int(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")]
    detection: dict[str, dict[int, float]] = {}
    for cell in CELLS:
        print(f"  Evidently: {cell.label}", file=sys.stderr, flush=True)
        for n in sizes:
            count = seeds if n <= 10_000 else min(seeds, 50)  # a threshold on a distance: 50 seeds tell at 100k
            pairs = [pair(cell, n, seed) for seed in range(count)]
            ref = pd.DataFrame({f"s{i}": p[0] for i, p in enumerate(pairs)})
            cur = pd.DataFrame({f"s{i}": p[1] for i, p in enumerate(pairs)})
            flags = _flags(ref, cur)
            detection.setdefault(cell.label, {})[n] = sum(flags.values()) / count
    aa: dict[int, float] = {}
    for n in sizes:
        print(f"  Evidently: A/A windows of {n:,} rows", file=sys.stderr, flush=True)
        windows = max(100, seeds) if n <= 10_000 else 20  # above 1,000 rows its distances hardly ever alarm: 20 windows tell
        alarms = 0
        for w in range(windows):
            flags = _flags(table(n, seed=100_000 + w), table(n, seed=200_000 + w))
            alarms += any(flags.values())
        aa[n] = alarms / windows
    print(json.dumps({"detection": detection, "aa": aa}))


if __name__ == "__main__":
    main()
