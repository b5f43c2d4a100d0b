"""Tracking: runs and lineage on MLflow (data fingerprints, code version, environment, seeds)."""

from __future__ import annotations

from mloop.tracking._catalog import CatalogUnavailable, MlflowCatalog, RunSummary, VersionRecord
from mloop.tracking._lineage import CodeVersion, code_version, environment
from mloop.tracking._torch_model import NET_FILE, TORCH_TRUSTED_CLASSES, WEIGHTS_FILE, load_torch_model
from mloop.tracking._tracker import BACKGROUND_FILE, BACKGROUND_LABEL, CARD_FIELDS, CARD_TAG, SKOPS_TRUSTED_TYPES, TrackedRun, Tracker

__all__ = [
    "BACKGROUND_FILE",
    "BACKGROUND_LABEL",
    "CARD_FIELDS",
    "CARD_TAG",
    "NET_FILE",
    "SKOPS_TRUSTED_TYPES",
    "TORCH_TRUSTED_CLASSES",
    "WEIGHTS_FILE",
    "CatalogUnavailable",
    "CodeVersion",
    "MlflowCatalog",
    "RunSummary",
    "TrackedRun",
    "Tracker",
    "VersionRecord",
    "code_version",
    "environment",
    "load_torch_model",
]
