"""A trainer for any ``torch.nn.Module``: mixed precision, gradient accumulation and checkpointing, learning-rate
schedules, early stopping, atomic checkpoints and exact resume, metrics to MLflow in batches, progress on screen.

Data are tensors (inputs then target; the module is called as ``module(*inputs)``) or any map-style dataset. The
order of every epoch is drawn from ``(seed, epoch)`` and every random generator is checkpointed, so a run stopped
after a checkpoint and resumed computes the same steps as one that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInput
from mloop.training._checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mloop.training._torch_config import TrainConfig, lr_factor

if TYPE_CHECKING:
    import torch

    from mloop.tracking import TrackedRun

FORMAT = 1
LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass
class TrainResult:
    """What a fit did: the logged curves (``history[key] = [(step, value), …]``), where it stopped and why."""

    steps: int
    epochs_done: float
    samples: int
    seconds: float
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best_step: int | None = None
    best_valid_loss: float | None = None
    stopped_early: bool = False
    resumed_from: int | None = None

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    def curve(self, key: str = "train_loss") -> list[float]:
        return [v for _, v in self.history.get(key, [])]


class Batches:
    """Micro-batches of a dataset in the order drawn for an epoch: slices of tensors (fast) or a dataset's items
    collated by PyTorch's ``default_collate``. ``shard`` = (rank, world) keeps one rank's share of every epoch."""

    def __init__(self, data: Any, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1)) -> None:
        import torch

        self.tensors = isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data)
        if self.tensors:
            lengths = {len(t) for t in data}
            if len(lengths) != 1:
                raise InvalidInput(f"The data tensors have different lengths {sorted(lengths)}; give inputs and target row-aligned.", field="data")
            if len(data) < 2:
                raise InvalidInput("Give the data as (inputs..., target): at least two tensors.", field="data")
        elif not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
            raise InvalidInput(f"data must be a tuple of tensors or a map-style dataset, got {type(data).__name__}.", field="data")
        self.data, self.batch_size, self.seed, self.shard = data, batch_size, seed, shard
        self.rows = len(data[0]) if self.tensors else len(data)
        if self.rows == 0:
            raise InvalidInput("The training data has no rows.", field="data")
        self.local_rows = len(range(shard[0], self.rows, shard[1]))

    def __len__(self) -> int:
        return math.ceil(self.local_rows / self.batch_size)

    def rows_of(self, index: int) -> int:
        return min(self.batch_size, self.local_rows - index * self.batch_size)

    def step_rows(self, index: int, accumulate: int) -> int:
        """Rows of the optimizer step that micro-batch ``index`` belongs to (an epoch's last step may be short)."""
        first = index - index % accumulate
        return sum(self.rows_of(i) for i in range(first, min(first + accumulate, len(self))))

    def order(self, epoch: int) -> torch.Tensor:
        import torch

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.rows, generator=gen)[self.shard[0] :: self.shard[1]]

    def batch(self, order: torch.Tensor, index: int) -> list[torch.Tensor]:
        idx = order[index * self.batch_size : (index + 1) * self.batch_size]
        if self.tensors:
            return [t[idx] for t in self.data]
        from torch.utils.data import default_collate

        items = default_collate([self.data[int(i)] for i in idx])
        return list(items) if isinstance(items, (tuple, list)) else [items]


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here; use device='auto' or 'cpu'.", field="device")
    return torch.device(name)


def _checkpointing(module: Any, forward: Any, on: bool) -> Callable[..., Any]:
    """The forward pass (``forward``: the module, or a wrapper of it), with activations recomputed in the backward pass
    when ``on`` (less memory, more time)."""
    import torch

    if not on:
        return forward  # type: ignore[no-any-return]
    if hasattr(module, "gradient_checkpointing"):  # our models (and Hugging Face's) switch it on themselves
        module.gradient_checkpointing = True
        return forward  # type: ignore[no-any-return]
    if isinstance(module, torch.nn.Sequential) and forward is module:
        from torch.utils.checkpoint import checkpoint_sequential

        segments = max(1, min(len(module), int(math.sqrt(len(module)))))
        return lambda x: checkpoint_sequential(module, segments, x, use_reentrant=False)
    raise InvalidInput("gradient_checkpointing needs an nn.Sequential (unwrapped) or a module with a `gradient_checkpointing` attribute "
                       f"({type(module).__name__} has neither).", field="gradient_checkpointing")


class Trainer:
    """Fits a module under a :class:`TrainConfig`, logging to ``run`` (a tracked MLflow run) when given."""

    def __init__(self, config: TrainConfig | None = None, *, run: TrackedRun | None = None, loss: LossFn | None = None,
                 metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] | None = None,
                 on_evaluate: Callable[[int, dict[str, float], torch.nn.Module], None] | None = None,
                 on_checkpoint: Callable[[Path | None, dict[str, Any]], None] | None = None) -> None:
        self.config = config or TrainConfig()
        self.on_evaluate = on_evaluate  # after each evaluation: (step, values, module); raising ends the fit (a pruned trial)
        # At each checkpoint step: (its path, the latest logged values) on rank 0, which writes it; (None, values) on the other
        # ranks, at the same steps (Ray Train's report is a barrier every rank reaches)
        self.on_checkpoint = on_checkpoint
        self._rank, self._world = 0, 1
        self.run = run
        self.loss = loss
        self.metrics = metrics or {}
        self._pending: list[tuple[str, float, int]] = []

    # -- the loop ---------------------------------------------------------------------------------------------
    def fit(self, module: torch.nn.Module, train: Any, valid: Any = None, *, resume: bool = True, shard: tuple[int, int] = (0, 1),
            stop_after: int | None = None, wrap: Callable[[torch.nn.Module], Any] | None = None) -> TrainResult:
        """Train ``module`` in place and return what happened. With ``resume`` and a checkpoint in the checkpoint folder,
        continue from it. ``stop_after`` ends the run after that optimizer step (as a crash would, but cleanly: tests
        and time-boxed jobs). ``shard`` and ``wrap`` are for data-parallel workers (one rank's rows, ``(rank, world)``; a
        wrapper such as DistributedDataParallel around the module); only rank 0 writes checkpoints."""
        import torch
        from torch.nn import functional

        cfg = self.config
        self._rank, self._world = shard  # data-parallel ranks share one checkpoint: rank 0 writes it, every rank resumes from it
        device = _device(cfg.device)
        if cfg.precision == "fp16" and device.type != "cuda":
            raise InvalidInput("precision 'fp16' needs a CUDA GPU; on CPU use 'bf16' (autocast) or 'fp32'.", field="precision")
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        loss_fn = self.loss or functional.cross_entropy
        batches = Batches(train, cfg.batch_size, cfg.seed, shard)
        steps_per_epoch = math.ceil(len(batches) / cfg.accumulate)
        total = min(cfg.max_steps or 10**12, cfg.epochs * steps_per_epoch)
        torch.manual_seed(cfg.seed)
        module.to(device)
        forward = _checkpointing(module, wrap(module) if wrap is not None else module, cfg.gradient_checkpointing)
        optimizer = self._optimizer(module)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg.schedule, s, total, cfg.warmup_steps))
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        autocast = (lambda: torch.autocast(device.type, dtype=torch.float16 if cfg.precision == "fp16" else torch.bfloat16)) \
            if cfg.precision != "fp32" else nullcontext
        state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "loss_sum": 0.0, "loss_n": 0, "best": None, "best_step": None,
                                 "bad_evals": 0, "best_state": None, "history": {}, "samples": 0}
        resumed_from = None
        if resume and cfg.checkpoint_dir is not None and (path := latest_checkpoint(cfg.checkpoint_dir)) is not None:
            saved = load_checkpoint(path)
            if saved["config"] != cfg.resume_key():
                changed = sorted(k for k in saved["config"] if saved["config"][k] != cfg.resume_key().get(k))
                raise InvalidInput(f"The checkpoint in {cfg.checkpoint_dir} was written with other settings ({', '.join(changed)}); "
                                   "resume with the same ones or use a fresh checkpoint_dir.", field=changed[0] if changed else "checkpoint_dir")
            module.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if scaler is not None and saved.get("scaler"):
                scaler.load_state_dict(saved["scaler"])
            set_rng_state(saved["rng"])
            state.update(saved["state"])
            resumed_from = state["step"]
        progress = self._progress(total, state["step"])
        started = time.perf_counter()
        samples_at_start = state["samples"]
        running = torch.zeros((), device=device)
        rows_in_step, micro = 0, 0
        module.train()
        try:
            while state["step"] < total and not self._done(state, stop_after, total):
                order = batches.order(state["epoch"])
                while state["batch"] < len(batches):
                    *inputs, target = [t.to(device, non_blocking=True) for t in batches.batch(order, state["batch"])]
                    with autocast():
                        loss = loss_fn(forward(*inputs), target)
                    # each micro-batch's mean loss weighted by its share of the step's rows: the step's gradient is that of
                    # the mean over all its rows, as one big batch would give (a short last step too)
                    scaled = loss * (len(target) / batches.step_rows(state["batch"], cfg.accumulate)) if cfg.accumulate > 1 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    running += loss.detach().float() * len(target)
                    rows_in_step += len(target)
                    state["batch"] += 1
                    micro += 1
                    if micro < cfg.accumulate and state["batch"] < len(batches):
                        continue
                    self._step(module, optimizer, scaler)
                    scheduler.step()
                    state["step"] += 1
                    state["samples"] += rows_in_step
                    state["loss_sum"] += float(running)
                    state["loss_n"] += rows_in_step
                    running.zero_()
                    rows_in_step, micro = 0, 0
                    self._after_step(module, state, valid, loss_fn, autocast, device, optimizer, scheduler, scaler, steps_per_epoch, progress)
                    if self._done(state, stop_after, total):
                        break
                if state["batch"] >= len(batches):
                    state["epoch"], state["batch"] = state["epoch"] + 1, 0
        finally:
            if progress is not None:
                progress.stop()
            self.flush()
        if state["best_state"] is not None and cfg.patience is not None:
            module.load_state_dict(state["best_state"])  # early stopping keeps the best weights, not the last
        module.eval()
        return TrainResult(
            steps=state["step"], epochs_done=state["epoch"] + state["batch"] / len(batches), samples=state["samples"] - samples_at_start,
            seconds=time.perf_counter() - started, history=state["history"], best_step=state["best_step"], best_valid_loss=state["best"],
            stopped_early=bool(state.get("stop")), resumed_from=resumed_from,
        )

    @staticmethod
    def _done(state: dict[str, Any], stop_after: int | None, total: int) -> bool:
        return bool(state.get("stop")) or state["step"] >= total or (stop_after is not None and state["step"] >= stop_after)

    def _optimizer(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        import torch

        cfg = self.config
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise InvalidInput(f"{type(module).__name__} has no trainable parameters.", field="module")
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _step(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: Any) -> None:
        import torch

        if scaler is not None:
            scaler.unscale_(optimizer)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def _after_step(self, module: Any, state: dict[str, Any], valid: Any, loss_fn: LossFn, autocast: Any, device: Any, optimizer: Any,
                    scheduler: Any, scaler: Any, steps_per_epoch: int, progress: Any) -> None:
        """Log, evaluate, stop early and checkpoint, each on its own cadence (counted in optimizer steps)."""
        cfg, step = self.config, state["step"]
        if step % cfg.log_every == 0:
            self._record(state, "train_loss", self._mean_loss(state, device), step)
            self._record(state, "lr", float(optimizer.param_groups[0]["lr"]), step)
            state["loss_sum"], state["loss_n"] = 0.0, 0
            if progress is not None:
                progress.update(progress.task_ids[0], completed=step, loss=state["history"]["train_loss"][-1][1])
        eval_every = cfg.eval_every or steps_per_epoch
        if valid is not None and step % eval_every == 0:
            values = evaluate(module, valid, loss_fn, batch_size=max(cfg.batch_size, 1024), device=device, autocast=autocast, metrics=self.metrics)
            module.train()
            for key, value in values.items():
                self._record(state, f"valid_{key}", value, step)
            if state["best"] is None or values["loss"] < state["best"]:
                state["best"], state["best_step"], state["bad_evals"] = values["loss"], step, 0
                if cfg.patience is not None:
                    state["best_state"] = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                state["bad_evals"] += 1
                if cfg.patience is not None and state["bad_evals"] >= cfg.patience:
                    state["stop"] = True
            if self.on_evaluate is not None:
                self.on_evaluate(step, values, module)
        if cfg.checkpoint_every is None or cfg.checkpoint_dir is None or step % cfg.checkpoint_every:
            return
        latest = {k: v[-1][1] for k, v in state["history"].items() if v}
        if self._rank != 0:
            if self.on_checkpoint is not None:
                self.on_checkpoint(None, latest)
            return
        self.flush()  # the metrics up to here are in the run before the checkpoint that covers them exists
        path = save_checkpoint(cfg.checkpoint_dir, step, {
            "format": FORMAT, "config": cfg.resume_key(), "model": module.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None, "rng": rng_state(),
            "state": {k: v for k, v in state.items() if k != "stop"},
        }, keep=cfg.keep_checkpoints)
        if self.on_checkpoint is not None:
            self.on_checkpoint(path, latest)

    def _mean_loss(self, state: dict[str, Any], device: Any) -> float:
        """The training loss since the last log: over every rank's rows when data-parallel (all ranks log at the same steps)."""
        total, rows = state["loss_sum"], state["loss_n"]
        if self._world > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                both = torch.tensor([total, rows], dtype=torch.float64, device=device)
                dist.all_reduce(both)
                total, rows = float(both[0]), float(both[1])
        return float(total / max(1, rows))

    def _record(self, state: dict[str, Any], key: str, value: float, step: int) -> None:
        state["history"].setdefault(key, []).append((step, value))
        if self.run is not None:
            self._pending.append((key, value, step))
            if len(self._pending) >= 1000:
                self.flush()

    def flush(self) -> None:
        """Send the buffered metrics to the run in one call (MLflow takes up to 1,000 per batch)."""
        if self.run is not None and self._pending:
            self.run.log_metric_steps(self._pending)
        self._pending = []

    def _progress(self, total: int, done: int) -> Any:
        if not self.config.progress:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), transient=True)
        progress.add_task("train", total=total, completed=done, loss=float("nan"))
        progress.start()
        return progress


def evaluate(module: Any, data: Any, loss_fn: LossFn | None = None, *, batch_size: int = 1024, device: Any = None, autocast: Any = nullcontext,
             metrics: dict[str, Callable[[Any, Any], float]] | None = None) -> dict[str, float]:
    """Mean loss (and each metric over all outputs) of ``module`` on ``data``, without gradients, in order."""
    import torch
    from torch.nn import functional

    loss_fn = loss_fn or functional.cross_entropy
    batches = Batches(data, batch_size, 0)
    order = torch.arange(batches.rows)
    module.eval()
    total, rows, outs, targets = 0.0, 0, [], []
    with torch.no_grad():
        for i in range(len(batches)):
            *inputs, target = [t.to(device) if device is not None else t for t in batches.batch(order, i)]
            with autocast():
                out = module(*inputs)
            total += float(loss_fn(out.float(), target)) * len(target)
            rows += len(target)
            if metrics:
                outs.append(out.float().cpu())
                targets.append(target.cpu())
    values = {"loss": total / max(1, rows)}
    if metrics:
        out_all, target_all = torch.cat(outs), torch.cat(targets)
        values.update({k: float(fn(out_all, target_all)) for k, fn in metrics.items()})
    return values


def tensors(*arrays: Sequence[Any] | Any) -> tuple[torch.Tensor, ...]:
    """NumPy arrays as tensors (float64 becomes float32; integers stay int64): the trainer's fast data form."""
    import numpy as np
    import torch

    out = []
    for a in arrays:
        arr = np.asarray(a)
        out.append(torch.from_numpy(arr.astype(np.float32) if arr.dtype.kind == "f" else arr.astype(np.int64)))
    return tuple(out)
