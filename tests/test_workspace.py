from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import NotFound
from mloop.workspace import Workspace
from tests.conftest import deploy


def test_open_without_init_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="mloop init"):
        Workspace.open(tmp_path / "missing")


def test_init_is_idempotent_and_creates_the_embedded_stores(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    Workspace.init(tmp_path / "ws")
    assert (ws.root / "mloop.db").exists() and (ws.root / "mlflow.db").exists()
    assert ws.tracking_uri == f"sqlite:///{ws.root / 'mlflow.db'}"
    assert Workspace.open(tmp_path / "ws").root == ws.root


def test_mloop_home_selects_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / "home"))
    ws = Workspace.init()
    assert ws.root == (tmp_path / "home").resolve()


def test_deploy_needs_an_existing_alias(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match="Model 'ghost' has no version 'champion'"):
        deploy(workspace, "ghost", "ghost", "champion")
