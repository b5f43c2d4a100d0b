"""Model runtimes: how one loaded version turns validated requests into outputs, fast.

A runtime is a small class with ``prepare`` (validate one request into a block, on the event loop),
``predict`` (score a list of blocks in one call, on the batch worker thread) and ``close``.
The native scikit-learn runtime calls the estimator directly; pyfunc is the general fallback.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput, MloopError
from mloop.registry import ColumnSpec, LoadedModel
from mloop.serving._codec import NUMERIC_TYPES, typed_frame, typed_matrix

log = logging.getLogger("mloop.serving")


class Runtime(Protocol):
    """What the server needs from a model. ``prepare`` runs on the event loop and must be cheap;
    ``predict`` runs on one worker thread per version and returns one output (or exception) per block."""

    name: str
    version: int
    kind: str
    inputs: list[ColumnSpec]

    def prepare(self, columns: dict[str, list[Any]]) -> Any: ...

    def predict(self, blocks: list[Any]) -> list[Any]: ...

    def frame(self, block: Any) -> pd.DataFrame: ...


def _isolate(call: Any, blocks: list[Any], join: Any) -> list[Any]:
    """Predict all blocks at once; if that fails, predict each alone so one bad block fails only itself."""
    sizes = [len(b) for b in blocks]
    try:
        out = np.asarray(call(join(blocks) if len(blocks) > 1 else blocks[0]))
        bounds = np.cumsum([0, *sizes])
        return [out[bounds[i] : bounds[i + 1]] for i in range(len(blocks))]
    except Exception:
        if len(blocks) == 1:
            raise
    results: list[Any] = []
    for block in blocks:
        try:
            results.append(np.asarray(call(block)))
        except Exception as exc:  # noqa: BLE001 - reported to that request only
            results.append(InvalidInput(f"The model could not score this input: {exc}") if isinstance(exc, (ValueError, TypeError)) else exc)
    return results


class SklearnRuntime:
    """A scikit-learn estimator called directly: ``predict_proba`` for classifiers, ``predict`` otherwise.

    All-numeric models get a float64 matrix (no pandas on the hot path); models that need column names
    (pipelines with a ``ColumnTransformer``) get one DataFrame per batch.
    """

    kind = "sklearn"

    def __init__(self, model: LoadedModel, *, allow_missing: bool = True) -> None:
        self.name, self.version, self.inputs = model.name, model.version, model.inputs
        self.allow_missing = allow_missing
        estimator = model.model
        self._call = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
        numeric = bool(self.inputs) and all(c.type in NUMERIC_TYPES for c in self.inputs)
        self.matrix = numeric and not hasattr(estimator, "named_steps")
        if self.matrix and hasattr(estimator, "feature_names_in_"):
            # Names and order are checked at the edge against the signature; the estimator gets a bare
            # array, so it must not re-check (and warn about) names on every call.
            names = list(estimator.feature_names_in_)
            if names != [c.name for c in self.inputs]:
                self.matrix = False
            else:
                del estimator.feature_names_in_

    def prepare(self, columns: dict[str, list[Any]]) -> Any:
        if self.matrix:
            return typed_matrix(columns, self.inputs, allow_missing=self.allow_missing)
        return typed_frame(columns, self.inputs, allow_missing=self.allow_missing)

    def predict(self, blocks: list[Any]) -> list[Any]:
        join = np.vstack if self.matrix else (lambda bs: pd.concat(bs, ignore_index=True))
        return _isolate(self._call, blocks, join)

    def frame(self, block: Any) -> pd.DataFrame:
        return pd.DataFrame(block, columns=[c.name for c in self.inputs]) if self.matrix else block


class PyfuncRuntime:
    """Any MLflow model through its pyfunc wrapper: slower, but it serves every flavour."""

    kind = "pyfunc"

    def __init__(self, model: LoadedModel, *, allow_missing: bool = True) -> None:
        self.name, self.version, self.inputs = model.name, model.version, model.inputs
        self.allow_missing = allow_missing
        self._model = model.model

    def prepare(self, columns: dict[str, list[Any]]) -> Any:
        return typed_frame(columns, self.inputs, allow_missing=self.allow_missing)

    def predict(self, blocks: list[Any]) -> list[Any]:
        return _isolate(self._model.predict, blocks, lambda bs: pd.concat(bs, ignore_index=True))

    def frame(self, block: Any) -> pd.DataFrame:
        return block


def runtime_for(model: LoadedModel, *, allow_missing: bool = True) -> Runtime:
    """The fastest runtime that can serve ``model``."""
    if model.flavour == "sklearn":
        return SklearnRuntime(model, allow_missing=allow_missing)
    if model.flavour == "pyfunc":
        return PyfuncRuntime(model, allow_missing=allow_missing)
    raise MloopError(f"No runtime for flavour {model.flavour!r}. Valid: sklearn, pyfunc.")
