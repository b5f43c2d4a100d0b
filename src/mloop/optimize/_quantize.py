"""INT8 quantisation of an ONNX twin with ONNX Runtime's quantisation tools: dynamic (weights to INT8, activations
quantised on the fly) or static (activation ranges calibrated on training rows, QDQ format)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mloop.errors import InvalidInput
from mloop.registry._onnx_model import onnx_feed

MODES = ("dynamic", "static")
CALIBRATION_ROWS = 512


def quantize(twin: bytes, inputs: list[Any], *, mode: str = "static", calibration: pd.DataFrame | None = None) -> bytes:
    """The INT8 form of ``twin`` (its MatMul/Gemm weights, and activations for ``static``); ``calibration`` rows
    (the training data's) set the static activation ranges."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if mode not in MODES:
        raise InvalidInput(f"Unknown quantisation mode {mode!r}. Valid: {', '.join(MODES)}.", field="mode")
    with tempfile.TemporaryDirectory(prefix="mloop-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(twin)
        if mode == "dynamic":
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        else:
            if calibration is None or len(calibration) == 0:
                raise InvalidInput("Static quantisation needs calibration rows (the training data's).", field="calibration")
            rows = calibration.sample(min(CALIBRATION_ROWS, len(calibration)), random_state=0).reset_index(drop=True)
            matrix = _is_matrix(twin)

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.batches = iter([onnx_feed(rows.iloc[i : i + 64], inputs, matrix) for i in range(0, len(rows), 64)])

                def get_next(self) -> dict[str, Any] | None:
                    return next(self.batches, None)

            quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=False)
        return dst.read_bytes()


def _is_matrix(twin: bytes) -> bool:
    import onnx

    return [i.name for i in onnx.load_from_string(twin).graph.input] == ["X"]
