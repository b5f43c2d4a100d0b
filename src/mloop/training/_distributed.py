"""Data-parallel training on Ray Train: mloop's :class:`~mloop.training.Trainer` runs the loop on every worker (its
share of each epoch, gradients averaged by DistributedDataParallel), rank 0 reports each checkpoint to Ray, and a
worker group that loses a member is restarted from the last reported checkpoint.

``config.batch_size`` is the global micro-batch: each of ``workers`` ranks takes ``batch_size / workers`` rows of the
same epoch order, so an optimizer step averages the gradient of the same rows whatever the number of workers. Ray and
PyTorch are imported inside the functions only.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop._ray import probe, running_local
from mloop.errors import InvalidInput, MloopError
from mloop.training._checkpoint import checkpoints
from mloop.training._torch import Batches, Trainer
from mloop.training._torch_config import TrainConfig

if TYPE_CHECKING:
    import torch

Build = Callable[[], "torch.nn.Module"] | dict[str, Any]


@dataclass
class DistributedResult:
    """What a data-parallel fit did: the trained module (on the driver), and the final attempt's counts and curves."""

    module: torch.nn.Module
    steps: int
    samples: int  # rows seen by all workers in the final attempt
    train_seconds: float  # the final attempt's training loop, on rank 0
    seconds: float  # the whole call on the driver: worker start-up, restarts and all
    workers: int
    attempts: int
    resumed_from: int | None
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best_valid_loss: float | None = None
    stopped_early: bool = False
    path: str = ""  # the run's folder in Ray's storage (its reported checkpoints)

    @property
    def restarts(self) -> int:
        return self.attempts - 1

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else float("nan")

    def curve(self, key: str = "train_loss") -> list[float]:
        return [v for _, v in self.history.get(key, [])]


class _Attempts:
    """A Ray actor counting the worker group's starts: rank 0 calls ``start()`` once an attempt, the driver ``start(0)``."""

    def __init__(self) -> None:
        self.n = 0

    def start(self, by: int = 1) -> int:
        self.n += by
        return self.n


@dataclass(frozen=True)
class _Arrays:
    """Tensors as NumPy arrays, which Ray's object store hands to every worker of a node without a copy."""

    arrays: tuple[Any, ...]

    @classmethod
    def of(cls, data: Any) -> Any:
        import torch

        tensors = isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in data)
        return cls(tuple(t.detach().numpy() for t in data)) if tensors and all(t.dtype != torch.bfloat16 for t in data) else data

    @staticmethod
    def back(data: Any) -> Any:
        import warnings

        import torch

        if not isinstance(data, _Arrays):
            return data
        with warnings.catch_warnings():  # read-only shared memory: the trainer only reads rows (and copies them)
            warnings.simplefilter("ignore", UserWarning)
            return tuple(torch.from_numpy(a) for a in data.arrays)


def _restore(folder: Path) -> None:
    """Empty this rank's checkpoint folder, then put Ray's latest reported checkpoint (if any) in it: the trainer
    resumes from what Ray holds, never from a newer file a killed attempt wrote but did not report."""
    import ray.train

    folder.mkdir(parents=True, exist_ok=True)
    for old in checkpoints(folder):
        old.unlink()
    for pending in folder.glob(".report-*"):  # a report's copy that a killed attempt never uploaded
        shutil.rmtree(pending, ignore_errors=True)
    reported = ray.train.get_checkpoint()
    if reported is not None:
        with reported.as_directory() as src:
            for path in checkpoints(Path(src)):
                shutil.copy2(path, folder / path.name)


def _worker(job: dict[str, Any]) -> dict[str, Any] | None:
    """One rank of the group: restore, build, train its shard with DDP, report checkpoints; rank 0 returns the result."""
    import ray
    import ray.train
    import torch
    import torch.distributed as dist
    from ray.train.torch import get_device

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if rank == 0:
        ray.get(job["attempts"].start.remote())
    cfg: TrainConfig = job["config"]
    device = torch.device("cpu") if cfg.device == "cpu" else get_device()
    local = cfg.checkpoint_dir / f"rank-{rank}" if cfg.checkpoint_dir is not None else None
    if local is not None:
        _restore(local)
    cfg = replace(cfg, batch_size=cfg.batch_size // world, device=str(device), progress=False, checkpoint_dir=local)

    def report(path: Path | None, values: dict[str, Any]) -> None:
        if path is None:  # another rank at a checkpoint step: Ray's report is a barrier every rank must reach
            ray.train.report(dict(values), checkpoint=None, checkpoint_upload_mode=ray.train.CheckpointUploadMode.ASYNC)
            return
        # uploaded to Ray's storage by a background thread, which then deletes the folder: a synchronous report waits for
        # the controller's next poll, up to 2 s a checkpoint; training goes on, and the worker flushes them all at the end
        folder = Path(tempfile.mkdtemp(prefix=".report-", dir=path.parent))
        try:
            os.link(path, folder / path.name)  # the same bytes: the trainer may prune the checkpoint before the upload
        except OSError:
            shutil.copy2(path, folder / path.name)
        ray.train.report({**values, "step": int(path.stem.split("-")[1])}, checkpoint=ray.train.Checkpoint.from_directory(folder),
                         checkpoint_upload_mode=ray.train.CheckpointUploadMode.ASYNC)

    def wrap(module: torch.nn.Module) -> Any:
        if world == 1:
            return module  # nothing to average with
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    module = _build(job["build"], cfg.seed)
    train = _Arrays.back(ray.get(job["train"]))
    valid = _Arrays.back(ray.get(job["valid"])) if job["valid"] is not None and (rank == 0 or cfg.patience is not None) else None
    trainer = Trainer(cfg, loss=job["loss"], metrics=job["metrics"], on_checkpoint=report)
    result = trainer.fit(module, train, valid, resume=local is not None, shard=(rank, world), wrap=wrap)
    samples = torch.tensor([result.samples], dtype=torch.int64, device=device)
    if world > 1 and dist.is_initialized():
        dist.all_reduce(samples)  # every rank's rows, not rank 0's share times the world
    if rank != 0:
        return None
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, weights)
    return {"weights": weights.getvalue(), "steps": result.steps, "samples": int(samples.item()), "seconds": result.seconds,
            "resumed_from": result.resumed_from, "history": result.history, "best_valid_loss": result.best_valid_loss,
            "stopped_early": result.stopped_early}


def _build(build: Build, seed: int) -> torch.nn.Module:
    """``build()`` (or a TabularNet from its config) drawing its initial weights from ``seed``, whichever process builds it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(build, dict):
            from mloop.training._tabular_net import TabularNet

            try:
                return TabularNet.from_config(build)
            except KeyError as exc:
                raise InvalidInput(f"build: a TabularNet config (net.config()) lacks {exc}.", field="build") from None
        module = build()
    if not isinstance(module, torch.nn.Module):
        raise InvalidInput(f"build must return a torch.nn.Module, got {type(module).__name__}.", field="build")
    return module


def _check(build: Any, train: Any, config: Any, workers: Any, ray_address: Any, max_failures: Any, storage: Any) -> torch.nn.Module:
    """Refuse bad input by name before any Ray work; returns the driver's module (built once, so ``build`` is checked)."""
    import torch

    if not isinstance(config, TrainConfig):
        raise InvalidInput(f"config must be a TrainConfig, got {type(config).__name__}.", field="config")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InvalidInput(f"workers must be a positive integer, got {workers!r}.", field="workers")
    if config.batch_size % workers:
        raise InvalidInput(f"batch_size {config.batch_size} is the global batch and must divide among {workers} workers.", field="batch_size")
    if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 0:
        raise InvalidInput(f"max_failures must be an integer of at least 0, got {max_failures!r}.", field="max_failures")
    if max_failures > 0 and (config.checkpoint_dir is None or config.checkpoint_every is None):
        missing = "checkpoint_dir" if config.checkpoint_dir is None else "checkpoint_every"
        raise InvalidInput(f"max_failures={max_failures} needs checkpoint_every and checkpoint_dir in the config, so a restarted worker "
                           "group resumes from a checkpoint instead of step 0.", field=missing)
    if not isinstance(storage, (str, os.PathLike)) or not str(storage):
        raise InvalidInput(f"storage must be a folder path (Ray keeps the reported checkpoints there), got {storage!r}.", field="storage")
    if ray_address is not None and (not isinstance(ray_address, str) or not ray_address):
        raise InvalidInput(f"ray takes 'auto', a cluster's HOST:PORT or None (a local Ray), got {ray_address!r}.", field="ray")
    if not isinstance(build, dict) and not callable(build):
        raise InvalidInput(f"build must be a function returning a torch.nn.Module, or a TabularNet config, got {type(build).__name__}.", field="build")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(f"device {config.device!r} asked for, but PyTorch sees no CUDA GPU here.", field="device")
    Batches(train, config.batch_size, config.seed)  # the trainer's own checks on the data, here rather than on every worker
    module = _build(build, config.seed)
    if ray_address not in (None, "auto"):
        probe(ray_address, "ray")
    return module


def _connect(address: str | None, workers: int) -> Any:
    """Join Ray as mloop's pipelines do: the Ray this process already has, else ``address`` (``auto``: a Ray started on
    this machine if one answers), else a fresh local one (quiet, no dashboard, at least ``workers`` CPUs)."""
    import logging

    try:
        import ray
    except ImportError:
        raise InvalidInput('Distributed training needs Ray, which is not installed: pip install "mloop[ray]".', field="ray") from None
    if ray.is_initialized():
        return ray
    target = running_local() if address == "auto" else address
    try:
        if target is None:
            ray.init(address="local", include_dashboard=False, num_cpus=max(workers, os.cpu_count() or 1), log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:
        raise InvalidInput(f"ray={address!r}: could not connect to Ray ({type(exc).__name__}: {exc}).", field="ray") from None
    return ray


def fit_distributed(build: Build, train: Any, valid: Any = None, *, config: TrainConfig, workers: int = 2, ray: str | None = "auto",
                    max_failures: int = 2, storage: Path | str, name: str | None = None, loss: Callable[..., Any] | None = None,
                    metrics: dict[str, Callable[..., float]] | None = None) -> DistributedResult:
    """Train the module ``build()`` makes (or a :class:`TabularNet` from its ``config()``) on ``workers`` Ray Train
    workers, restarting the group from its last reported checkpoint up to ``max_failures`` times; the trained weights
    come back in a module built on the driver. ``storage`` is where Ray keeps the reported checkpoints (shared storage
    for a cluster of several nodes); ``loss`` and ``metrics`` are the Trainer's (picklable functions)."""
    module = _check(build, train, config, workers, ray, max_failures, storage)
    client = _connect(ray, workers)
    import torch
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    started = time.perf_counter()
    resources = client.cluster_resources()
    if resources.get("CPU", 0) < workers:
        raise InvalidInput(f"workers={workers}, but the Ray cluster has {resources.get('CPU', 0):g} CPUs: the group would never start.", field="workers")
    use_gpu = config.device != "cpu" and torch.cuda.is_available() and resources.get("GPU", 0) >= workers
    if config.checkpoint_dir is not None:
        config = replace(config, checkpoint_dir=config.checkpoint_dir.resolve())  # Ray moves each worker into its own folder
    attempts = client.remote(num_cpus=0)(_Attempts).remote()
    job = {"build": build, "config": config, "loss": loss, "metrics": metrics, "attempts": attempts,
           "train": client.put(_Arrays.of(train)), "valid": client.put(_Arrays.of(valid)) if valid is not None else None}
    run = RunConfig(name=name or f"mloop-train-{uuid.uuid4().hex[:8]}", storage_path=str(Path(storage).resolve()),
                    failure_config=FailureConfig(max_failures=max_failures), checkpoint_config=CheckpointConfig(num_to_keep=config.keep_checkpoints))
    loop: Any = _worker  # Ray's annotations are its v1 API's
    trainer = TorchTrainer(loop, train_loop_config=job, torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu), run_config=run)
    try:
        outcome: Any = trainer.fit()
        count = int(client.get(attempts.start.remote(0)))
    except Exception as exc:  # Ray's WorkerGroupError: an mloop error a worker raised is raised as itself
        for failure in (getattr(exc, "worker_failures", None) or {}).values():
            if isinstance(failure, MloopError):
                raise failure from exc
        raise
    finally:
        client.kill(attempts)
    done: dict[str, Any] = outcome.return_value
    module.load_state_dict(torch.load(io.BytesIO(done["weights"]), map_location="cpu", weights_only=True))
    module.eval()
    return DistributedResult(module=module, steps=done["steps"], samples=done["samples"], train_seconds=done["seconds"],
                             seconds=time.perf_counter() - started, workers=workers, attempts=count, resumed_from=done["resumed_from"],
                             history=done["history"], best_valid_loss=done["best_valid_loss"], stopped_early=done["stopped_early"],
                             path=str(outcome.path))
