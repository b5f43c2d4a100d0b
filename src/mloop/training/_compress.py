"""Smaller networks from trained ones: structured pruning (whole hidden units removed, so the network really shrinks)
and distillation of any classifier into a small :class:`TabularNet` student."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional

from mloop.errors import InvalidInput
from mloop.training._tabular_net import TabularNet, tabular_net, training_tensors
from mloop.training._torch import Trainer
from mloop.training._torch_config import TrainConfig


def prune(net: TabularNet, amount: float) -> TabularNet:
    """A copy of ``net`` without the ``amount`` share of each hidden layer's units whose incoming weights have the smallest
    L2 norm (PyTorch's ``ln_structured`` picks them); the next layer loses the matching inputs."""
    from torch.nn.utils import prune as torch_prune

    if not 0.0 < amount < 1.0:
        raise InvalidInput(f"amount must be within (0, 1), got {amount!r}.", field="amount")
    kept: list[torch.Tensor] = []
    for block in net.blocks:
        linear = block[0]  # type: ignore[index]
        scratch = torch.nn.Linear(linear.in_features, linear.out_features)
        scratch.weight.data.copy_(linear.weight.data)
        torch_prune.ln_structured(scratch, "weight", amount=amount, n=2, dim=0)
        mask: torch.Tensor = getattr(scratch, "weight_mask")  # noqa: B009 - set by torch's pruning, unknown to the type checker
        keep = mask.sum(dim=1).nonzero().flatten()
        kept.append(keep if len(keep) else torch.tensor([int(linear.weight.norm(dim=1).argmax())]))
    config = {**net.config(), "hidden": [len(k) for k in kept]}
    small = TabularNet.from_config(config)
    state = net.state_dict()
    new = small.state_dict()
    for key, value in state.items():
        if key.startswith(("embeddings.", "mean", "std")):
            new[key] = value.clone()
    previous: torch.Tensor | None = None
    for i, keep in enumerate(kept):
        weight = state[f"blocks.{i}.0.weight"][keep]
        new[f"blocks.{i}.0.weight"] = (weight[:, previous] if previous is not None else weight).clone()
        new[f"blocks.{i}.0.bias"] = state[f"blocks.{i}.0.bias"][keep].clone()
        previous = keep
    new["head.weight"] = state["head.weight"][:, previous].clone() if previous is not None else state["head.weight"].clone()
    new["head.bias"] = state["head.bias"].clone()
    small.load_state_dict(new)
    return small.eval()


def fine_tune(net: TabularNet, frame: pd.DataFrame, target: str, *, epochs: int = 2, lr: float = 5e-4, batch_size: int = 512,
              seed: int = 0) -> TabularNet:
    """A few epochs at a low learning rate: a pruned network recovers most of what it lost."""
    batch_size = min(batch_size, max(32, len(frame) // 20))
    Trainer(TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)).fit(net, training_tensors(net, frame, target))
    return net.cpu().eval()


def distill(teacher: Any, frame: pd.DataFrame, target: str, *, hidden: list[int] | None = None, alpha: float = 0.7, epochs: int = 6,
            batch_size: int = 512, lr: float = 2e-3, seed: int = 0, numeric: list[str] | None = None,
            categorical: list[str] | None = None) -> TabularNet:
    """A small network taught by ``teacher`` (anything with ``predict_proba`` on the frame's columns): its loss is
    ``alpha`` × cross-entropy against the teacher's probabilities + (1 − ``alpha``) × cross-entropy against the labels."""
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInput(f"alpha must be within [0, 1], got {alpha!r}.", field="alpha")
    student = tabular_net(frame, target, hidden=hidden or [64, 32], dropout=0.0, seed=seed, numeric=numeric, categorical=categorical)
    soft = np.asarray(teacher.predict_proba(frame[student.feature_names]), dtype=np.float32)
    if soft.shape != (len(frame), student.classes):
        raise InvalidInput(f"The teacher gives {soft.shape[1:]} outputs per row; the student has {student.classes} classes.", field="teacher")
    num, cat, labels = training_tensors(student, frame, target)
    packed = torch.cat([torch.from_numpy(soft), labels.float().unsqueeze(1)], dim=1)  # teacher's probabilities, then the label
    classes = student.classes

    def loss(out: torch.Tensor, both: torch.Tensor) -> torch.Tensor:
        hard = functional.cross_entropy(out, both[:, classes].long())
        return alpha * functional.cross_entropy(out, both[:, :classes]) + (1 - alpha) * hard

    batch_size = min(batch_size, max(32, len(frame) // 20))  # at least ~20 steps an epoch, however few the rows
    Trainer(TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False), loss=loss).fit(student, (num, cat, packed))
    return student.cpu().eval()
