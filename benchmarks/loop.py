"""The closed loop's payoff (issue 12): retraining policies on the flights replay, March to December, side by side in
one run, all starting from the same v1 with the same recipe (the HistGradientBoosting pipeline and the Optuna
parameters ``mloop demo`` found for v1):

- static: v1 (trained on January–February) forever;
- monthly-last: retrain at the end of every month on that month alone, promote without a gate;
- monthly-recent: retrain every month on the newest 120,000 labelled rows, promote without a gate;
- mloop: ``mloop demo`` itself, through the server: its controller retrains when the champion's own AUC falls, its
  gate (DeLong) must show the challenger better on held-out rows, and its rollout driver runs the canary; each month
  is scored as it was served (the champion, and a candidate's share while a canary runs). Labels arrive six requests
  after their predictions; the blind policies get each month's labels at its end.
- for comparison, in-process: the same gate and guards behind the monitors' data-drift alarm as the trigger (the
  controller's own functions, the rollout immediate) — the reason the demo's policy does not retrain on it.

Each month is scored by the model in force when it began; the table prints each policy's mean monthly AUC, retrains,
model fits and promotions, then each of the server's attempts with its statistics and the rows and seconds from the
evidence that triggered it to the new champion serving.

First, by simulation, the error rates of the gate, the performance trigger, the estimated-performance trigger (CBPE)
and the online update's gate, beside the naive rules they replace.

    python benchmarks/loop.py [--sample 1.0] [--trials 8] [--only decisions|replay]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from mloop.automation import GateSpec, admit, judge
from mloop.automation._cbpe import Calibration, estimate, estimated_drop
from mloop.automation._gate import auc_drop
from mloop.automation._loop_policy import Guards, OnlineSpec
from mloop.demo import DemoConfig, DemoResult, run_demo
from mloop.demo._flights import SPEC, load_flights
from mloop.demo._records import print_attempts
from mloop.monitoring.drift import DatasetDrift
from mloop.store import AttemptRow
from mloop.training import auc, fit
from mloop.workspace import Workspace

console = Console(width=150)
RECENT_ROWS = 120_000
MONTH = 30 * 86_400.0


@dataclass
class Policy:
    name: str
    model: Any
    retrains: int = 0
    promotions: int = 0
    rollbacks: int = 0
    fits: int = 0  # models trained: a retrain, plus the refit of a challenger that passed the gate
    aucs: list[float] = field(default_factory=list)


class Recipe:
    """The recipe the demo's policy recorded for v1: the pipeline with v1's Optuna parameters and seed."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.seed = int(params.get("seed", 0))
        self.params = {k: v for k, v in params.items() if k not in ("seed", "numeric", "categorical")}

    def __call__(self, frame: pd.DataFrame) -> Any:
        return fit(frame, SPEC, self.params, self.seed)


def _score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(frame[SPEC.features])[:, 1]) if hasattr(model, "predict_proba") else np.asarray(
        model.score(frame[SPEC.features]))


class DriftLoop:
    """The controller's guards and gate behind the monitors' data-drift alarm (a month a window, against the
    champion's training data), the rollout immediate: what retraining on data drift would do."""

    def __init__(self, model: Any, initial: pd.DataFrame, recipe: Recipe) -> None:
        self.policy = Policy("mloop, data-drift trigger (in-process)", model)
        self.recipe = recipe
        self.reference = DatasetDrift().fit(initial[SPEC.features])
        self.guards = Guards(cooldown_seconds=MONTH, max_per_day=1)
        self.gate = GateSpec(metric="auc", min_effect=0.0, alpha=0.05)
        self.attempts: list[AttemptRow] = []

    def end_of_month(self, month: int, rows: pd.DataFrame, recent: pd.DataFrame) -> None:
        if not self.reference.score(rows[SPEC.features]).drift:
            return
        now = month * MONTH
        if not admit(self.guards, self.attempts, now).admitted:
            return
        n_holdout = math.ceil(len(recent) * 0.15)
        train, holdout = recent.iloc[:-n_holdout], recent.iloc[-n_holdout:]
        challenger = self.recipe(train)
        p = self.policy
        p.retrains, p.fits = p.retrains + 1, p.fits + 1
        result = judge(self.gate, holdout[SPEC.target].to_numpy(float), _score(p.model, holdout), _score(challenger, holdout))
        verdict = "promoted" if result.passed else "rejected_by_gate"
        self.attempts.append(AttemptRow(len(self.attempts) + 1, "flights", 1, "drift", f"m{month}", {}, now, "done", {}, verdict, False, now, now))
        if result.passed:  # what goes live is the recipe refit on all the rows
            p.model, p.fits, p.promotions = self.recipe(recent), p.fits + 1, p.promotions + 1
            self.reference = DatasetDrift().fit(recent[SPEC.features])


def _pair(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated scorers on the same rows; the second's signal is ``lift`` stronger."""
    y = (rng.random(n) < 0.25).astype(float)
    shared = rng.normal(size=n)
    return y, y * 0.8 + shared + rng.normal(scale=0.7, size=n), y * (0.8 + lift) + shared + rng.normal(scale=0.7, size=n)


def _update(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a champion's scores and an online update's: the update is the champion nudged (scores close to its
    own), its signal ``lift`` stronger (negative: a batch that taught it wrong)."""
    y, champion, _ = _pair(rng, n, 0.0)
    return y, champion, champion + lift * y + rng.normal(scale=0.2, size=n)


def decision_error_rates(runs: int = 1000, rows: int = 2000, seed: int = 0) -> None:
    """The gate's and the performance trigger's error rates by simulation, beside the naive rules they replace."""
    rng = np.random.default_rng(seed)
    gate = GateSpec(metric="auc", min_effect=0.0, alpha=0.05)
    t = Table(title=f"Decisions by simulation ({runs:,} runs of {rows:,} rows each, seed {seed})")
    for col in ("decision", "situation", "mloop", "naive rule", "naive rule is"):
        t.add_column(col)
    for lift, situation in ((0.0, "challenger as good (should not pass)"), (0.15, "challenger better (should pass)")):
        passed = naive = 0
        for _ in range(runs):
            y, a, b = _pair(rng, rows, lift)
            result = judge(gate, y, a, b)
            passed += result.passed
            naive += result.challenger >= result.champion - 0.002
        t.add_row("gate", situation, f"{passed / runs:.1%} pass", f"{naive / runs:.1%} pass", "challenger AUC ≥ champion − 0.002")
    for noise, situation in ((0.0, "no change (should not fire)"), (1.0, "AUC falls (should fire)")):
        fired = naive = 0
        falls = []
        for _ in range(runs):
            y0, a0, _ = _pair(rng, rows, 0.0)
            y1, a1, _ = _pair(rng, rows, 0.0)
            drop = auc_drop((y0, a0), (y1, a1 + rng.normal(scale=noise, size=rows)), alpha=0.05)
            fired += drop.dropped
            naive += drop.current < drop.reference
            falls.append(drop.reference - drop.current)
        label = situation if noise == 0 else f"AUC falls by {np.mean(falls):.3f} on average (should fire)"
        t.add_row("performance trigger", label, f"{fired / runs:.1%} fire", f"{naive / runs:.1%} fire", "AUC below the reference's")
    console.print(t)
    adaptive_error_rates(seed=seed)


def adaptive_error_rates(runs: int = 300, rows: int = 2000, seed: int = 0) -> None:
    """The estimated-performance trigger (CBPE, no labels) and the online update's gate, beside the naive rules."""
    rng = np.random.default_rng(seed + 1)
    t = Table(title=f"Label-free and online decisions by simulation ({runs:,} runs of {rows:,} rows each, seed {seed})")
    for col in ("decision", "situation", "mloop", "naive rule", "naive rule is"):
        t.add_column(col)

    def block(spread: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(scale=spread, size=rows)
        return (rng.random(rows) < 1 / (1 + np.exp(-1.5 * x))).astype(float), x

    for spread, situation in ((1.0, "inputs as before (should not fire)"), (0.95, ""), (0.85, "")):
        fired = naive = 0
        falls = []
        for run in range(runs):
            labels, scores = block(1.0)
            calibration = Calibration.fit(labels, scores)
            reference = estimate(calibration, scores, seed=run)
            later_labels, later = block(spread)
            drop = estimated_drop(reference, estimate(calibration, later, seed=run + 1), rows)
            fired += drop.dropped
            naive += drop.current < drop.reference
            falls.append(auc(labels, scores) - auc(later_labels, later))
        label = situation or f"inputs bunch up, the AUC falls by {np.mean(falls):.3f} (should fire)"
        t.add_row("estimated trigger (CBPE)", label, f"{fired / runs:.1%} fire", f"{naive / runs:.1%} fire", "estimate below the reference's")
    gate = OnlineSpec().gate
    for lift, situation in ((0.0, "update as good (should pass)"), (0.1, "update better (should pass)"),
                            (-0.3, "a bad batch: update worse (should not pass)")):
        passed = sum(judge(gate, *_update(rng, rows, lift)).passed for _ in range(runs))
        t.add_row("online update gate", situation, f"{passed / runs:.1%} pass", "100.0% pass", "every update goes live")
    console.print(t)


def through_server(args: argparse.Namespace) -> tuple[Workspace, DemoResult]:
    """``mloop demo`` in a fresh workspace: every decision taken by the server's controller and rollout driver."""
    folder = tempfile.mkdtemp(prefix="mloop-bench-loop-")
    console.print(f"mloop demo in {folder} (sample {args.sample:g}, {args.trials} Optuna trials) …")
    result = run_demo(folder, DemoConfig(sample=args.sample, trials=args.trials, seed=args.seed), Console(quiet=True))
    return Workspace.open(folder), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=8, help="Optuna trials for v1 (as mloop demo)")
    parser.add_argument("--only", choices=("decisions", "replay"), help="only the simulated error rates, or only the replay")
    args = parser.parse_args()
    if args.only != "replay":
        decision_error_rates(seed=args.seed)
    if args.only == "decisions":
        return
    started = time.perf_counter()
    ws, demo = through_server(args)
    served = time.perf_counter() - started
    policy_row = ws.store.loop.policy("flights")
    assert policy_row is not None
    recipe = Recipe(policy_row.document["recipe"]["params"])
    v1 = ws.registry.load("flights", 1)
    data = load_flights(args.sample, args.seed)
    initial = data[data["month"] < 3].reset_index(drop=True)
    drift = DriftLoop(v1, initial, recipe)
    policies = {name: Policy(name, v1) for name in ("static", "monthly-last", "monthly-recent")}
    results = demo.attempts
    mloop = Policy("mloop demo, through the server", v1, retrains=len(results), promotions=sum(a["result"] == "promoted" for a in results),
                   rollbacks=sum(a["result"] == "rolled_back" for a in results), aucs=[w.auc_served for w in demo.windows],
                   fits=sum(1 for a in results for s in a["steps"] if s["name"] == "train" and s["outcome"] == "ok")
                   + sum(1 for a in results for s in a["steps"] if s["name"] == "gate" and s["detail"].get("refit")))
    everyone = [*policies.values(), mloop, drift.policy]
    labelled = initial.copy()  # every row whose label is known: the initial data, then each replayed month
    replayed = 0
    for month in range(3, 13):
        rows = data[data["month"] == month].reset_index(drop=True)
        for p in [*policies.values(), drift.policy]:
            p.aucs.append(auc(rows[SPEC.target], _score(p.model, rows)))
        replayed += len(rows)
        labelled = pd.concat([labelled, rows], ignore_index=True)  # the month's labels are in at its end
        recent = labelled.tail(RECENT_ROWS)
        if month == 12:
            break  # nothing is served after December
        last = policies["monthly-last"]
        last.model, last.retrains, last.fits, last.promotions = recipe(rows), last.retrains + 1, last.fits + 1, last.promotions + 1
        blind = policies["monthly-recent"]
        blind.model, blind.retrains, blind.fits, blind.promotions = recipe(recent), blind.retrains + 1, blind.fits + 1, blind.promotions + 1
        drift.end_of_month(month, rows, recent)
    console.print(f"flights 2013, sample {args.sample:g}: {len(initial):,} rows to train v1, {replayed:,} replayed (March–December); "
                  f"the demo took {served:.0f} s, everything {time.perf_counter() - started:.0f} s")
    t = Table(title="Retraining policies from the same v1 with the same recipe (mean of the ten monthly AUCs, each month scored as served)")
    for col in ("policy", "mean monthly AUC", "retrains", "model fits", "promotions", "rollbacks", "vs best blind"):
        t.add_column(col, justify="right")
    best_blind = max(np.mean(policies[n].aucs) for n in ("monthly-last", "monthly-recent"))
    for p in everyone:
        t.add_row(p.name, f"{np.mean(p.aucs):.4f}", str(p.retrains), str(p.fits), str(p.promotions), str(p.rollbacks),
                  f"{np.mean(p.aucs) - best_blind:+.4f}")
    console.print(t)
    print_attempts(console, demo, "The server's attempts (mloop loop history flights)")
    monthly = Table(title="AUC by month")
    monthly.add_column("month")
    for p in everyone:
        monthly.add_column(p.name, justify="right")
    for i, month in enumerate(range(3, 13)):
        monthly.add_row(f"{month:02d}", *(f"{p.aucs[i]:.3f}" for p in everyone))
    console.print(monthly)
    for p in (mloop, drift.policy):
        met = np.mean(p.aucs) >= best_blind - 0.005 and p.retrains < policies["monthly-recent"].retrains
        console.print(f"{p.name}: target (mean AUC within 0.005 of the best blind policy, fewer retrains than the monthly ones) "
                      f"{'met' if met else 'NOT met'}: {np.mean(p.aucs) - best_blind:+.4f}, {p.retrains} retrains against "
                      f"{policies['monthly-recent'].retrains}")


if __name__ == "__main__":
    main()
