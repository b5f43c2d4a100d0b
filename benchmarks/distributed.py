"""Distributed training (issue 17): the same training in-process and on 1 and 2 Ray Train workers, and what a worker
killed mid-run costs, in one run.

The task: the flights network (``TabularNet``, 12 numbers and 3 embedded categories, hidden 512 and 256) on the first
200,000 of January's flights, validated on the next 20,000; 3 epochs, global batch 512, AdamW, cosine schedule,
checkpoints every 200 steps. Rows:

1. the plain in-process ``Trainer`` with 1 PyTorch thread, and with as many threads as the cores seen;
2. ``fit_distributed`` on 1 and on 2 Ray workers (one CPU and one thread each, gloo, DistributedDataParallel): the
   whole call (worker start-up, data through the object store, the checkpoints' upload) and the training loop alone
   (rank 0's ``Trainer.fit``, the final attempt);
3. the same 2-worker run with rank 0 SIGKILLed halfway (at step 586 of 1,173, first attempt only): Ray replaces the
   group and it resumes from the last checkpoint Ray holds. Time lost = its call minus the uninterrupted call, split
   into the steps computed again (at the loop's rate) and the rest (noticing the loss, a new group, the restore).

Scaling efficiency = samples/s of the 2-worker loop / (2 × samples/s of the 1-worker loop), end to end too. Each run
once (they take tens of seconds; expect a few % of noise). A single machine of 2 cores, shared, cannot show scaling:
two workers of one thread each use every core, and the gradient exchange competes with the computation.

    OMP_NUM_THREADS=1 python benchmarks/distributed.py [--rows 200000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
warnings.filterwarnings("ignore")
os.environ.setdefault("OMP_NUM_THREADS", "1")

console = Console(width=160)
BATCH, CHECKPOINT_EVERY = 512, 200


class KillAt:
    """A loss that, on rank 0's ``step``-th micro-batch of the first attempt, writes its process id to ``marker``: the
    watcher thread then SIGKILLs that process."""

    def __init__(self, marker: Path, step: int) -> None:
        self.marker, self.step, self.calls = marker, step, 0

    def __call__(self, out: Any, target: Any) -> Any:
        import ray.train
        from torch.nn import functional

        self.calls += 1
        if self.calls == self.step and ray.train.get_context().get_world_rank() == 0 and not self.marker.exists():
            self.marker.write_text(f"{os.getpid()} {self.calls}")
        return functional.cross_entropy(out, target)


def kill_when_marked(marker: Path, killed: list[tuple[int, int, float]]) -> threading.Thread:
    def watch() -> None:
        while not marker.exists() or not marker.read_text().strip():
            time.sleep(0.01)
        pid, step = map(int, marker.read_text().split())
        os.kill(pid, signal.SIGKILL)
        killed.append((pid, step, time.perf_counter()))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def data(rows: int) -> tuple[Any, tuple[Any, ...], tuple[Any, ...]]:
    from mloop.demo._flights import SPEC, load_flights
    from mloop.training import tabular_net, training_tensors

    frame = load_flights().head(rows + rows // 10)[[*SPEC.features, SPEC.target]]
    net = tabular_net(frame.head(rows), SPEC.target, numeric=list(SPEC.numeric), categorical=list(SPEC.categorical), hidden=(512, 256))
    tensors = training_tensors(net, frame, SPEC.target)
    return net, tuple(t[:rows] for t in tensors), tuple(t[rows:] for t in tensors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import torch

    from mloop.training import TabularNet, TrainConfig, Trainer, evaluate, fit_distributed

    cores = len(os.sched_getaffinity(0))
    net, train, valid = data(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="mloop-bench-distributed-"))

    def config(name: str) -> TrainConfig:  # the same for every run, checkpoints included
        return TrainConfig(epochs=args.epochs, batch_size=BATCH, lr=2e-3, schedule="cosine", warmup_steps=50, log_every=50, progress=False,
                           checkpoint_every=CHECKPOINT_EVERY, checkpoint_dir=folder / name)

    rows: list[tuple[str, int, float, float, float, float, int, str]] = []
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        module = TabularNet.from_config(net.config())
        started = time.perf_counter()
        result = Trainer(config(f"ck-local-{threads}")).fit(module, train, valid)
        wall = time.perf_counter() - started
        rows.append((f"in-process Trainer, {threads} thread{'s' if threads > 1 else ''}", 1, wall, result.seconds, result.samples_per_second,
                     evaluate(module, valid)["loss"], 1, "–"))
        console.print(f"in-process, {threads} thread(s): {wall:.1f} s", style="dim")
    torch.set_num_threads(1)
    steps = args.epochs * -(-args.rows // BATCH)
    killed: list[tuple[int, int, float]] = []
    ray_started = time.perf_counter()
    import ray

    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray_start = time.perf_counter() - ray_started
    runs: dict[str, Any] = {}
    for label, workers, kill in (("Ray Train, 1 worker", 1, False), ("Ray Train, 2 workers", 2, False), ("Ray Train, 2 workers, rank 0 killed", 2, True)):
        marker = folder / f"victim-{workers}-{kill}"
        if kill:
            kill_when_marked(marker, killed)
        out = fit_distributed(net.config(), train, valid, config=config(f"ck-{workers}-{kill}"), workers=workers, max_failures=2,
                              storage=folder / "ray", loss=KillAt(marker, steps // 2) if kill else None)
        runs[label] = out
        rows.append((label, workers, out.seconds, out.train_seconds, out.samples_per_second, evaluate(out.module, valid)["loss"], out.attempts,
                     str(out.resumed_from) if out.resumed_from is not None else "–"))
        console.print(f"{label}: {out.seconds:.1f} s", style="dim")
    ray.shutdown()

    table = Table(title=f"Distributed training: {args.rows:,} rows × {args.epochs} epochs = {steps:,} steps of {BATCH} rows "
                        f"({cores} cores seen, load {os.getloadavg()[0]:.1f})")
    for column in ("run", "workers", "call s", "loop s", "samples/s (loop)", "valid loss", "attempts", "resumed from step"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, workers, wall, loop, rate, loss, attempts, resumed in rows:
        table.add_row(label, str(workers), f"{wall:.1f}", f"{loop:.1f}", f"{rate:,.0f}", f"{loss:.5f}", str(attempts), resumed)
    console.print(table)
    one, two, hurt = runs["Ray Train, 1 worker"], runs["Ray Train, 2 workers"], runs["Ray Train, 2 workers, rank 0 killed"]
    console.print(f"Scaling efficiency, 2 workers vs 1: loop {two.samples_per_second / (2 * one.samples_per_second):.0%}, "
                  f"end to end {one.seconds / (2 * two.seconds):.0%} (100 % = twice the speed). {cores} cores seen: "
                  f"{'no room for two workers to scale' if cores <= 2 else 'see the loop row'}.")
    console.print(f"In-process (1 thread) vs 2 Ray workers, end to end: {rows[0][2]:.1f} s vs {two.seconds:.1f} s. "
                  f"Ray start (once, not counted above): {ray_start:.1f} s.")
    if killed:
        _, at, _ = killed[0]
        redone = at - (hurt.resumed_from or 0)
        lost = hurt.seconds - two.seconds
        again = redone * BATCH / two.samples_per_second
        console.print(f"Killed worker: rank 0 SIGKILLed at step {at}; resumed from step {hurt.resumed_from}, {hurt.attempts} attempts; time lost "
                      f"{lost:.1f} s ({hurt.seconds:.1f} s vs {two.seconds:.1f} s): {redone} steps computed again ≈ {again:.1f} s, the rest "
                      f"({lost - again:.1f} s) noticing the loss, starting a new group and restoring. Valid loss "
                      f"{evaluate(hurt.module, valid)['loss']:.6f} vs {evaluate(two.module, valid)['loss']:.6f} uninterrupted.")
    console.print(f"Ray Train's controller polls its workers every {os.environ.get('RAY_TRAIN_HEALTH_CHECK_INTERVAL_S', '2')} s "
                  "(RAY_TRAIN_HEALTH_CHECK_INTERVAL_S): a lost worker is noticed, and a checkpoint report taken, once a poll.")

if __name__ == "__main__":
    main()
