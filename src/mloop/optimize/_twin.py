"""Build and check the ONNX twin of a registered model: convert, score a parity sample both ways, and keep
the twin only when the two agree within tolerance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import Conflict
from mloop.optimize._hgb_onnx import NotConvertible, convert_hgb
from mloop.optimize._parity import Parity, compare
from mloop.registry import EXTRAS_DIR, PARITY_FILE, TWIN_FILE, LoadedModel
from mloop.registry._onnx_model import onnx_feed
from mloop.registry._onnx_model import onnx_session as session  # one thread, CPU: the twins' session

TOLERANCE = 1e-6
NET_TOLERANCE = 1e-5  # networks run in float32 both ways; the order of summation differs between the two engines


def parity_sample(example: pd.DataFrame, inputs: list[Any], rows: int = 256, seed: int = 0) -> pd.DataFrame:
    """Rows around the input example: numbers scaled and shifted, some missing; categories shuffled, one unseen."""
    rng = np.random.default_rng(seed)
    base = example.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    out = {}
    for spec in inputs:
        col = base[spec.name]
        if spec.type == "string":
            levels = [v for v in example[spec.name].dropna().unique().tolist()] + ["<unseen>"]
            values = rng.choice(np.array(levels, dtype=object), size=rows)
            values[rng.random(rows) < 0.05] = None
            out[spec.name] = values
        else:
            values = col.to_numpy(dtype=float) * rng.uniform(0.5, 1.5, rows) + rng.normal(0, 1, rows)
            values[rng.random(rows) < 0.05] = np.nan
            out[spec.name] = values
    return pd.DataFrame(out)


def is_matrix(sess: Any) -> bool:
    """Whether an ONNX session takes one matrix ``X`` (a bare model) rather than one tensor per column."""
    return [i.name for i in sess.get_inputs()] == ["X"]


def check(model: Any, twin: bytes, sample: pd.DataFrame, inputs: list[Any], tolerance: float = TOLERANCE) -> Parity:
    """Score ``sample`` natively and through the twin; the result says whether they agree."""
    sess = session(twin)
    matrix = is_matrix(sess)
    rows: Any = sample
    if matrix and not hasattr(model, "feature_names_in_"):  # fitted on a bare array: give it one
        rows = sample[[c.name for c in inputs]].to_numpy(dtype=np.float64)
    native = model.predict_proba(rows) if hasattr(model, "predict_proba") else model.predict(rows)
    out = sess.run(None, onnx_feed(sample, inputs, matrix))[0]
    return compare(native, out, tolerance)


def _is_net(model: Any) -> bool:
    from mloop.tracking._torch_model import is_torch_module

    return is_torch_module(model)


def convert(model: Any, inputs: list[Any]) -> bytes:
    """The ONNX twin's bytes: a tabular network through PyTorch's exporter, a gradient-boosted model through ours."""
    if _is_net(model):
        from mloop.optimize._torch_onnx import convert_net

        return convert_net(model, inputs)
    return convert_hgb(model, inputs)


def tolerance_for(model: Any) -> float:
    return NET_TOLERANCE if _is_net(model) else TOLERANCE


def build_twin(model: Any, inputs: list[Any], example: pd.DataFrame, folder: Path) -> dict[str, Any]:
    """Write ``mloop/model.onnx`` and its parity sample into ``folder`` when the model converts and agrees.

    Returns what happened, for the model card: ``{"onnx": bool, "reason" or "parity": ...}``.
    """
    try:
        twin = convert(model, inputs)
    except NotConvertible as exc:
        return {"onnx": False, "reason": exc.message}
    sample = parity_sample(example, inputs)
    result = check(model, twin, sample, inputs, tolerance_for(model))
    if not result.ok:
        return {"onnx": False, "reason": f"parity failed: {result.describe()}"}
    (folder / EXTRAS_DIR).mkdir(exist_ok=True)
    (folder / TWIN_FILE).write_bytes(twin)
    (folder / PARITY_FILE).write_text(sample.to_json(orient="split", index=False))
    return {"onnx": True, "parity": result.describe(), "max_abs_diff": result.max_abs_diff}


def verify_twin(model: LoadedModel) -> str | None:
    """Score a loaded version's stored parity sample natively and through its twin: ``Conflict`` naming the
    largest difference if they disagree, else the parity description (``None`` when it has no twin)."""
    if model.twin is None or model.parity_sample is None:
        return None
    parity = check(model.model, model.twin, model.parity_sample, model.inputs, tolerance_for(model.model))
    if not parity.ok:
        raise Conflict(f"Refusing {model.name} v{model.version}: its ONNX twin disagrees with the model: {parity.describe()}.")
    return parity.describe()
