"""mloop's drift monitoring vs Evidently 0.7's data-drift preset, side by side in one run.

1. speed: reference and current tables of 100,000 rows × (20 numeric + 5 categorical) columns, the whole
   report (tests + self-contained HTML), each tool in a fresh process: wall time and peak memory above the
   loaded data. Target: mloop at least 10× faster and at most a third of the memory.
2. calibration: 200 A/A windows (1,000 rows each, drawn from the reference's own distribution, 25 features):
   the share of windows that alarm. Target: at most 5 % for mloop.
3. detection: River's synthetic streams with a known drift point (ConceptDriftStream over Agrawal, STAGGER and
   SEA, several seeds), a Hoeffding tree learning prequentially, its 0/1 errors fed to each detector: mean
   detection delay, misses and false alarms per 100k samples — mloop's one-sided detectors beside River's own.

Evidently needs pandas < 3, so it runs from its own venv (``make bench`` creates benchmarks/.venv-evidently;
or set EVIDENTLY_PYTHON).

    python benchmarks/drift.py [--windows 200] [--seeds 3] [--only speed|calibration|detection]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _drift_data import table  # noqa: E402
from _process import median_timed  # noqa: E402

console = Console()
EVIDENTLY = os.environ.get("EVIDENTLY_PYTHON", str(HERE / ".venv-evidently" / "bin" / "python"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _worker(python: str, script: str, *args: str) -> dict:
    out = subprocess.run([python, str(HERE / script), *args], capture_output=True, text=True, env=ENV, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{script} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ref, cur = Path(tmp) / "ref.parquet", Path(tmp) / "cur.parquet"
        table(rows, seed=1).to_parquet(ref)
        table(rows, seed=2, drift=True).to_parquet(cur)
        ours = _worker(sys.executable, "_drift_mloop.py", str(ref), str(cur), str(Path(tmp) / "mloop.html"))
        theirs = _worker(EVIDENTLY, "_drift_evidently.py", "speed", str(ref), str(cur), str(Path(tmp) / "evidently.html"))
        mloop_cli = str(Path(sys.executable).parent / "mloop")
        whole_ours = median_timed([mloop_cli, "drift", "report", "-r", str(ref), "-c", str(cur), "-o", str(Path(tmp) / "w.html")], 3, ENV)
        whole_theirs = median_timed([EVIDENTLY, str(HERE / "_drift_evidently.py"), "whole", str(ref), str(cur), str(Path(tmp) / "we.html")], 3, ENV)
    t = Table(title=f"1. speed: drift report over {rows:,} × 25 reference and current tables")
    for col in ("tool", "whole process (s)", "its peak memory (MiB)", "imports (s)", "reading both tables (s)",
                "in-process, after imports and a warm-up (s)", "its memory above the data (MiB)"):
        t.add_column(col)
    for name, whole, inner in (("mloop drift report", whole_ours, ours), ("Evidently 0.7 DataDriftPreset", whole_theirs, theirs)):
        t.add_row(name, f"{whole[0]:.2f}", f"{whole[1]:.0f}", f"{inner['import_seconds']:.2f}", f"{inner['read_seconds']:.2f}",
                  f"{inner['seconds']:.2f}", f"{inner['peak_mib']:.0f}")
    console.print(t)
    faster = whole_theirs[0] / whole_ours[0]
    memory = whole_ours[1] / max(whole_theirs[1], 1e-9)
    console.print(f"as whole processes (median of 3), mloop is {faster:.1f}× faster (target ≥ 10×) and uses {memory:.2f}× Evidently's peak "
                  f"memory (target ≤ 0.33); after imports: {theirs['seconds'] / ours['seconds']:.1f}× faster")


def calibration(windows: int, rows: int) -> None:
    from mloop.monitoring.drift import DEFAULT_FLOORS, DatasetDrift

    reference = table(5 * rows, seed=10_000)
    detector = DatasetDrift().fit(reference)
    no_floor = DatasetDrift(floors=dict.fromkeys(DEFAULT_FLOORS, 0.0)).fit(reference)  # the correction alone, no effect floors
    started = time.perf_counter()
    any_feature = dataset = any_no_floor = dataset_no_floor = 0
    for w in range(windows):
        current = table(rows, seed=w)
        report = detector.score(current)
        any_feature += bool(report.drifted())
        dataset += report.drift
        bare = no_floor.score(current)
        any_no_floor += bool(bare.drifted())
        dataset_no_floor += bare.drift
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = _worker(EVIDENTLY, "_drift_evidently.py", "aa", str(windows), str(rows))
    theirs_s = time.perf_counter() - started
    t = Table(title=f"2. calibration: {windows} A/A windows of {rows:,} rows vs a {5 * rows:,}-row reference, 25 features (no drift anywhere)")
    for col in ("tool", "windows with any feature flagged", "windows with dataset drift", "time (s)"):
        t.add_column(col)
    defaults = f"mloop defaults (BH, α = 0.05, floors {DEFAULT_FLOORS['wasserstein_sd']} σ / TV {DEFAULT_FLOORS['total_variation']})"
    t.add_row(defaults, f"{any_feature / windows:.1%}", f"{dataset / windows:.1%}", f"{ours_s:.1f} (both rows)")
    t.add_row("mloop, BH alone (floors 0)", f"{any_no_floor / windows:.1%}", f"{dataset_no_floor / windows:.1%}", "")
    t.add_row("Evidently 0.7 defaults", f"{theirs['any_column']:.1%}", f"{theirs['dataset']:.1%}", f"{theirs_s:.1f}")
    console.print(t)
    console.print(f"mloop false-alarm rate (any feature): {any_feature / windows:.1%} (target ≤ 5 %)")


WIDTH = 100  # ConceptDriftStream's transition: the new concept's share is a sigmoid centred on the position


def _streams(seeds: int, n: int, position: int) -> list[tuple[str, int, list[float]]]:
    """(name, seed, 0/1 errors of a Hoeffding tree learning prequentially) per synthetic stream."""
    from river import tree
    from river.datasets import synth

    makers = {
        "Agrawal 0→2": lambda s: synth.ConceptDriftStream(
            synth.Agrawal(classification_function=0, seed=s), synth.Agrawal(classification_function=2, seed=s + 100),
            seed=s, position=position, width=WIDTH,
        ),
        "STAGGER 0→2": lambda s: synth.ConceptDriftStream(
            synth.STAGGER(classification_function=0, seed=s), synth.STAGGER(classification_function=2, seed=s + 100),
            seed=s, position=position, width=WIDTH,
        ),
        "SEA 0→3": lambda s: synth.ConceptDriftStream(synth.SEA(variant=0, seed=s), synth.SEA(variant=3, seed=s + 100), seed=s, position=position, width=WIDTH),
    }
    out = []
    for name, make in makers.items():
        for seed in range(seeds):
            model = tree.HoeffdingTreeClassifier()
            errors = []
            for x, y in make(seed).take(n):
                errors.append(float(model.predict_one(x) != y))
                model.learn_one(x, y)
            out.append((name, seed, errors))
    return out


def _river(name: str) -> object:
    from river import drift
    from river.drift import binary

    return {"adwin": drift.ADWIN(), "page_hinkley": drift.PageHinkley(), "ddm": binary.DDM(), "eddm": binary.EDDM(), "kswin": drift.KSWIN(seed=0)}[name]


def detection(seeds: int, n: int = 20_000, position: int = 10_000, warmup: int = 1_000) -> None:
    from mloop.monitoring.drift import DETECTORS, detector

    console.print(f"3. detection: generating {3 * seeds} streams of {n:,} samples (drift centred at {position:,}, width {WIDTH}) …")
    streams = _streams(seeds, n, position)
    start = position - WIDTH  # the new concept's share is ~2 % here: the drift has begun
    t = Table(
        title=f"3. detection delay (from sample {start:,}, where the drift begins) and false alarms "
        f"(after a {warmup:,}-sample warm-up, before it); {3 * seeds} streams, Hoeffding tree 0/1 errors"
    )
    for col in ("detector", "implementation", "mean delay (samples)", "missed", "false alarms / 100k"):
        t.add_column(col)
    for name in DETECTORS:
        for label in ("mloop (one-sided)", "River (as is)"):
            delays, missed, false_alarms = [], 0, 0
            for _, _, errors in streams:
                watcher = detector(name) if label.startswith("mloop") else _river(name)
                first_after = None
                for i, e in enumerate(errors):
                    if label.startswith("mloop"):
                        fired = watcher.update(e)  # type: ignore[attr-defined]
                    else:
                        watcher.update(bool(e) if name in ("ddm", "eddm") else e)  # type: ignore[attr-defined]
                        fired = watcher.drift_detected  # type: ignore[attr-defined]
                    if fired and warmup <= i < start:
                        false_alarms += 1
                    if fired and i >= start and first_after is None:
                        first_after = i - start
                if first_after is None:
                    missed += 1
                else:
                    delays.append(first_after)
            rate = false_alarms / (len(streams) * (start - warmup)) * 100_000
            t.add_row(name, label, f"{np.mean(delays):.0f}" if delays else "—", f"{missed}/{len(streams)}", f"{rate:.1f}")
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--window-rows", type=int, default=1_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", choices=["speed", "calibration", "detection"])
    args = parser.parse_args()
    if args.only in (None, "speed", "calibration") and not Path(EVIDENTLY).exists():
        raise SystemExit(f"No Evidently venv at {EVIDENTLY}: run `make bench` (it creates one) or set EVIDENTLY_PYTHON.")
    if args.only in (None, "speed"):
        speed(args.rows)
    if args.only in (None, "calibration"):
        calibration(args.windows, args.window_rows)
    if args.only in (None, "detection"):
        detection(args.seeds)


if __name__ == "__main__":
    main()
