"""What a PyTorch training run is told: validated once, so a bad value fails before any work with the field named."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "linear", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :class:`~mloop.training.Trainer`. ``batch_size`` is the micro-batch; an optimizer step sees
    ``batch_size * accumulate`` rows. ``checkpoint_every`` and ``eval_every`` count optimizer steps (evaluation
    defaults to once per epoch); ``patience`` counts evaluations without improvement before stopping early."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "constant"
    warmup_steps: int = 0
    accumulate: int = 1
    precision: str = "fp32"
    grad_clip: float | None = None
    gradient_checkpointing: bool = False
    patience: int | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    checkpoint_dir: Path | None = None
    keep_checkpoints: int = 2
    log_every: int = 50
    max_steps: int | None = None
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "accumulate", "log_every", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}.", field=name)
        for name in ("patience", "eval_every", "checkpoint_every", "max_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidInput(f"{name} must be a positive integer or None, got {value!r}.", field=name)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise InvalidInput(f"warmup_steps must be a non-negative integer, got {self.warmup_steps!r}.", field="warmup_steps")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise InvalidInput(f"{name} must be a finite number{' above 0' if name == 'lr' else ' of at least 0'}, got {value!r}.", field=name)
        if self.grad_clip is not None and (not isinstance(self.grad_clip, int | float) or not self.grad_clip > 0):
            raise InvalidInput(f"grad_clip must be a number above 0 or None, got {self.grad_clip!r}.", field="grad_clip")
        for name, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in valid:
                raise InvalidInput(f"Unknown {name} {getattr(self, name)!r}. Valid: {', '.join(valid)}.", field=name)
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise InvalidInput(f"device must be auto, cpu or cuda[:N], got {self.device!r}.", field="device")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise InvalidInput("checkpoint_every needs checkpoint_dir: the folder the checkpoints are written to.", field="checkpoint_dir")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From YAML or JSON: unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"Unknown training setting {unknown[0]!r}. Valid: {', '.join(sorted(known))}.", field=unknown[0])
        values = dict(data)
        if values.get("checkpoint_dir") is not None:
            values["checkpoint_dir"] = Path(values["checkpoint_dir"])
        return cls(**values)

    def params(self) -> dict[str, Any]:
        """The settings as run parameters (the ones that change the result; folders and display left out)."""
        skip = {"checkpoint_dir", "progress", "keep_checkpoints"}
        return {k: v for k, v in asdict(self).items() if k not in skip and v is not None}

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption for the result to be the same."""
        return {k: getattr(self, k) for k in ("batch_size", "accumulate", "seed", "epochs", "optimizer", "schedule", "lr", "warmup_steps",
                                              "max_steps", "precision")}


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """The learning-rate multiplier at optimizer step ``step`` of ``total``: a linear warm-up, then the schedule."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup)
    done = min(1.0, (step - warmup) / span)
    if schedule == "linear":
        return max(0.0, 1.0 - done)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * done))
    # onecycle: up for the first 30 % (after any warm-up), then cosine down to 1/1000
    if done < 0.3:
        return 0.04 + 0.96 * done / 0.3
    return 1e-3 + (1 - 1e-3) * 0.5 * (1.0 + math.cos(math.pi * (done - 0.3) / 0.7))
