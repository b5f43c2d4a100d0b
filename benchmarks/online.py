"""The adaptive response on the flights replay (issue 12): a model that learns online, updated with each 5,000 labels
as they arrive, against the same model left alone — and, beside them, the demo's gradient-boosted v1 left alone.

Each update is decided as the loop controller decides it (its own functions, in-process: ``mloop.training.updated``
learns the older 80 % of the new labels, ``judge`` with the policy's online gate compares the copy with the
champion on the newest 20 %, and a copy that passes learns those too). Labels arrive in prediction order, each
month scored by the model in force as it is served (an update goes live as soon as it passes). Beside the gated
updates, the naive rule: every update goes live. Printed: the mean monthly AUC of each, updates tried and promoted,
and the seconds spent updating.

    python benchmarks/online.py [--sample 1.0] [--rows 5000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from mloop.automation import judge
from mloop.automation._loop_policy import OnlineSpec
from mloop.demo._flights import SPEC, load_flights
from mloop.training import auc, fit, online, river, updated

console = Console(width=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=5000, help="labels per update (online.rows)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_flights(args.sample, args.seed)
    features, target = SPEC.features, SPEC.target
    initial = data[data["month"] < 3].reset_index(drop=True)
    replay = data[data["month"] >= 3].reset_index(drop=True)
    spec = OnlineSpec(rows=args.rows)
    models = {
        "OnlineClassifier (SGD), updated": online(initial[[*features, target]], target, seed=args.seed),
        "River logistic, updated": river(initial[[*features, target]], target),
    }
    static = {f"{name.split(',')[0]}, left alone": model for name, model in models.items()}
    models["OnlineClassifier (SGD), updated without a gate"] = models["OnlineClassifier (SGD), updated"]  # the naive rule
    hgb = fit(initial, SPEC, {}, args.seed)
    console.print(f"flights 2013, sample {args.sample:g}: {len(initial):,} rows to train, {len(replay):,} replayed March–December, "
                  f"an update every {args.rows:,} labels")
    scores: dict[str, list[np.ndarray]] = {name: [] for name in [*models, *static, "HistGradientBoosting v1, left alone"]}
    tried = dict.fromkeys(models, 0)
    promoted = dict.fromkeys(models, 0)
    spent = dict.fromkeys(models, 0.0)
    n_holdout = max(1, round(args.rows * spec.holdout))
    for start in range(0, len(replay), args.rows):
        batch = replay.iloc[start : start + args.rows]
        for name, model in [*models.items(), *static.items(), ("HistGradientBoosting v1, left alone", hgb)]:
            scores[name].append(model.predict_proba(batch[features])[:, 1])  # served before its labels arrive
        if len(batch) < args.rows:
            break
        learn, holdout = batch.iloc[:-n_holdout], batch.iloc[-n_holdout:]
        for name, champion in models.items():
            began = time.perf_counter()
            tried[name] += 1
            copy = updated(champion, learn[features], learn[target])
            result = judge(spec.gate, holdout[target].to_numpy(dtype=float), champion.predict_proba(holdout[features])[:, 1],
                           copy.predict_proba(holdout[features])[:, 1])
            if result.passed or name.endswith("without a gate"):
                models[name], promoted[name] = updated(copy, holdout[features], holdout[target]), promoted[name] + 1
            spent[name] += time.perf_counter() - began
    months = replay["month"].to_numpy()
    t = Table(title="Online learning on the flights replay (mean of the ten monthly AUCs, each row scored before its label arrived)")
    for col in ("model", "mean monthly AUC", "updates tried", "promoted", "seconds updating", "vs left alone"):
        t.add_column(col, justify="right")
    means = {}
    for name, parts in scores.items():
        served = np.concatenate(parts)
        means[name] = float(np.mean([auc(replay[target].to_numpy()[months == m], served[months == m]) for m in range(3, 13)]))
    for name, mean in means.items():
        alone = means.get(f"{name.split(',')[0]}, left alone")
        t.add_row(name, f"{mean:.4f}", str(tried.get(name, "—")), str(promoted.get(name, "—")),
                  f"{spent[name]:.1f}" if name in spent else "—", f"{mean - alone:+.4f}" if name in models and alone is not None else "")
    console.print(t)


if __name__ == "__main__":
    main()
