"""The same workspace code on PostgreSQL: mloop's metadata and MLflow's tracking and registry on the real server."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from mloop.workspace import Workspace
from tests.conftest import deploy, train_and_register

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_workspace_on_postgresql(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_DATABASE_URL", pg_url)
    monkeypatch.setenv("MLOOP_TRACKING_URI", pg_url)
    ws = Workspace.init(tmp_path / "ws")
    assert ws.store.engine.dialect.name == "postgresql"
    assert not (ws.root / "mloop.db").exists() and not (ws.root / "mlflow.db").exists()
    version = train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    assert [d.name for d in ws.store.deployments.list()] == ["toy"]
    assert ws.registry.load("toy", "champion").version == version
    mlflow.set_tracking_uri(pg_url)
    assert len(mlflow.search_runs(experiment_names=["toy"])) == 1
    assert ws.store.manifests.get("toy", version)
    ws.close()
