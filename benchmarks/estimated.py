"""Performance estimated without labels (CBPE) on the flights replay (issue 12): is the estimate close to the AUC the
labels later show, and does the estimated trigger fire where the labelled one does?

v1 (the gradient-boosted pipeline on January–February) serves March–December untouched. Its first block of
predictions in March, with labels, calibrates its scores and is the reference of both triggers; every later block
is judged twice: by the performance trigger (its labels, DeLong z-test) and by the estimated one (scores alone,
bootstrap z-test) — each beside the naive rule "below the reference". Printed per block: the AUC the labels show,
the estimate, both decisions; then the estimate's mean absolute error and how often the label-free decision agreed
with the labelled one.

    python benchmarks/estimated.py [--sample 1.0] [--rows 25000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from mloop.automation._cbpe import Calibration, estimate, estimated_drop
from mloop.automation._gate import auc_drop, auc_with_variance
from mloop.demo._flights import SPEC, load_flights
from mloop.training import fit

console = Console(width=150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=25_000, help="rows per block (the demo's performance block)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_flights(args.sample, args.seed)
    initial, replay = data[data["month"] < 3], data[data["month"] >= 3].reset_index(drop=True)
    v1 = fit(initial, SPEC, {}, args.seed)
    scores = v1.predict_proba(replay[SPEC.features])[:, 1]
    labels = replay[SPEC.target].to_numpy(dtype=float)
    rows = max(1000, round(args.rows * args.sample))
    blocks = [slice(i, i + rows) for i in range(0, len(replay) - rows + 1, rows)]
    ref = blocks[0]
    calibration = Calibration.fit(labels[ref], scores[ref])
    started = time.perf_counter()
    reference = estimate(calibration, scores[ref], seed=0)
    ref_auc = auc_with_variance(labels[ref], scores[ref])
    t = Table(title=f"v1 on the flights replay, blocks of {rows:,} predictions (the first, in March, is the reference)")
    for col in ("block", "months", "AUC (labels)", "estimated", "labelled trigger", "estimated trigger", "naive: estimate below"):
        t.add_column(col, justify="right")
    errors, agree, fired, naive_fired, labelled_fired = [], 0, 0, 0, 0
    for k, block in enumerate(blocks[1:], start=1):
        value = estimate(calibration, scores[block], seed=k)
        cbpe = estimated_drop(reference, value, rows)
        truth = auc_drop(ref_auc, (labels[block], scores[block]))
        errors.append(abs(value[0] - truth.current))
        agree += cbpe.dropped == truth.dropped
        fired, naive_fired, labelled_fired = fired + cbpe.dropped, naive_fired + (value[0] < reference[0]), labelled_fired + truth.dropped
        months = replay["month"].to_numpy()[block]
        t.add_row(str(k), f"{months.min():02d}–{months.max():02d}", f"{truth.current:.3f}", f"{value[0]:.3f}",
                  f"{'fires' if truth.dropped else '—'} (z {truth.z:.1f})", f"{'fires' if cbpe.dropped else '—'} (z {cbpe.z:.1f})",
                  "fires" if value[0] < reference[0] else "—")
    console.print(t)
    n = len(blocks) - 1
    console.print(f"reference: AUC {ref_auc[0]:.3f}, estimated {reference[0]:.3f}. Over {n} blocks: the estimate's mean absolute error "
                  f"{np.mean(errors):.3f} AUC; the labelled trigger fired on {labelled_fired}, the estimated one on {fired} (agreeing on "
                  f"{agree} of {n}), the naive rule on {naive_fired}; estimating took {time.perf_counter() - started:.1f} s in all")


if __name__ == "__main__":
    main()
