"""Tuning (issue 13): trials per minute of one study — a gradient-boosted model of mloop's default recipe
(``mloop.training:tabular``) on January's flights (26,398 rows, 15 features), 3-fold CV AUC, TPE over the learning
rate, leaf count and leaf size, no pruning — run as ``mloop run`` with 1 worker, 2 local worker processes and 2 Ray
tasks (``--ray auto``), and, as the peer, the same search through Ray Tune with its ``OptunaSearch`` (2 concurrent
trials; ray#46965 reports Optuna through Ray Tune several times slower than without it). Each a whole process, a
fresh workspace, ``OMP_NUM_THREADS=1``; beside the process time, the search's own span (mloop: first trial start to
last trial end in the study's journal; Ray Tune: ``Tuner.fit``).

    python benchmarks/tuning.py [--trials 24]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=150)
MLOOP = Path(sys.executable).with_name("mloop")
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}
SPACE = {"learning_rate": (0.03, 0.3), "max_leaf_nodes": (8, 63), "min_samples_leaf": (10, 100)}

PIPELINE = """name: tuning
steps:
  - name: data
    ingest: {path: flights.parquet}
  - name: search
    tune:
      input: data
      target: late
      params: {max_iter: 100}
      space:
        learning_rate: {low: 0.03, high: 0.3, log: true}
        max_leaf_nodes: {low: 8, high: 63, type: int}
        min_samples_leaf: {low: 10, high: 100, type: int}
      folds: 3
      trials: TRIALS
      jobs: JOBS
      pruner: none
"""

# The peer: the same objective (3 stratified folds, seed 0, the same recipe and space) through Ray Tune + OptunaSearch.
RAY_TUNE = """
import json, sys, tempfile, time
started = time.perf_counter()
import numpy as np, pandas as pd, ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from mloop.training import tabular

path, trials = sys.argv[1], int(sys.argv[2])
frame = pd.read_parquet(path)

def objective(config, frame):
    y = frame["late"]
    values = []
    for fit, check in StratifiedKFold(3, shuffle=True, random_state=0).split(frame, y):
        model = tabular(frame.iloc[fit], "late", max_iter=100, **config)
        held = frame.iloc[check]
        values.append(roc_auc_score(held["late"], model.predict_proba(held.drop(columns=["late"]))[:, 1]))
    tune.report({"auc": float(np.mean(values))})

ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
space = {"learning_rate": tune.loguniform(0.03, 0.3), "max_leaf_nodes": tune.randint(8, 64), "min_samples_leaf": tune.randint(10, 101)}
tuner = tune.Tuner(tune.with_parameters(objective, frame=frame), param_space=space,
                   tune_config=tune.TuneConfig(search_alg=OptunaSearch(metric="auc", mode="max", seed=0), num_samples=trials,
                                               max_concurrent_trials=2),
                   run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0))
fit_started = time.perf_counter()
results = tuner.fit()
search = time.perf_counter() - fit_started
best = results.get_best_result(metric="auc", mode="max")
print(json.dumps({"search": search, "done": sum(r.error is None for r in results), "best": best.metrics["auc"]}))
"""


def _data(folder: Path) -> int:
    """January's flights without the time columns (what the flights example trains on), as Parquet; its row count."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "flights"))
    from steps import first_months, without_time

    from mloop.demo._flights import load_flights

    frame = without_time(first_months(load_flights(), 1))
    frame.to_parquet(folder / "flights.parquet", index=False)
    return len(frame)


def _span(workspace: Path) -> tuple[float, int, float]:
    """From the study's journal: first trial start to last trial end (s), completed trials, the best value."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    [journal] = list((workspace / "pipelines" / "studies").glob("*.journal"))
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)  # type: ignore[type-var, operator]
    return span.total_seconds(), len(done), float(study.best_value)


def _mloop(folder: Path, trials: int, jobs: int, *extra: str) -> tuple[float, float, int, float]:
    """``mloop run`` of the study in a fresh workspace: (process seconds, search seconds, trials done, best AUC)."""
    workspace = folder / f"ws-{jobs}-{'ray' if extra else 'local'}"
    (folder / "tune.yaml").write_text(PIPELINE.replace("TRIALS", str(trials)).replace("JOBS", str(jobs)))
    subprocess.run([str(MLOOP), "init", str(workspace)], capture_output=True, check=True)
    started = time.perf_counter()
    done = subprocess.run([str(MLOOP), "--workspace", str(workspace), "run", str(folder / "tune.yaml"), *extra], capture_output=True,
                          text=True, env=ENV, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0 or not re.search(r"search\s+ran", done.stdout):
        raise SystemExit(f"mloop run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return (took, *_span(workspace))


def _ray_tune(folder: Path, trials: int) -> tuple[float, float, int, float] | str:
    """The peer as a whole process, or why it could not run."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RAY_TUNE, str(folder / "flights.parquet"), str(trials)], capture_output=True, text=True,
                          env=ENV, check=False)
    took = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return f"did not run: {(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1][:200]}"
    result = json.loads(lines[-1])
    return took, float(result["search"]), int(result["done"]), float(result["best"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mloop-bench-tuning-"))
    rows = _data(folder)
    console.print(f"study: {args.trials} trials, 3-fold CV AUC of mloop.training:tabular (max_iter 100) on {rows:,} flights, "
                  f"TPE, no pruning; {os.cpu_count()} cores")
    results: dict[str, tuple[float, float, int, float] | str] = {
        "mloop run, 1 worker": _mloop(folder, args.trials, 1),
        "mloop run, 2 local workers": _mloop(folder, args.trials, 2),
        "mloop run --ray auto, 2 Ray tasks": _mloop(folder, args.trials, 2, "--ray", "auto"),
        "Ray Tune + OptunaSearch, 2 concurrent": _ray_tune(folder, args.trials),
    }
    t = Table(title="One study, each a whole process (trials per minute: of the process / of the search alone)")
    for col in ("run", "process s", "search s", "trials", "best AUC", "trials/min (process)", "trials/min (search)"):
        t.add_column(col)
    for name, result in results.items():
        if isinstance(result, str):
            t.add_row(name, result, "", "", "", "", "")
            continue
        took, search, done, best = result
        t.add_row(name, f"{took:.1f}", f"{search:.1f}", str(done), f"{best:.4f}", f"{60 * done / took:.1f}", f"{60 * done / search:.1f}")
    console.print(t)

    def rate(name: str, index: int) -> float | None:
        result = results[name]
        return None if isinstance(result, str) else 60 * result[2] / result[index]

    for label, a, b in (("2 local workers vs 1", "mloop run, 2 local workers", "mloop run, 1 worker"),
                        ("mloop on Ray vs 2 local workers", "mloop run --ray auto, 2 Ray tasks", "mloop run, 2 local workers"),
                        ("mloop on Ray vs Ray Tune + OptunaSearch", "mloop run --ray auto, 2 Ray tasks", "Ray Tune + OptunaSearch, 2 concurrent")):
        ratios = [(x / y if x and y else None) for x, y in ((rate(a, 0), rate(b, 0)), (rate(a, 1), rate(b, 1)))]
        shown = " / ".join("n/a" if r is None else f"{r:.2f}×" for r in ratios)
        console.print(f"{label}: {shown} trials per minute (process / search)")


if __name__ == "__main__":
    main()
