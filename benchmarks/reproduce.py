"""Pipelines (issue 13): reproduction of 10 past runs — how many match exactly. Ten runs of the two examples
(``examples/diabetes``, ``examples/flights``, copied to a scratch folder) with different parameters, and of a tuning
pipeline on the diabetes table with one trial at a time and with two in parallel, are made with ``mloop run``; each is
then reproduced with ``mloop reproduce RUN_ID`` (a whole process: a scratch workspace, every step run again) and its
verdict, the steps that differed and why are printed. MLflow, the peer, has no way to re-execute a logged run
(mlflow#2424): there is nothing to run beside it.

    python benchmarks/reproduce.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=170)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MLOOP = Path(sys.executable).with_name("mloop")
ENV = {**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1"}

TUNE = """name: diabetes-tuned
steps:
  - name: data
    ingest: {callable: "steps:diabetes"}
  - name: split
    split: {input: data, method: random, test: 0.25, seed: 0}
  - name: model
    tune:
      input: split.train
      target: progression
      callable: "sklearn.ensemble:HistGradientBoostingRegressor"
      params: {random_state: 0}
      space:
        learning_rate: {low: 0.01, high: 0.3, log: true}
        max_leaf_nodes: {low: 4, high: 32, type: int}
      metric: r2
      trials: 12
      jobs: JOBS
  - name: check
    evaluate: {model: model, input: split.test, target: progression, metrics: [r2, rmse]}
"""

RUNS: list[tuple[str, str, list[str]]] = [
    ("diabetes", "ridge alpha 10 (as shipped)", []),
    ("diabetes", "ridge alpha 1", ["model.params.alpha=1.0"]),
    ("diabetes", "ridge alpha 30, L1 strength 2", ["model.params.alpha=30.0", "terms.select.strength=2.0"]),
    ("diabetes", "mutual information, k 12", ["terms.select={method: mutual_info, k: 12}"]),
    ("flights", "as shipped", []),
    ("flights", "max_iter 100", ["model.params.max_iter=100"]),
    ("flights", "learning_rate 0.05", ["model.params.learning_rate=0.05"]),
    ("tuned-1", "12 TPE trials, 1 at a time", []),
    ("tuned-2", "12 TPE trials, 2 in parallel", []),
    ("tuned-1", "12 TPE trials, seed 1", ["model.seed=1"]),
]


def _mloop(*args: str, cwd: Path | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run([str(MLOOP), *args], capture_output=True, text=True, env=ENV, check=False, cwd=cwd)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="mloop-bench-reproduce-"))
    for name in ("diabetes", "flights"):
        shutil.copytree(EXAMPLES / name, folder / name)
    for jobs in (1, 2):
        shutil.copytree(EXAMPLES / "diabetes", folder / f"tuned-{jobs}")
        (folder / f"tuned-{jobs}" / "pipeline.yaml").write_text(TUNE.replace("JOBS", str(jobs)))
    subprocess.run([str(MLOOP), "init", str(folder / "ws")], capture_output=True, check=True)
    rows = []
    for i, (example, label, overrides) in enumerate(RUNS, 1):
        sets = [arg for o in overrides for arg in ("--set", o)]
        took, code, out = _mloop("--workspace", str(folder / "ws"), "run", str(folder / example / "pipeline.yaml"), "--no-cache", *sets)
        found = re.search(r"run ([0-9a-f]{32})\s*$", out)
        if found is None:
            raise SystemExit(f"mloop run failed ({code}):\n{out[-3000:]}")
        run_id = found.group(1)
        again, code, out = _mloop("--workspace", str(folder / "ws"), "reproduce", run_id)
        verdict = re.search(r"verdict: (exact|within tolerance|differs)", out)
        differing = sorted(set(re.findall(r"│ (\w+)\s+│[^\n]*differs[^\n]*│ ([^│]*?)\s*│", out)))
        why = "; ".join(f"{step}: {reason.split(':')[0]}" for step, reason in differing if reason) or "—"
        rows.append((i, example, label, took, again, verdict.group(1) if verdict else f"error ({code})", why))
        console.print(f"{i:>2} {example} {label}: {rows[-1][5]} ({again:.1f} s)")
    table = Table(title="mloop reproduce RUN_ID on 10 past runs (whole processes, seconds)")
    for col in ("#", "pipeline", "run", "mloop run", "mloop reproduce", "verdict", "steps that differed: why"):
        table.add_column(col)
    for i, example, label, took, again, verdict, why in rows:
        table.add_row(str(i), example, label, f"{took:.1f}", f"{again:.1f}", verdict, why)
    console.print(table)
    exact = sum(r[5] == "exact" for r in rows)
    console.print(f"{exact} of {len(rows)} runs reproduced exactly (every metric the same float, every table and model the same bytes); "
                  f"{sum(r[5] == 'within tolerance' for r in rows)} within tolerance; {sum(r[5] == 'differs' for r in rows)} differ")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
