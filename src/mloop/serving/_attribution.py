"""What the monitors are handed from the serving layer: the attribution of a window's prediction shift to input
columns (by the deployment's model, through ``mloop.explain``), and the one way to build a workspace's monitor
runner with it and with the feature ages freshness monitors judge."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from mloop.monitoring import MonitorMetrics, MonitorRunner

if TYPE_CHECKING:
    from mloop.registry import LoadedModel, Registry
    from mloop.serving._features import OnlineFeatures
    from mloop.store import DeploymentRepository
    from mloop.workspace import Workspace

log = logging.getLogger("mloop.monitoring")


class ModelAttribution:
    """``(deployment, reference rows, window rows) -> dict``: which columns moved the deployment's mean output (its
    alias's version), as ``AttributionShift.to_dict()`` plus the model; None when the rows lack the model's columns."""

    def __init__(self, registry: Registry, deployments: DeploymentRepository) -> None:
        self.registry = registry
        self.deployments = deployments
        self._models: dict[tuple[str, int], LoadedModel] = {}

    def __call__(self, deployment: str, reference: pd.DataFrame, window: pd.DataFrame) -> dict[str, Any] | None:
        from mloop.explain import attribution_shift

        dep = self.deployments.get(deployment)
        version = self.registry.resolve(dep.model_name, dep.alias).version
        key = (dep.model_name, version)
        if key not in self._models:
            self._models = {key: self.registry.load(dep.model_name, version)}  # the served version only
        model = self._models[key]
        missing = [c for c in model.feature_names if c not in reference.columns or c not in window.columns]
        if missing:
            log.info("no attribution for %s: the rows lack the model's column(s) %s", deployment, missing)
            return None
        result = attribution_shift(model, reference, window).to_dict()
        return {**result, "model": dep.model_name, "version": version}


def monitor_runner(ws: Workspace, features: OnlineFeatures, *, metrics: MonitorMetrics | None = None) -> MonitorRunner:
    """The workspace's monitor runner, with the feature ages of ``features`` and the deployments' attribution."""
    return MonitorRunner(ws.store, ws.bus, ws.logs_dir, ws.reports_dir, metrics=metrics, webhook_allow=ws.settings.webhook_hosts,
                         feature_ages=features.watched_ages, attribution=ModelAttribution(ws.registry, ws.store.deployments),
                         docs_dir=ws.docs_dir)
