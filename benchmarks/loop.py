"""The closed loop's payoff (issue 12): four retraining policies on the flights replay, March to December, side by
side in one run, with the same recipe (the HistGradientBoosting pipeline, fixed parameters) and labels known at the
end of each month.

- static: v1 (trained on January–February) forever;
- monthly-last: retrain at the end of every month on that month alone, promote without a gate;
- monthly-recent: retrain every month on the newest 120,000 labelled rows, promote without a gate;
- mloop, two triggers: a monthly drift monitor's alarm (``DatasetDrift`` with the monitors' defaults, against the
  champion's training data), or a drop of the champion's own AUC below its first month's (the controller's
  performance trigger, ``auc_drop``: one-sided z, α 5 %, DeLong variances, a month a block). Then ``admit``
  applies the guards, a challenger is trained by the recipe on the newest labelled rows minus a held-out newest
  share, and ``judge`` (DeLong's paired test, α 5 %) lets the recipe replace the champion only if the challenger is
  shown better; what goes live is the recipe refit on all those rows. The decision functions are the controller's
  own; the rollout is immediate here (the canary's error rates are measured in ``rollout_stats.py``).

Each month is scored by the model in force when it began; the table prints each policy's mean monthly AUC, retrains
and promotions, and for mloop each attempt with its statistic, and the rows and seconds from the alarm's window to
the new champion.

First, by simulation, the gate's and the performance trigger's error rates beside the naive rules they replace.

    python benchmarks/loop.py [--sample 1.0] [--holdout 0.15] [--cooldown-months 1] [--no-refit] [--only decisions|replay]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from mloop.automation import GateSpec, admit, judge
from mloop.automation._gate import auc_drop
from mloop.automation._loop_policy import Guards
from mloop.demo._flights import SPEC, load_flights
from mloop.monitoring.drift import DatasetDrift
from mloop.store import AttemptRow
from mloop.training import auc, fit

console = Console(width=150)
RECENT_ROWS = 120_000
MONTH = 30 * 86_400.0


@dataclass
class Policy:
    name: str
    model: Any
    retrains: int = 0
    promotions: int = 0
    fits: int = 0  # models trained: a retrain, plus the refit of a challenger that passed the gate
    aucs: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fit(frame: pd.DataFrame, seed: int) -> Any:
    return fit(frame, SPEC, {}, seed)


def _score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(frame[SPEC.features])[:, 1])


class LoopRun:
    """mloop's decisions month by month under one trigger, with the controller's guards and gate."""

    def __init__(self, trigger: str, model: Any, initial: pd.DataFrame, args: argparse.Namespace) -> None:
        self.trigger, self.args = trigger, args
        self.policy = Policy(f"mloop ({'drift alarm' if trigger == 'drift' else 'AUC drop'})", model)
        self.reference = DatasetDrift().fit(initial[SPEC.features])
        self.champion_reference: tuple[np.ndarray, np.ndarray] | None = None
        self.guards = Guards(cooldown_seconds=args.cooldown_months * MONTH, max_per_day=1)
        self.gate = GateSpec(metric="auc", min_effect=0.0, alpha=0.05)
        self.attempts: list[AttemptRow] = []
        self.rows: list[tuple[str, ...]] = []

    def _evidence(self, month: int, rows: pd.DataFrame) -> str | None:
        """The trigger's evidence when it fires this month, else None (the month's line is recorded)."""
        if self.trigger == "drift":
            report = self.reference.score(rows[SPEC.features])
            evidence = f"{report.share_drifted:.0%} of features drifted"
            if not report.drift:
                self.rows.append((f"{month:02d}", evidence, "no alarm", "", "", ""))
                return None
            return evidence
        current = (rows[SPEC.target].to_numpy(float), _score(self.policy.model, rows))
        if self.champion_reference is None:
            self.champion_reference = current
            self.rows.append((f"{month:02d}", f"AUC {self.policy.aucs[-1]:.3f}", "the champion's reference month", "", "", ""))
            return None
        drop = auc_drop(self.champion_reference, current, alpha=0.05)  # the controller's performance trigger, a month a block
        evidence = f"AUC {drop.current:.3f} vs {drop.reference:.3f}, z {drop.z:.2f}"
        if not drop.dropped:
            self.rows.append((f"{month:02d}", evidence, "no drop", "", "", ""))
            return None
        return evidence

    def end_of_month(self, month: int, rows: pd.DataFrame, recent: pd.DataFrame) -> None:
        evidence = self._evidence(month, rows)
        if evidence is None:
            return
        now = month * MONTH
        admission = admit(self.guards, self.attempts, now)
        if not admission.admitted:
            self.rows.append((f"{month:02d}", evidence, "held back", admission.reason, "", ""))
            return
        t0 = time.perf_counter()
        n_holdout = math.ceil(len(recent) * self.args.holdout)
        train, holdout = recent.iloc[:-n_holdout], recent.iloc[-n_holdout:]
        challenger = _fit(train, self.args.seed)
        p = self.policy
        p.retrains, p.fits = p.retrains + 1, p.fits + 1
        result = judge(self.gate, holdout[SPEC.target].to_numpy(float), _score(p.model, holdout), _score(challenger, holdout))
        verdict = "promoted" if result.passed else "rejected_by_gate"
        self.attempts.append(AttemptRow(len(self.attempts) + 1, "flights", 1, self.trigger, f"m{month}", {}, now, "done", {}, verdict, False, now, now))
        if result.passed:
            # The gate judged the recipe on rows it did not see; what goes live is the same recipe refit on all of them.
            p.model = _fit(recent, self.args.seed) if self.args.refit else challenger
            p.fits += int(self.args.refit)
            p.promotions += 1
            self.champion_reference = None  # the new champion's first month will be its reference
            self.reference = DatasetDrift().fit(recent[SPEC.features])  # and its training data the drift reference
        self.rows.append((f"{month:02d}", evidence, verdict.replace("_", " "),
                          f"AUC {result.challenger:.3f} vs {result.champion:.3f}, lower bound {result.lower:+.4f}, z {result.z:.2f}",
                          f"{len(rows):,}" if result.passed else "", f"{time.perf_counter() - t0:.1f}"))


def _pair(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two correlated scorers on the same rows; the second's signal is ``lift`` stronger."""
    y = (rng.random(n) < 0.25).astype(float)
    shared = rng.normal(size=n)
    return y, y * 0.8 + shared + rng.normal(scale=0.7, size=n), y * (0.8 + lift) + shared + rng.normal(scale=0.7, size=n)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.15, help="mloop: the newest share of the recent rows held out for the gate")
    parser.add_argument("--cooldown-months", type=float, default=1.0, help="mloop: months between two attempts at least")
    parser.add_argument("--no-refit", dest="refit", action="store_false", help="mloop: promote the gated model itself, not its refit on all rows")
    parser.add_argument("--only", choices=("decisions", "replay"), help="only the simulated error rates, or only the replay")
    args = parser.parse_args()
    if args.only != "replay":
        decision_error_rates(seed=args.seed)
    if args.only == "decisions":
        return
    data = load_flights(args.sample, args.seed)
    initial = data[data["month"] < 3].reset_index(drop=True)
    started = time.perf_counter()
    v1 = _fit(initial, args.seed)
    runs = [LoopRun(trigger, v1, initial, args) for trigger in ("drift", "performance")]
    policies = {name: Policy(name, v1) for name in ("static", "monthly-last", "monthly-recent")} | {r.policy.name: r.policy for r in runs}
    labelled = initial.copy()  # every row whose label is known: the initial data, then each replayed month
    replayed = 0
    for month in range(3, 13):
        rows = data[data["month"] == month].reset_index(drop=True)
        for p in policies.values():
            p.aucs.append(auc(rows[SPEC.target], _score(p.model, rows)))
        replayed += len(rows)
        labelled = pd.concat([labelled, rows], ignore_index=True)  # the month's labels are in at its end
        recent = labelled.tail(RECENT_ROWS)
        if month == 12:
            break  # nothing is served after December
        last = policies["monthly-last"]
        last.model, last.retrains, last.fits, last.promotions = _fit(rows, args.seed), last.retrains + 1, last.fits + 1, last.promotions + 1
        blind = policies["monthly-recent"]
        blind.model, blind.retrains, blind.fits, blind.promotions = _fit(recent, args.seed), blind.retrains + 1, blind.fits + 1, blind.promotions + 1
        for run in runs:
            run.end_of_month(month, rows, recent)
    console.print(f"flights 2013, sample {args.sample:g}: {len(initial):,} rows to train v1, {replayed:,} replayed (March–December); "
                  f"{time.perf_counter() - started:.0f} s in all")
    t = Table(title="Retraining policies, the same recipe (mean of the ten monthly AUCs, each month scored by the model in force)")
    for col in ("policy", "mean monthly AUC", "retrains", "model fits", "promotions", "vs best blind"):
        t.add_column(col, justify="right")
    best_blind = max(np.mean(policies[n].aucs) for n in ("monthly-last", "monthly-recent"))
    for p in policies.values():
        t.add_row(p.name, f"{np.mean(p.aucs):.4f}", str(p.retrains), str(p.fits), str(p.promotions), f"{np.mean(p.aucs) - best_blind:+.4f}")
    console.print(t)
    for run in runs:
        t = Table(title=f"{run.policy.name}: decisions (cooldown {args.cooldown_months:g} month, holdout {args.holdout:.0%} of the newest "
                        f"{RECENT_ROWS:,} rows, gate: DeLong, α {run.gate.alpha:g})")
        for col in ("month", "trigger evidence", "decision", "gate statistic", "rows trigger → champion", "train + gate (s)"):
            t.add_column(col)
        for row in run.rows:
            t.add_row(*row)
        console.print(t)
    monthly = Table(title="AUC by month")
    monthly.add_column("month")
    for p in policies.values():
        monthly.add_column(p.name, justify="right")
    for i, month in enumerate(range(3, 13)):
        monthly.add_row(f"{month:02d}", *(f"{p.aucs[i]:.3f}" for p in policies.values()))
    console.print(monthly)
    for run in runs:
        p = run.policy
        met = np.mean(p.aucs) >= best_blind - 0.005 and p.retrains < policies["monthly-recent"].retrains
        console.print(f"{p.name}: target (mean AUC within 0.005 of the best blind policy, fewer retrains than the monthly ones) "
                      f"{'met' if met else 'NOT met'}: {np.mean(p.aucs) - best_blind:+.4f}, {p.retrains} retrains against "
                      f"{policies['monthly-recent'].retrains}")


if __name__ == "__main__":
    main()
