"""Deep learning (issue 16): the trainer's throughput beside a plain PyTorch loop, and exact resume, in one run.

1. Training throughput of the flights MLP (``TabularNet``: 12 numbers, 3 embedded categories, hidden 256-128, as
   ``examples/deep/flights_mlp.py`` trains it) on
   CPU: mloop's ``Trainer`` beside a hand-written loop over the same module, data tensors, optimizer (AdamW), batch
   size and number of steps — randperm, index, forward, cross-entropy, backward, step, zero_grad, nothing else. Each
   timed five times, interleaved (the order reversed every other round); the median counts. Both in fp32, and the trainer in bf16 autocast too. Targets:
   ≥ 50,000 samples/s; the trainer's overhead ≤ 5 %.
2. Exact resume: the same training with checkpoints, stopped after a third of its steps and resumed in a fresh module,
   beside the uninterrupted run: the largest difference between the two loss curves (logged every step).

    python benchmarks/deep.py [--rows 200000] [--epochs 2] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
warnings.filterwarnings("ignore")

console = Console(width=150)
REPEATS = 5


def data(rows: int) -> tuple[Any, Any]:
    from mloop.demo._flights import SPEC, load_flights
    from mloop.training import tabular_net, training_tensors

    frame = load_flights().head(rows)[[*SPEC.features, SPEC.target]]
    net = tabular_net(frame, SPEC.target, numeric=list(SPEC.numeric), categorical=list(SPEC.categorical), hidden=[256, 128])
    return net, training_tensors(net, frame, SPEC.target)


def fresh(template: Any) -> Any:
    import torch

    from mloop.training import TabularNet

    torch.manual_seed(0)
    return TabularNet.from_config(template.config())


def plain_loop(net: Any, tensors: tuple[Any, ...], epochs: int, batch_size: int) -> float:
    """The loop one writes by hand: what the trainer's overhead is measured against."""
    import torch
    from torch.nn import functional

    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)
    num, cat, y = tensors
    net.train()
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            loss = functional.cross_entropy(net(num[idx], cat[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def trainer(net: Any, tensors: tuple[Any, ...], epochs: int, batch_size: int, precision: str = "fp32") -> float:
    from mloop.training import TrainConfig, Trainer

    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=2e-3, precision=precision, progress=False)
    started = time.perf_counter()
    Trainer(config).fit(net, tensors)
    return time.perf_counter() - started


def resume_gap(template: Any, tensors: tuple[Any, ...], batch_size: int) -> tuple[float, int, int]:
    from mloop.training import TrainConfig, Trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(epochs=1, batch_size=batch_size, log_every=1, checkpoint_every=25, checkpoint_dir=Path(tmp) / "a", deterministic=True,
                             progress=False, schedule="cosine", warmup_steps=20)
        whole = Trainer(config).fit(fresh(template), tensors)
        stopped = TrainConfig(**{**config.__dict__, "checkpoint_dir": Path(tmp) / "b"})
        Trainer(stopped).fit(fresh(template), tensors, stop_after=whole.steps // 3)
        resumed = Trainer(stopped).fit(fresh(template), tensors)
    a, b = whole.curve(), resumed.curve()
    return max(abs(x - y) for x, y in zip(a, b, strict=True)), int(resumed.resumed_from or 0), whole.steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # `make bench` sets OMP_NUM_THREADS=1 for the servers; training uses every core
    template, tensors = data(args.rows)
    samples = args.rows * args.epochs
    console.print(f"flights MLP: {args.rows:,} rows × {args.epochs} epochs, batch {args.batch_size}, {torch.get_num_threads()} threads")
    trainer(fresh(template), tensors, 1, args.batch_size)  # warm-up
    times: dict[str, list[float]] = {"plain PyTorch loop (fp32)": [], "mloop Trainer (fp32)": [], "mloop Trainer (bf16 autocast)": []}
    runs = {"plain PyTorch loop (fp32)": lambda: plain_loop(fresh(template), tensors, args.epochs, args.batch_size),
            "mloop Trainer (fp32)": lambda: trainer(fresh(template), tensors, args.epochs, args.batch_size),
            "mloop Trainer (bf16 autocast)": lambda: trainer(fresh(template), tensors, args.epochs, args.batch_size, "bf16")}
    for i in range(REPEATS):  # interleaved, the order reversed every other round: a machine slowing down favours no one
        for name in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            times[name].append(runs[name]())
    table = Table("training", f"seconds (median of {REPEATS})", "samples/s", "vs plain loop")
    plain = statistics.median(times["plain PyTorch loop (fp32)"])
    for name, values in times.items():
        t = statistics.median(values)
        table.add_row(name, f"{t:.2f}", f"{samples / t:,.0f}", f"{(t / plain - 1) * 100:+.1f} % time")
    console.print(table)
    fp32 = statistics.median(times["mloop Trainer (fp32)"])
    console.print(f"target ≥ 50,000 samples/s: {samples / fp32:,.0f} → {'met' if samples / fp32 >= 50_000 else 'MISSED'}; "
                  f"trainer overhead ≤ 5 %: {(fp32 / plain - 1) * 100:+.1f} % → {'met' if fp32 <= plain * 1.05 else 'MISSED'}")
    gap, resumed_from, steps = resume_gap(template, tensors[:3] if args.rows <= 50_000 else tuple(t[:50_000] for t in tensors), args.batch_size)
    console.print(f"exact resume: stopped at step {steps // 3} of {steps}, resumed from the checkpoint of step {resumed_from}; "
                  f"largest difference between the resumed and the uninterrupted loss curves: {gap:.3g}")


if __name__ == "__main__":
    main()
