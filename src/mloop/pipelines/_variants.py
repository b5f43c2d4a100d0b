"""Optimised variants of a registered model: INT8 (dynamic or static) through ONNX Runtime, a structurally pruned
network, or a small network distilled from any classifier. Each is logged in a run with lineage to its parent, held to
the accuracy gate on held-out rows, and registered as a new version only when it passes; the gate's statistic is kept
in the run and on the version, whichever way it went."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.names import check_name

if TYPE_CHECKING:
    from mloop.optimize._gate import GateDecision
    from mloop.workspace import Workspace

METHODS = ("int8-dynamic", "int8-static", "prune", "distill")
PARENT_TAG = "mloop.parent"  # "<name>/<version>" on the variant's run and on its registered version
METHOD_TAG = "mloop.optimization"


@dataclass
class Variant:
    """What one optimisation made: the gate's decision, the version it was registered as (None when it failed)."""

    method: str
    parent: str
    gate: GateDecision
    run_id: str
    name: str
    version: int | None
    size_bytes: int
    parent_size_bytes: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f"registered as {self.name} v{self.version}" if self.version is not None else "not registered"
        return f"{self.method} of {self.parent}: gate {self.gate.describe()}; {where}"


def _serving_size(model: Any, twin: bytes | None) -> int:
    """Bytes of what serves a model: its ONNX graph when it has one, else its weights."""
    if twin is not None:
        return len(twin)
    if hasattr(model, "model_bytes"):  # an ONNX graph registered as the model
        return len(model.model_bytes)
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(buffer.getvalue())


def make_variant(ws: Workspace, name: str, ref: str | int, method: str, *, train: pd.DataFrame, test: pd.DataFrame, target: str,
                 max_loss: float = 0.01, into: str | None = None, alias: str | None = None, amount: float = 0.5, hidden: list[int] | None = None,
                 epochs: int = 6, seed: int = 0) -> Variant:
    """Make the ``method`` variant of ``name@ref``, gate it against its parent on ``test`` and register it as a version of
    ``into`` (default: ``name``) when it passes. ``train`` rows calibrate INT8 ranges, fine-tune a pruned network and
    teach a distilled one; ``amount`` is the share of hidden units pruning removes; ``hidden`` the student's sizes."""
    from mloop.optimize._gate import accuracy_gate

    if method not in METHODS:
        raise InvalidInput(f"Unknown optimisation {method!r}. Valid: {', '.join(METHODS)}.", field="method")
    into = into or name
    check_name(into, "model name")
    if alias is not None:
        check_name(alias, "alias")
    parent = ws.registry.load(name, ref)
    features = parent.feature_names
    for part, frame in (("train", train), ("test", test)):
        missing = [c for c in [*features, target] if c not in frame.columns]
        if missing:
            raise InvalidInput(f"The {part} rows lack column(s) {missing} (the model takes {features}, the label is {target!r}).", field=part)
    started = time.perf_counter()
    model, log = _build(parent, method, train, target, features, amount=amount, hidden=hidden, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - started
    gate = accuracy_gate(test[target], parent.predict(test), np.asarray(model.predict_proba(test[features])), max_loss=max_loss)
    lineage = f"{parent.name}/{parent.version}"
    tags = {PARENT_TAG: lineage, METHOD_TAG: method}
    with ws.tracker.start_run("optimize", run_name=f"{into}-{method}", seed=seed, tags=tags) as run:
        run.log_params({"method": method, "parent": lineage, "max_loss": max_loss, **({"amount": amount} if method == "prune" else {}),
                        **({"hidden": ",".join(map(str, model.hidden))} if hasattr(model, "hidden") else {})})
        run.log_dataset(test[[*features, target]], context="evaluation", name="gate rows", targets=target)
        run.log_metrics({f"gate.{k}": float(v) for k, v in gate.to_dict().items()} | {"optimize_seconds": seconds})
        uri = log(run, model, train[features], train[target])
    version = None
    if gate.passed:
        info = ws.registry.register(uri, into, alias=alias)
        version = info.version
        client = ws.tracker.client
        client.set_model_version_tag(into, str(version), PARENT_TAG, lineage)
        client.set_model_version_tag(into, str(version), METHOD_TAG, method)
        client.set_model_version_tag(into, str(version), "mloop.gate", gate.describe())
        size = _serving_size(model, ws.registry.load(into, version).twin)  # the twin registration built (for a network)
    else:
        size = _serving_size(model, None)
    return Variant(method=method, parent=lineage, gate=gate, run_id=run.run_id, name=into, version=version, size_bytes=size,
                   parent_size_bytes=_serving_size(parent.model, parent.twin), seconds=seconds)


def _build(parent: Any, method: str, train: pd.DataFrame, target: str, features: list[str], *, amount: float, hidden: list[int] | None,
           epochs: int, seed: int) -> tuple[Any, Any]:
    """The variant model and how to log it."""
    if method.startswith("int8"):
        if parent.twin is None:
            raise InvalidInput(f"{parent.name} v{parent.version} has no ONNX twin to quantise; its card says why.", field="method")
        from mloop.optimize._quantize import quantize
        from mloop.registry._onnx_model import OnnxClassifier

        graph = quantize(parent.twin, parent.inputs, mode=method.removeprefix("int8-"), calibration=train[features])
        return OnnxClassifier(graph, parent.inputs), _log_onnx
    if method == "prune":
        from mloop.training import TabularNet
        from mloop.training._compress import fine_tune, prune

        if not isinstance(parent.model, TabularNet):
            raise InvalidInput(f"Pruning needs a TabularNet; {parent.name} v{parent.version} is a {type(parent.model).__name__}.", field="method")
        pruned = prune(parent.model, amount)
        return fine_tune(pruned, train[[*features, target]], target, seed=seed), _log_net
    from mloop.training._compress import distill

    numeric = [c.name for c in parent.inputs if c.type != "string"]
    categorical = [c.name for c in parent.inputs if c.type == "string"]
    student = distill(parent.model, train[[*features, target]], target, hidden=hidden, epochs=epochs, seed=seed, numeric=numeric,
                      categorical=categorical)
    return student, _log_net


def _log_net(run: Any, model: Any, frame: pd.DataFrame, labels: Any) -> str:
    return str(run.log_sklearn_model(model, frame, labels=labels))


def _log_onnx(run: Any, model: Any, frame: pd.DataFrame, labels: Any) -> str:
    """The INT8 graph as an MLflow ONNX model (the graph is the model), with the signature and background of its parent's."""
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    from mloop.tracking._tracker import background_rows

    example = frame.head(5)
    signature = infer_signature(example, model.predict_proba(example))
    return str(run.log_model(mlflow.onnx, onnx.load_from_string(model.model_bytes), input_example=example, signature=signature,
                             background=background_rows(frame, labels), pip_requirements=["onnxruntime", "onnx", "numpy", "pandas"],
                             save_as_external_data=False))  # one self-contained file: mloop loads graphs from bytes
