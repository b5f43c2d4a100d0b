"""Training: tabular gradient boosting pipelines and Optuna tuning; PyTorch networks and their trainer (mixed precision,
accumulation, checkpoints with exact resume); models that learn online for the loop's adaptive response. Names load
lazily: the tabular recipe imports neither PyTorch nor River."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_names

if TYPE_CHECKING:
    from mloop.training._checkpoint import checkpoints, latest_checkpoint
    from mloop.training._distributed import DistributedResult, fit_distributed
    from mloop.training._mlp import mlp
    from mloop.training._nets import DigitsCNN, TextTransformer, digits_cnn, digits_tensors, text_tensors, text_transformer
    from mloop.training._online import OnlineClassifier, RiverClassifier, can_learn_online, online, river, updated
    from mloop.training._tabular import DEFAULT_PARAMS, TabularSpec, auc, build_pipeline, fit, tabular, time_split, tune
    from mloop.training._tabular_net import TabularNet, tabular_net, training_tensors
    from mloop.training._torch import Batches, Trainer, TrainResult, evaluate, tensors
    from mloop.training._torch_config import TrainConfig, lr_factor

_WHERE: dict[str, str] = {
    **{n: "_checkpoint" for n in ("checkpoints", "latest_checkpoint")},
    **{n: "_distributed" for n in ("DistributedResult", "fit_distributed")},
    "mlp": "_mlp",
    **{n: "_nets" for n in ("DigitsCNN", "TextTransformer", "digits_cnn", "digits_tensors", "text_tensors", "text_transformer")},
    **{n: "_tabular_net" for n in ("TabularNet", "tabular_net", "training_tensors")},
    **{n: "_torch" for n in ("Batches", "Trainer", "TrainResult", "evaluate", "tensors")},
    **{n: "_torch_config" for n in ("TrainConfig", "lr_factor")},
    **{n: "_online" for n in ("OnlineClassifier", "RiverClassifier", "can_learn_online", "online", "river", "updated")},
    **{n: "_tabular" for n in ("DEFAULT_PARAMS", "TabularSpec", "auc", "build_pipeline", "fit", "tabular", "time_split", "tune")},
}

__all__ = [
    "DEFAULT_PARAMS", "Batches", "OnlineClassifier", "RiverClassifier", "TabularNet", "TabularSpec", "TrainConfig", "TrainResult", "Trainer", "auc",
    "build_pipeline", "can_learn_online", "checkpoints", "evaluate", "fit", "latest_checkpoint", "lr_factor", "mlp", "online", "river",
    "tabular", "tabular_net", "tensors", "time_split", "training_tensors", "tune", "updated",
]

__all__ += ["DigitsCNN", "TextTransformer", "digits_cnn", "digits_tensors", "text_tensors", "text_transformer"]
__all__ += ["DistributedResult", "fit_distributed"]


__getattr__ = lazy_names(__name__, _WHERE, globals())
