from __future__ import annotations

import math
import os
from pathlib import Path

import mlflow
import pytest

from mloop.demo import DemoConfig, run_demo
from mloop.workspace import Workspace

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"


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
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing at /usr/bin/chromium; .ci/run installs it.")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _, first, _ = demo_runs
    html = first.report.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(first.report.as_uri())
        assert page.title().startswith("mloop demo")
        assert page.locator("#timeline tr").count() == 1 + len(first.windows)
        assert page.locator("svg polyline").count() == 2
        assert page.locator("#mean-served").inner_text() != "—"
        browser.close()
    assert errors == []
    assert all(u.startswith("file://") for u in requests)
