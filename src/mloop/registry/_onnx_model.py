"""A model whose registered form is an ONNX graph (an INT8 variant, an imported ONNX model): scored by ONNX Runtime,
with ``predict_proba`` on a frame like every other tabular model, so runtimes, explainers and gates treat it alike."""

from __future__ import annotations

from typing import Any

import numpy as np

MISSING_TOKEN = "\x00mloop-missing"  # a string no category equals: a twin maps it to "missing" (or "unknown")


def onnx_feed(columns: Any, inputs: list[Any], matrix: bool) -> dict[str, np.ndarray]:
    """The ONNX inputs for ``columns`` (a DataFrame or a mapping of column arrays): one matrix for a bare
    model, one [n, 1] tensor per column for a pipeline (missing strings become a token no category equals)."""
    if matrix:
        return {"X": np.column_stack([np.asarray(columns[c.name], dtype=np.float64) for c in inputs])}
    feed: dict[str, np.ndarray] = {}
    for spec in inputs:
        values = np.asarray(columns[spec.name])
        if spec.type == "string":
            feed[spec.name] = np.array([v if isinstance(v, str) else MISSING_TOKEN for v in values], dtype=object).reshape(-1, 1)
        else:
            feed[spec.name] = values.astype(np.float64, copy=False).reshape(-1, 1)
    return feed


def onnx_session(model_bytes: bytes, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """An ONNX graph taking mloop's twin feed, answering ``predict_proba`` (its first output) on a frame."""

    def __init__(self, model_bytes: bytes, inputs: list[Any]) -> None:
        self.model_bytes = model_bytes
        self.inputs = inputs
        self.session = onnx_session(model_bytes)
        self.matrix = [i.name for i in self.session.get_inputs()] == ["X"]

    def predict_proba(self, rows: Any) -> np.ndarray:
        if isinstance(rows, np.ndarray):
            rows = {c.name: rows[:, j] for j, c in enumerate(self.inputs)}
        return np.asarray(self.session.run(None, onnx_feed(rows, self.inputs, self.matrix))[0], dtype=np.float64)

    def predict(self, rows: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(rows), axis=1)

    def __getstate__(self) -> dict[str, Any]:  # sessions do not pickle: rebuilt from the bytes
        return {"model_bytes": self.model_bytes, "inputs": self.inputs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model_bytes"], state["inputs"])  # type: ignore[misc]
