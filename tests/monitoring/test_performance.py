"""Accuracy per slice with intervals and fairness over labelled windows: the slice the model is worst on is
flagged, its interval wholly below the overall accuracy; Fairlearn's differences are reported; the window is one
offline HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mloop.errors import InvalidInput
from mloop.monitoring import MonitorRunner, PredictionLog, parse_monitor
from mloop.monitoring._performance import hanley_mcneil, performance_report, wilson
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.conftest import register_monitor

T0 = 1_800_000_000.0


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Scores that ignore group a's offset: the model is worse on a."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n)
    x = rng.normal(size=n)
    truth = 1 / (1 + np.exp(-(2 * x + np.where(group == "a", 2.5, 0.0))))
    labels = (rng.random(n) < truth).astype(int)
    return 1 / (1 + np.exp(-2 * x)), labels, pd.DataFrame({"group": group.astype(object), "x": x})


def test_the_slice_the_model_is_worst_on_is_flagged() -> None:
    scores, labels, columns = _data(3000, 0)
    report = performance_report(scores, labels, columns, groups=["group"], sensitive=["group"])
    assert [(s["column"], s["value"]) for s in report["worst"]] == [("group", "a")]
    assert report["overall"]["auc_ci"][0] < report["overall"]["auc"] < report["overall"]["auc_ci"][1]
    by_x = performance_report(scores, labels, columns, groups=["x"], sensitive=[])
    x_slices = [s for s in by_x["slices"] if s["column"] == "x"]
    assert len(x_slices) == 4 and sum(s["rows"] for s in x_slices) == 3000  # quantile bins cover every row
    fairness = report["fairness"]["group"]
    rates = {g: m["selection_rate"] for g, m in fairness["by_group"].items()}
    assert abs(fairness["demographic_parity_difference"] - (max(rates.values()) - min(rates.values()))) < 1e-12


def test_intervals_cover_at_their_level() -> None:
    """Wilson's 95 % interval for accuracy and Hanley–McNeil's for AUC cover the truth about 95 % of the time."""
    rng = np.random.default_rng(1)
    wilson_hits = auc_hits = 0
    runs = 400
    for _ in range(runs):
        n = 300
        wilson_hits += (lambda lo_hi: lo_hi[0] <= 0.7 <= lo_hi[1])(wilson(int((rng.random(n) < 0.7).sum()), n))
        labels = (rng.random(n) < 0.4).astype(int)
        scores = rng.normal(labels * 1.0, 1.0)  # true AUC: Φ(1/√2) = 0.7602
        from mloop.monitoring._performance import _auc

        low, high = hanley_mcneil(_auc(labels, scores), int(labels.sum()), int(n - labels.sum()))
        auc_hits += low <= 0.7602 <= high
    assert 0.91 <= wilson_hits / runs <= 0.99 and 0.90 <= auc_hits / runs <= 0.99


def test_the_config_needs_a_count_window_and_columns() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_monitor({"name": "s", "deployment": "d", "window": {"kind": "daily"}, "performance": {"groups": ["g"]}})
    assert "count window" in err.value.message
    with pytest.raises(InvalidInput) as err:
        parse_monitor({"name": "s", "deployment": "d", "window": {"kind": "count", "size": 100}, "performance": {}})
    assert "groups" in err.value.message


@pytest.mark.browser
def test_a_labelled_window_is_scored_and_reported(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    with ws.store.transaction() as conn:
        ws.store.deployments.upsert(conn, "dep", model_name="m", alias="champion")
    register_monitor(ws.store, {"name": "slices", "deployment": "dep", "window": {"kind": "count", "size": 1000},
                                "performance": {"groups": ["group"], "sensitive": ["group"]}})
    scores, labels, columns = _data(2500, 2)
    log = PredictionLog(ws.logs_dir)
    for i in range(0, 2500, 50):  # requests of 50 rows, each labelled a second later
        log.log_predictions("dep", 1, f"r{i}", T0 + i, columns.iloc[i:i + 50].reset_index(drop=True), scores[i:i + 50], 1.0)
        log.log_feedback("dep", f"r{i}", labels[i:i + 50].astype(float).tolist(), T0 + i + 1)
    log.flush()
    runner = MonitorRunner(ws.store, ws.bus, ws.logs_dir, ws.reports_dir, clock=lambda: T0 + 10_000)
    results = runner.tick()
    assert [r.rows for r in results] == [1000, 1000]  # 500 rows wait for the next window
    assert results[0].drifted == ["group=a"]
    assert runner.tick() == []  # nothing new
    runner.close()
    seen: dict[str, Any] = {}

    def inspect(page: Any) -> None:
        seen["worst"] = page.inner_text("#worst-summary")
        seen["rows"] = page.locator("#slices tr.worst").count()
        seen["fairness"] = page.locator("#fairness-group tr").count()

    errors, requests = open_offline(Path(results[0].report or ""), inspect)
    assert errors == [] and all(u.startswith("file://") for u in requests)
    assert seen["worst"].startswith("Worst: group = a") and seen["rows"] == 1 and seen["fairness"] == 4
    ws.close()
