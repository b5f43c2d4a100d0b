"""The neural recipe for tables: a :class:`TabularNet` trained by the :class:`Trainer` with early stopping on the newest
rows. It has the shape of every recipe (``mlp(frame, target, **params) -> model``), so pipelines train it, the tune
step searches its depth, width and dropout (pruning poor trials epoch by epoch), and the loop retrains with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from mloop.errors import InvalidInput

# One epoch's model → the tune step's metric on the held-out fold so far; it raises optuna.TrialPruned to stop.
Report = Callable[[Any, int], None]


def mlp(frame: pd.DataFrame, target: str, *, seed: int = 0, layers: int = 2, width: int = 128, hidden: list[int] | None = None,
        dropout: float = 0.1, epochs: int = 8, batch_size: int = 512, lr: float = 2e-3, weight_decay: float = 1e-5, holdout: float = 0.1,
        patience: int | None = 3, precision: str = "fp32", numeric: list[str] | None = None, categorical: list[str] | None = None,
        run: Any = None, report: Report | None = None, progress: bool = False, **settings: Any) -> Any:
    """A :class:`~mloop.training.TabularNet` of ``layers`` hidden layers of ``width`` units (halving with depth; or the
    explicit ``hidden`` sizes) fit on ``frame``; the newest ``holdout`` share of rows (the frame is in time order)
    decides early stopping and the weights kept. ``settings`` go to :class:`~mloop.training.TrainConfig`."""
    import torch

    from mloop.training._tabular import time_split
    from mloop.training._tabular_net import tabular_net, training_tensors
    from mloop.training._torch import Trainer
    from mloop.training._torch_config import TrainConfig

    for name, value in (("layers", layers), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{name} must be a positive integer, got {value!r}.", field=name)
    sizes = list(hidden) if hidden is not None else [max(8, width // (2**i)) for i in range(layers)]
    train, valid = time_split(frame, holdout) if holdout else (frame, frame.iloc[:0])
    net = tabular_net(train, target, numeric=numeric, categorical=categorical, hidden=sizes, dropout=dropout, seed=seed)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience if len(valid) else None,
                         precision=precision, seed=seed, progress=progress, **settings)
    on_evaluate = None
    if report is not None:
        def on_evaluate(step: int, values: dict[str, float], module: torch.nn.Module) -> None:
            report(module, step)
            module.train()

    Trainer(config, run=run, on_evaluate=on_evaluate).fit(net, training_tensors(net, train, target),
                                                          training_tensors(net, valid, target) if len(valid) else None)
    if run is not None:
        run.log_params({"hidden": ",".join(map(str, sizes)), "dropout": dropout, **config.params()})
    return net.cpu()  # trained wherever the config said; logged, exported and served from the CPU
