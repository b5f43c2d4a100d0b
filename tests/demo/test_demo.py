from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest

from mloop.demo import DemoConfig, run_demo
from mloop.workspace import Workspace
from tests.browser import open_offline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = tmp_path_factory.mktemp("demo") / "ws"
    cfg = DemoConfig(sample=0.04, trials=2, last_month=7)
    first = run_demo(ws, cfg)
    second = run_demo(ws, cfg)
    return ws, first, second


def test_demo_walks_the_whole_loop(demo_runs) -> None:  # type: ignore[no-untyped-def]
    ws_path, first, _ = demo_runs
    assert [w.month for w in first.windows] == [3, 4, 5, 6, 7]
    assert all(w.rows > 0 and w.labelled > 0 for w in first.windows)
    assert all(math.isfinite(w.auc_served) and 0.5 < w.auc_served <= 1 for w in first.windows)
    assert all(0 <= w.drift_share <= 1 for w in first.windows)
    assert first.report.exists() and first.report.parent == ws_path.resolve() / "reports"
    ws = Workspace.open(ws_path)
    assert ws.registry.resolve("flights", "champion").version >= 1
    mlflow.set_tracking_uri(ws.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["flights"])
    assert (runs["tags.mlflow.runName"] == "initial-jan-feb").sum() == 2
    assert runs["tags.mloop.dataset.training.sha256"].notna().all()
    served_versions = {v for w in first.windows for v in w.versions}
    assert served_versions == set(range(1, max(served_versions) + 1)) or 1 in served_versions


def test_demo_runs_twice_in_one_workspace(demo_runs) -> None:  # type: ignore[no-untyped-def]
    ws_path, first, second = demo_runs
    assert second.report != first.report and second.report.exists()
    assert min(v["version"] for v in second.versions) > max(v["version"] for v in first.versions)
    assert list((ws_path / "logs" / "archive").iterdir()), "the first replay's log was archived, not deleted"


@pytest.mark.browser
def test_report_renders_offline_in_chromium(demo_runs) -> None:  # type: ignore[no-untyped-def]
    _, first, _ = demo_runs
    html = first.report.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html

    def inspect(page) -> None:  # type: ignore[no-untyped-def]
        assert page.title().startswith("mloop demo")
        assert page.locator("#timeline tr").count() == 1 + len(first.windows)
        assert page.locator("svg polyline").count() == 2
        assert page.locator("#mean-served").inner_text() != "—"

    errors, requests = open_offline(first.report, inspect)
    assert errors == []
    assert all(u.startswith("file://") for u in requests)
