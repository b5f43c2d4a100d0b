"""Tracking: runs and lineage on MLflow (data fingerprints, code version, environment, seeds)."""

from __future__ import annotations

from mloop.tracking._lineage import CodeVersion, code_version, environment
from mloop.tracking._tracker import SKOPS_TRUSTED_TYPES, RunSummary, TrackedRun, Tracker

__all__ = ["SKOPS_TRUSTED_TYPES", "CodeVersion", "RunSummary", "TrackedRun", "Tracker", "code_version", "environment"]
