"""Model runtimes: how one loaded version turns validated requests into outputs, fast.

A runtime is a small class with ``prepare`` (validate one request into a block, on the event loop) and
``predict`` (score a list of blocks in one call, on the batch worker thread). Blocks are float64 matrices for
all-numeric models and ``ColumnBlock``s otherwise: pandas appears at most once per batch, never per request.
The ONNX runtime serves a model's verified ONNX twin and falls back to the native model on error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mloop.errors import Conflict, InvalidInput, MloopError
from mloop.registry import ColumnSpec, LoadedModel
from mloop.serving._codec import NUMERIC_TYPES, ColumnBlock, typed_columns, typed_frame, typed_matrix

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


def block_frame(block: Any, inputs: list[ColumnSpec]) -> pd.DataFrame:
    """A request block as a DataFrame (for the prediction log and pandas-only models)."""
    if isinstance(block, np.ndarray):
        return pd.DataFrame(block, columns=[c.name for c in inputs])
    if isinstance(block, ColumnBlock):
        return block.frame()
    return block  # type: ignore[no-any-return]


def _join(blocks: list[Any]) -> Any:
    if isinstance(blocks[0], np.ndarray):
        return blocks[0] if len(blocks) == 1 else np.vstack(blocks)
    if isinstance(blocks[0], ColumnBlock):
        return ColumnBlock.join(blocks)
    return blocks[0] if len(blocks) == 1 else pd.concat(blocks, ignore_index=True)


def _isolate(call: Callable[[Any], Any], blocks: list[Any]) -> list[Any]:
    """Predict all blocks at once; if that fails, predict each alone so one bad block fails only itself."""
    try:
        out = np.asarray(call(_join(blocks)))
        bounds = np.cumsum([0, *(len(b) for b in blocks)])
        return [out[bounds[i] : bounds[i + 1]] for i in range(len(blocks))]
    except Exception:
        if len(blocks) == 1:
            raise
    results: list[Any] = []
    for block in blocks:
        try:
            results.append(np.asarray(call(block)))
        except (ValueError, TypeError) as exc:
            results.append(InvalidInput(f"The model could not score this input: {exc}"))
        except Exception as exc:  # noqa: BLE001 - reported to that request only
            results.append(exc)
    return results


def _prepare(columns: dict[str, list[Any]], inputs: list[ColumnSpec], matrix: bool, allow_missing: bool) -> Any:
    if matrix:
        return typed_matrix(columns, inputs, allow_missing=allow_missing)
    if inputs:
        return typed_columns(columns, inputs, allow_missing=allow_missing)
    return typed_frame(columns, inputs, allow_missing=allow_missing)


class SklearnRuntime:
    """A scikit-learn estimator called directly: ``predict_proba`` for classifiers, ``predict`` otherwise.

    All-numeric bare estimators get a float64 matrix; pipelines get one DataFrame per batch.
    """

    kind = "sklearn"

    def __init__(self, model: LoadedModel, *, allow_missing: bool = True) -> None:
        self.name, self.version, self.inputs = model.name, model.version, model.inputs
        self.kind = model.flavour  # sklearn, pytorch (a network) or onnx (a graph registered as the model)
        self.allow_missing = allow_missing
        estimator = model.model
        self._call = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
        numeric = bool(self.inputs) and all(c.type in NUMERIC_TYPES for c in self.inputs)
        # Pipelines and networks take one frame per batch (a network's twin takes one tensor per column, like a pipeline's)
        self.matrix = numeric and not hasattr(estimator, "named_steps") and model.flavour not in ("pytorch", "onnx")
        if self.matrix and hasattr(estimator, "feature_names_in_"):
            # Names and order are checked at the edge against the signature; the estimator gets a bare
            # array, so it must not re-check (and warn about) names on every call.
            if list(estimator.feature_names_in_) != [c.name for c in self.inputs]:
                self.matrix = False
            else:
                del estimator.feature_names_in_

    def prepare(self, columns: dict[str, list[Any]]) -> Any:
        return _prepare(columns, self.inputs, self.matrix, self.allow_missing)

    def _score(self, block: Any) -> Any:
        return self._call(block if self.matrix else block_frame(block, self.inputs))

    def predict(self, blocks: list[Any]) -> list[Any]:
        return _isolate(self._score, blocks)


class OnnxRuntime:
    """The model's ONNX twin through ONNX Runtime (one thread), with the native model as fallback.

    At load the twin and the native model score the stored parity sample; if they disagree beyond the
    tolerance the version is refused, naming the largest difference.
    """

    kind = "onnx"

    def __init__(
        self, model: LoadedModel, native: SklearnRuntime, *, on_fallback: Callable[[], None] | None = None, timeout_ms: float = 1000.0
    ) -> None:
        from mloop.optimize import is_matrix, session

        assert model.twin is not None
        self.name, self.version, self.inputs = model.name, model.version, model.inputs
        self.native = native
        self._on_fallback = on_fallback
        self._session = session(model.twin)
        self._watchdog = _Watchdog(timeout_ms / 1000.0)
        self.matrix = is_matrix(self._session)
        if self.matrix != native.matrix:
            raise Conflict(f"The ONNX twin of {model.name} v{model.version} takes different inputs than the model.")

    def prepare(self, columns: dict[str, list[Any]]) -> Any:
        return self.native.prepare(columns)

    def _score(self, block: Any) -> Any:
        from mloop.optimize import onnx_feed

        feed = {"X": block} if self.matrix else onnx_feed(block, self.inputs, False)
        with self._watchdog.guard() as options:
            return self._session.run(None, feed, options)[0]

    def predict(self, blocks: list[Any]) -> list[Any]:
        try:
            return _isolate(self._score, blocks)
        except Exception as exc:  # noqa: BLE001 - the native model answers instead
            log.warning("ONNX runtime failed for %s v%s (%s); falling back to the native model", self.name, self.version, exc)
            if self._on_fallback is not None:
                self._on_fallback()
            return self.native.predict(blocks)


class BoosterRuntime:
    """LightGBM and XGBoost models called directly (native files, no pyfunc wrapper), answering what MLflow's
    pyfunc answers for them: a Booster's ``predict`` (probabilities for binary objectives), a scikit-learn
    API model's ``predict``."""

    def __init__(self, model: LoadedModel, *, allow_missing: bool = True) -> None:
        self.name, self.version, self.inputs = model.name, model.version, model.inputs
        self.kind = model.flavour
        self.allow_missing = allow_missing
        self.matrix = bool(self.inputs) and all(c.type in NUMERIC_TYPES for c in self.inputs)
        estimator = model.model
        if model.flavour == "xgboost" and type(estimator).__name__ == "Booster":
            self._call: Callable[[Any], Any] = estimator.inplace_predict
        else:
            self._call = estimator.predict
        # scikit-learn API models fitted on named columns check the names: give them one frame per batch.
        self._named = self.matrix and getattr(estimator, "feature_names_in_", None) is not None

    def prepare(self, columns: dict[str, list[Any]]) -> Any:
        return _prepare(columns, self.inputs, self.matrix, self.allow_missing)

    def _score(self, block: Any) -> Any:
        return self._call(block if self.matrix and not self._named else block_frame(block, self.inputs))

    def predict(self, blocks: list[Any]) -> list[Any]:
        return _isolate(self._score, blocks)


class _Watchdog:
    """Aborts an ONNX Runtime call that runs past ``timeout`` (ORT stops at its next node boundary and raises,
    and the native model answers). One polling thread per runtime, started on first use; no per-batch cost
    beyond a ``RunOptions`` object."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._current: tuple[Any, float] | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self) -> Iterator[Any]:
        import onnxruntime as ort

        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mloop-onnx-watchdog", daemon=True)
            self._thread.start()
        options = ort.RunOptions()
        self._current = (options, time.monotonic() + self.timeout)
        try:
            yield options
        finally:
            self._current = None

    def _run(self) -> None:
        interval = min(max(self.timeout / 2, 0.01), 0.5)
        while True:
            time.sleep(interval)
            current = self._current
            if current is not None and time.monotonic() > current[1]:
                current[0].terminate = True


class PyfuncRuntime:
    """Any MLflow model through its pyfunc wrapper: slower, but it serves every flavour."""

    kind = "pyfunc"

    def __init__(self, model: LoadedModel, *, allow_missing: bool = True) -> None:
        self.name, self.version, self.inputs = model.name, model.version, model.inputs
        self.allow_missing = allow_missing
        self._model = model.model

    def prepare(self, columns: dict[str, list[Any]]) -> Any:
        return _prepare(columns, self.inputs, False, self.allow_missing)

    def predict(self, blocks: list[Any]) -> list[Any]:
        return _isolate(lambda b: self._model.predict(block_frame(b, self.inputs)), blocks)


RUNTIMES = ("onnx", "sklearn", "pytorch", "lightgbm", "xgboost", "pyfunc")


def runtime_for(
    model: LoadedModel,
    *,
    allow_missing: bool = True,
    prefer_onnx: bool = True,
    on_fallback: Callable[[], None] | None = None,
    runtime_timeout_ms: float = 1000.0,
) -> Runtime:
    """The fastest runtime that can serve ``model``: its ONNX twin, else the native estimator, else pyfunc."""
    if model.flavour in ("sklearn", "pytorch", "onnx"):  # networks and ONNX graphs score frames like an estimator (predict_proba)
        use_twin = prefer_onnx and model.twin is not None
        if use_twin:
            from mloop.optimize import verify_twin

            verify_twin(model)  # before the native runtime adapts the estimator for bare arrays
        native = SklearnRuntime(model, allow_missing=allow_missing)
        return OnnxRuntime(model, native, on_fallback=on_fallback, timeout_ms=runtime_timeout_ms) if use_twin else native
    if model.flavour in ("lightgbm", "xgboost"):
        return BoosterRuntime(model, allow_missing=allow_missing)
    if model.flavour == "pyfunc":
        return PyfuncRuntime(model, allow_missing=allow_missing)
    raise MloopError(f"No runtime for flavour {model.flavour!r}. Valid: {', '.join(RUNTIMES)}.")
