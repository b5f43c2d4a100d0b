"""Logging a PyTorch network as an MLflow model (the PyTorch flavour, so stock MLflow loads it) plus mloop's own
weights file: the architecture's settings as JSON and the weights as a ``state_dict``, which mloop rebuilds without
running pickle code."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mloop.tracking._tracker import TrackedRun

NET_FILE = "mloop/net.json"  # {"class": "module:Name", "config": {...}}: rebuilds the architecture
WEIGHTS_FILE = "mloop/weights.pt"  # its state_dict, loaded with weights_only

# The network classes mloop rebuilds from settings and weights; decided here, never read from a model file.
TORCH_TRUSTED_CLASSES: tuple[str, ...] = (
    "mloop.training._tabular_net:TabularNet",
    "mloop.training._nets:TextTransformer",
    "mloop.training._nets:DigitsCNN",
)
_TORCH_REQUIREMENTS = ("torch", "numpy", "pandas")


def is_torch_module(model: Any) -> bool:
    """Whether ``model`` is a PyTorch module (checked without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def class_path(model: Any) -> str:
    return f"{type(model).__module__}:{type(model).__qualname__}"


def log_torch_model(run: TrackedRun, model: Any, input_example: pd.DataFrame, *, labels: Any = None) -> str:
    """Log a network that scores frames (``predict_proba``) with its signature, input example and explanation background.
    Networks of a trusted class are also kept as settings plus weights, so loading them runs no pickle code."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from mloop.errors import InvalidInput
    from mloop.tracking._tracker import _pinned, background_rows

    if not hasattr(model, "predict_proba"):
        raise InvalidInput(f"{type(model).__name__} cannot score a table: log networks that have predict_proba(frame) (such as "
                           "mloop.training.TabularNet), or log other modules with run.log_model(mlflow.pytorch, …).", field="model")
    example = input_example.head(5)
    signature = infer_signature(example, model.predict_proba(example))
    files: dict[str, bytes] = {}
    if class_path(model) in TORCH_TRUSTED_CLASSES and hasattr(model, "config"):
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        files = {NET_FILE: json.dumps({"class": class_path(model), "config": model.config()}).encode(), WEIGHTS_FILE: buffer.getvalue()}
    flavour_log = logging.getLogger("mlflow.pytorch")
    level = flavour_log.level
    flavour_log.setLevel(logging.ERROR)  # its warning about pickle: mloop itself loads the weights file above, never the pickle
    try:
        return run.log_model(
            mlflow.pytorch, model, input_example=example, signature=signature, background=background_rows(input_example, labels), files=files,
            pip_requirements=_pinned(_TORCH_REQUIREMENTS), serialization_format="pickle",
        )
    finally:
        flavour_log.setLevel(level)


def load_torch_model(folder: Any, conf: dict[str, Any]) -> Any:
    """A network from a model folder: rebuilt from mloop's settings and weights when it has them (no pickle code
    runs), else the PyTorch flavour's pickled module (the folder was verified against its signed digests first)."""
    import importlib

    import torch

    from mloop.errors import InvalidInput

    net_file = folder / NET_FILE
    if net_file.exists():
        spec = json.loads(net_file.read_text())
        if spec.get("class") not in TORCH_TRUSTED_CLASSES:
            raise InvalidInput(f"Network class {spec.get('class')!r} is not one mloop rebuilds; trusted: {', '.join(TORCH_TRUSTED_CLASSES)}.")
        module_name, _, name = spec["class"].partition(":")
        cls = getattr(importlib.import_module(module_name), name)
        model = cls.from_config(spec["config"])
        model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        return model.eval()
    data = folder / conf.get("model_data", "data") / "model.pth"
    return torch.load(data, map_location="cpu", weights_only=False).eval()
