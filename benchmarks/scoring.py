"""Batch scoring (issue 13): ``mloop score`` against ``mlflow models predict --env-manager local`` on the same
registered model and the same file, each a whole process; rows per second and peak memory (the process tree's
maximum resident set, from ``getrusage``), with the ratio. ``mloop score`` runs in chunks, so its memory should stay
flat as the file grows; the peer reads the whole file.

    python benchmarks/scoring.py [--rows 10000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mloop.workspace import Workspace

console = Console(width=150)
BIN = Path(sys.executable).parent


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak resident MiB of ``command`` run to its end (its own child processes included)."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, env=env, check=False) \
        if Path("/usr/bin/time").exists() else subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} … failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    lines = [line for line in done.stderr.strip().splitlines() if line.strip().isdigit()]
    peak = int(lines[-1]) / 1024 if lines else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return took, peak


def _table(rows: int, path: Path) -> None:
    """``rows`` toy rows (three numbers, one category) written to Parquet and CSV in slices (bounded memory)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    with open(path.with_suffix(".csv"), "w") as csv:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            rng = np.random.default_rng(start)
            frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "x3": rng.normal(size=n),
                                  "color": rng.choice(["red", "green", "blue"], size=n).astype(object)})
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            frame.to_csv(csv, header=start == 0, index=False)
    assert writer is not None
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mloop-bench-score-"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import deploy, train_and_register

    ws = Workspace.init(folder / "ws")
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    data = folder / "rows.parquet"
    console.print(f"writing {args.rows:,} rows …")
    _table(args.rows, data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": ws.tracking_uri}
    results = {}
    mloop = [str(BIN / "mloop"), "--workspace", str(ws.root), "score", "toy@champion", str(data), "-o", str(folder / "mloop.parquet")]
    results["mloop score (1 process)"] = _timed(mloop, env)
    results[f"mloop score (--workers {args.workers})"] = _timed([*mloop, "--workers", str(args.workers)], env)
    mlflow = shutil.which("mlflow", path=str(BIN)) or "mlflow"
    results["mlflow models predict (CSV in, local env)"] = _timed(
        [mlflow, "models", "predict", "-m", "models:/toy/1", "-i", str(data.with_suffix(".csv")), "-t", "csv", "-o",
         str(folder / "mlflow.json"), "--env-manager", "local"], env)
    t = Table(title=f"Scoring {args.rows:,} rows with the same registered model, whole processes")
    for col in ("scorer", "seconds", "rows/s", "peak MiB (its main process)", "speed vs mlflow"):
        t.add_column(col, justify="right")
    peer = results["mlflow models predict (CSV in, local env)"][0]
    for name, (seconds, peak) in results.items():
        t.add_row(name, f"{seconds:.1f}", f"{args.rows / seconds:,.0f}", f"{peak:,.0f}", f"{peer / seconds:.1f}×")
    console.print(t)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
