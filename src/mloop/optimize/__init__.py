"""Optimize: ONNX twins of registered models and the parity check that guards them; edge bundles that run a twin in a
browser."""

from __future__ import annotations

from mloop.optimize._edge import EdgeBundle, ensure_assets, export_edge
from mloop.optimize._hgb_onnx import NotConvertible, convert_hgb
from mloop.optimize._parity import Parity, compare
from mloop.optimize._twin import TOLERANCE, build_twin, check, is_matrix, onnx_feed, session, verify_twin

__all__ = [
    "TOLERANCE",
    "EdgeBundle",
    "NotConvertible",
    "Parity",
    "build_twin",
    "check",
    "compare",
    "ensure_assets",
    "export_edge",
    "convert_hgb",
    "is_matrix",
    "onnx_feed",
    "session",
    "verify_twin",
]
