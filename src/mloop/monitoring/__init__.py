"""Monitoring: the prediction and feedback log, and drift (see ``mloop.monitoring.drift``)."""

from __future__ import annotations

from mloop.monitoring._log import INPUT_PREFIX, LogReader, PredictionLog

__all__ = ["INPUT_PREFIX", "LogReader", "PredictionLog"]
