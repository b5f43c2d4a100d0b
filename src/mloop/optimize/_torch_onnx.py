"""A tabular network → ONNX with the same inputs as every other mloop twin: one ``[n, 1]`` tensor per column (float64
numbers, strings for categories), so ONNX Runtime serves it through the same feed. The network itself goes through
PyTorch's exporter; the category lookup in front of it is ONNX-ML's ``LabelEncoder`` (unknown or missing → code 0,
as the network's own encoding does), merged into one graph with ``onnx.compose``."""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from mloop.optimize._hgb_onnx import NotConvertible

_ML = "ai.onnx.ml"
OPSET = 18


def _export(module: Any, example: tuple[Any, ...], names: list[str]) -> Any:
    """The module as an ONNX model with a dynamic batch axis (PyTorch's TorchScript exporter: fast, no extra
    dependency; the torch.export-based one where that is the only one left)."""
    import onnx
    import torch

    buffer = io.BytesIO()
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, example, buffer, dynamo=False, input_names=names, output_names=["probabilities"],  # type: ignore[arg-type]
                              opset_version=OPSET, dynamic_axes={**{n: {0: "n"} for n in names}, "probabilities": {0: "n"}})
            return onnx.load_from_string(buffer.getvalue())
        except (TypeError, RuntimeError, AttributeError):  # a PyTorch without the TorchScript exporter
            dim = torch.export.Dim("n")
            program = torch.onnx.export(module, example, dynamo=True, input_names=names, output_names=["probabilities"], opset_version=OPSET,
                                        dynamic_shapes=tuple({0: dim} for _ in names), verbose=False)
            if program is None:
                raise NotConvertible("PyTorch's exporter returned no ONNX program for the network.") from None
            return program.model_proto


class _Probabilities:
    """Wraps a network so that the exported graph gives softmax probabilities from whichever of num / cat it takes."""

    @staticmethod
    def build(net: Any) -> Any:
        import torch

        class Probabilities(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, *parts: torch.Tensor) -> torch.Tensor:
                num = parts[0] if net.numeric else torch.zeros((parts[0].shape[0], 0))
                cat = parts[-1] if net.categorical else torch.zeros((parts[0].shape[0], 0), dtype=torch.int64)
                return torch.softmax(self.net(num, cat), dim=1)

        return Probabilities()


def convert_net(net: Any, inputs: list[Any]) -> bytes:
    """ONNX bytes for a :class:`~mloop.training.TabularNet`: per-column inputs, output ``probabilities`` (float32)."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    if not hasattr(net, "numeric") or not hasattr(net, "vocab"):
        raise NotConvertible(f"No ONNX converter for the network {type(net).__name__}; mloop converts its TabularNet.")
    types = {c.name: c.type for c in inputs}
    missing = [c for c in [*net.numeric, *net.categorical] if c not in types]
    if missing:
        raise NotConvertible(f"The network uses column {missing[0]!r}, which its signature lacks.")
    example, names = [], []
    if net.numeric:
        example.append(torch.zeros((2, len(net.numeric)), dtype=torch.float32))
        names.append("num")
    if net.categorical:
        example.append(torch.zeros((2, len(net.categorical)), dtype=torch.int64))
        names.append("cat")
    core = _export(_Probabilities.build(net), tuple(example), names)
    nodes: list[Any] = []
    graph_inputs: list[Any] = []
    for col in net.numeric:
        if types[col] not in ("double", "float", "long", "integer"):
            raise NotConvertible(f"Column {col!r} of type {types[col]!r} has no numeric ONNX input.")
        graph_inputs.append(helper.make_tensor_value_info(col, TensorProto.DOUBLE, [None, 1]))
    if net.numeric:
        nodes.append(helper.make_node("Concat", list(net.numeric), ["num64"], axis=1))
        nodes.append(helper.make_node("Cast", ["num64"], ["num"], to=TensorProto.FLOAT))
    for col in net.categorical:
        graph_inputs.append(helper.make_tensor_value_info(col, TensorProto.STRING, [None, 1]))
        levels = net.vocab[col]
        nodes.append(helper.make_node(
            "LabelEncoder", [col], [f"{col}__code"], domain=_ML,
            keys_tensor=helper.make_tensor("keys", TensorProto.STRING, [len(levels)], [v.encode() for v in levels]),
            values_tensor=numpy_helper.from_array(np.arange(1, len(levels) + 1, dtype=np.int64), "values"),
            default_tensor=numpy_helper.from_array(np.array([0], dtype=np.int64), "default"),
        ))
    if net.categorical:
        nodes.append(helper.make_node("Concat", [f"{c}__code" for c in net.categorical], ["cat"], axis=1))
    prep_outputs = [helper.make_tensor_value_info("num", TensorProto.FLOAT, [None, len(net.numeric)])] if net.numeric else []
    if net.categorical:
        prep_outputs.append(helper.make_tensor_value_info("cat", TensorProto.INT64, [None, len(net.categorical)]))
    opsets = {o.domain: o.version for o in core.opset_import}
    prep = helper.make_model(helper.make_graph(nodes, "mloop_prep", graph_inputs, prep_outputs),
                             opset_imports=[helper.make_opsetid("", opsets.get("", OPSET)), helper.make_opsetid(_ML, 5)])
    prep.ir_version = core.ir_version
    core.opset_import.append(helper.make_opsetid(_ML, 5))
    merged = onnx.compose.merge_models(prep, core, io_map=[(n, n) for n in names])
    unique = {o.domain: o.version for o in merged.opset_import}  # merging lists each domain once per side: keep one
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in unique.items())
    onnx.checker.check_model(merged)
    return bytes(merged.SerializeToString())
