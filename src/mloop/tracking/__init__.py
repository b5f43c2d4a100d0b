"""Tracking: runs and lineage on MLflow (data fingerprints, code version, environment, seeds)."""

from __future__ import annotations

from mloop.tracking._catalog import CatalogUnavailable, MlflowCatalog, RunSummary, VersionRecord
from mloop.tracking._lineage import CodeVersion, code_version, environment
from mloop.tracking._tracker import BACKGROUND_FILE, BACKGROUND_LABEL, CARD_FIELDS, CARD_TAG, SKOPS_TRUSTED_TYPES, TrackedRun, Tracker

__all__ = [
    "BACKGROUND_FILE",
    "BACKGROUND_LABEL",
    "CARD_FIELDS",
    "CARD_TAG",
    "SKOPS_TRUSTED_TYPES",
    "CatalogUnavailable",
    "CodeVersion",
    "MlflowCatalog",
    "RunSummary",
    "TrackedRun",
    "Tracker",
    "VersionRecord",
    "code_version",
    "environment",
]
