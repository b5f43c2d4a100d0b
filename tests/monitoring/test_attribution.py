"""A drift window's report says which input columns moved the deployment's predictions: exact attributions whose
shifts add up to the change in the mean output, with the shifted column first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mloop.monitoring import MonitorRunner, PredictionLog
from mloop.serving import ModelAttribution
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.conftest import TOY_SPEC, register_monitor, toy_frame

pytestmark = pytest.mark.slow  # each test trains, registers and explains a model

T0 = 1_800_000_000.0


def _runner(ws: Workspace, now: float) -> MonitorRunner:
    return MonitorRunner(ws.store, ws.bus, ws.logs_dir, ws.reports_dir, clock=lambda: now,
                         attribution=ModelAttribution(ws.registry, ws.store.deployments))


def _drifted_window(ws: Workspace, tmp_path: Path) -> Any:
    reference = toy_frame(2000, seed=3)[TOY_SPEC.features]
    path = tmp_path / "reference.parquet"
    reference.to_parquet(path)
    register_monitor(ws.store, {"name": "inputs", "deployment": "toy", "reference": {"path": str(path)},
                                "window": {"kind": "count", "size": 600}, "predictions": False, "drift_share": 0.25})
    window = toy_frame(600, seed=4, shift=0.0)[TOY_SPEC.features]
    window["x1"] = window["x1"] + 1.5  # x1 drives the label: the predictions move with it
    log = PredictionLog(ws.logs_dir)
    log.log_predictions("toy", 1, "w", T0, window.reset_index(drop=True), np.full(len(window), 0.5), 1.0)
    log.flush()
    runner = _runner(ws, T0 + 100)
    results = runner.tick()
    runner.close()
    return results, reference, window


def test_the_window_says_which_columns_moved_the_predictions(deployed: Workspace, tmp_path: Path) -> None:
    results, reference, window = _drifted_window(deployed, tmp_path)
    assert len(results) == 1 and results[0].drift and "x1" in results[0].drifted
    summary = deployed.store.monitors.windows(deployed.store.monitors.list()[0].id, last=1)[-1].summary
    attribution = summary["attribution"]
    assert attribution["model"] == "toy" and attribution["version"] == 1 and attribution["method"] == "tree-shap"
    assert attribution["columns"][0]["name"] == "x1" and attribution["columns"][0]["shift"] > 0
    assert abs(sum(c["shift"] for c in attribution["columns"]) - attribution["output_shift"]) < 1e-9
    # The output shift is the model's own: its mean log-odds on the window minus on the reference.
    model = deployed.registry.load("toy", 1)
    raw = lambda frame: np.log(model.score(frame) / (1 - model.score(frame)))  # noqa: E731
    assert abs(raw(window).mean() - raw(reference).mean() - attribution["output_shift"]) < 1e-6


@pytest.mark.browser
def test_the_report_shows_the_attribution_offline(deployed: Workspace, tmp_path: Path) -> None:
    results, _, _ = _drifted_window(deployed, tmp_path)
    seen: dict[str, Any] = {}

    def inspect(page: Any) -> None:
        seen["rows"] = page.locator("#attribution tr").count()
        seen["summary"] = page.inner_text("#attribution-summary")

    errors, requests = open_offline(Path(results[0].report), inspect)
    assert errors == [] and all(u.startswith("file://") for u in requests)
    assert seen["rows"] == 1 + len(TOY_SPEC.features) and "Most of it: x1" in seen["summary"]


def test_rows_without_the_models_columns_get_no_attribution(deployed: Workspace) -> None:
    attribution = ModelAttribution(deployed.registry, deployed.store.deployments)
    assert attribution("toy", pd.DataFrame({"x1": [1.0]}), pd.DataFrame({"x1": [2.0]})) is None
