"""Documents written by their events: a finished run's experiment document, a deployment's guide, an alarm's drift
analysis, the installation's; listed, shown and opened from the command line; every HTML page works offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mloop.documents import DocumentStore
from mloop.monitoring import PredictionLog
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.conftest import TOY_SPEC, register_monitor, run_cli, toy_frame

T0 = 1_800_000_000.0


def test_a_finished_run_writes_its_experiment_document_and_a_child_run_does_not(workspace: Workspace) -> None:
    with workspace.tracker.start_run("churn", run_name="baseline", seed=3) as run:
        run.describe(intended_use="Predict churn for the retention team.")
        run.log_params({"max_iter": 50})
        run.log_metrics({"valid_auc": 0.77})
        with workspace.tracker.start_run("churn", run_name="trial-0", parent=run):
            pass
        run_id = run.run_id
    docs = DocumentStore(workspace.docs_dir).list("experiment")
    assert len(docs) == 1 and docs[0].title == "Experiment churn: run baseline"
    text = docs[0].markdown.read_text()
    assert "Predict churn for the retention team." in text and "| max_iter | 50 |" in text and "| valid_auc | 0.77 |" in text
    assert f"mloop reproduce {run_id}" in text and "| seed | 3 |" in text


def test_deploying_writes_a_guide_for_the_deployments_columns(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    guides = DocumentStore(deployed.docs_dir).list("deployment")
    assert [g.title for g in guides] == ["Deployment guide: toy"]
    text = guides[0].markdown.read_text()
    for column in TOY_SPEC.features:
        assert f'"{column}":' in text  # the examples carry this deployment's columns
    assert "curl -s localhost:8080/models/toy/invocations" in text and "import httpx" in text
    assert "mloop rollout rollback toy" in text and "No monitors yet" in text
    code, out, _ = run_cli(["--workspace", str(deployed.root), "docs", "list"], capsys)
    assert code == 0 and "deployment/toy-v1" in out
    code, out, _ = run_cli(["--workspace", str(deployed.root), "docs", "show", "deployment/toy"], capsys)
    assert code == 0 and "# Deployment guide: toy" in out
    code, _, err = run_cli(["--workspace", str(deployed.root), "docs", "show", "../etc/passwd"], capsys)
    assert code == 2 and "kind" in err


def _alarm(ws: Workspace, tmp_path: Path) -> None:
    from mloop.serving import monitor_runner, online_features

    reference = toy_frame(1500, seed=3)[TOY_SPEC.features]
    reference.to_parquet(tmp_path / "reference.parquet")
    register_monitor(ws.store, {"name": "inputs", "deployment": "toy", "reference": {"path": str(tmp_path / "reference.parquet")},
                                "window": {"kind": "count", "size": 500}, "predictions": False, "drift_share": 0.25})
    window = toy_frame(500, seed=5)[TOY_SPEC.features]
    window["x1"] += 1.5
    log = PredictionLog(ws.logs_dir)
    log.log_predictions("toy", 1, "w", T0, window.reset_index(drop=True), np.full(500, 0.5), 1.0)
    log.flush()
    features = online_features(ws)
    runner = monitor_runner(ws, features)
    runner.clock = lambda: T0 + 100
    assert [r.alarm for r in runner.tick()] == [True]
    runner.close()
    features.close()


@pytest.mark.slow
def test_an_alarm_writes_its_drift_analysis(deployed: Workspace, tmp_path: Path) -> None:
    _alarm(deployed, tmp_path)
    analyses = DocumentStore(deployed.docs_dir).list("drift")
    assert len(analyses) == 1
    text = analyses[0].markdown.read_text()
    assert "## Method and thresholds" in text and "| x1 | ks |" in text
    assert "## What moved the predictions" in text and "mostly through `x1`" in text
    assert "No retraining policy listens to monitor `inputs`" in text


def test_the_installation_document(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--workspace", str(workspace.root), "docs", "infra"], capsys)
    assert code == 0 and "infra/installation" in out
    text = DocumentStore(workspace.docs_dir).get("infra/installation").markdown.read_text()
    assert "mloop.db" in text and ".backup" in text and "## Restore" in text and "authentication | on" in text


@pytest.mark.slow
@pytest.mark.browser
def test_every_document_opens_offline(deployed: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _alarm(deployed, tmp_path)
    run_cli(["--workspace", str(deployed.root), "docs", "infra"], capsys)
    docs = DocumentStore(deployed.docs_dir).list()
    assert {d.kind for d in docs} == {"experiment", "deployment", "drift", "infra"}
    for doc in docs:
        seen: dict[str, Any] = {}
        errors, requests = open_offline(doc.html, lambda page, seen=seen: seen.update(h1=page.inner_text("h1"), tables=page.locator("table").count()))
        assert errors == [] and all(u.startswith("file://") for u in requests), doc.id
        assert seen["h1"] == doc.title and seen["tables"] >= 1
