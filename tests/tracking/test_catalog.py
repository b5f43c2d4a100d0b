"""The direct reads of MLflow's store answer exactly what MLflow's client answers (this test is what keeps them
honest across MLflow releases), and a store they cannot read falls back to the client."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.tracking import CatalogUnavailable, MlflowCatalog
from mloop.workspace import Workspace
from tests.conftest import train_and_register

pytestmark = pytest.mark.slow  # each test tracks and registers models to compare the direct reads with MLflow


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.init(tmp_path_factory.mktemp("catalog") / "ws")
    train_and_register(ws, name="alpha", alias="champion", seed=0)
    train_and_register(ws, name="alpha", alias="challenger", seed=1)
    train_and_register(ws, name="alpha", alias=None, seed=2)
    train_and_register(ws, name="beta", alias="champion", seed=3)
    ws.registry.set_alias("alpha", "champion", 3)
    ws.tracker.client.delete_model_version("alpha", "2")  # deleted versions are not listed
    with ws.tracker.start_run("empty", run_name="nothing-logged"):
        pass
    return ws


def test_registry_reads_match_the_client(ws: Workspace) -> None:
    registry, client = ws.registry, ws.tracker.client
    direct = registry.list_models()
    through_client = registry._list_models_through_client()
    assert direct == through_client
    assert direct == [
        {"name": "alpha", "latest_version": 3, "versions": 2, "aliases": {"champion": 3}},
        {"name": "beta", "latest_version": 1, "versions": 1, "aliases": {"champion": 1}},
    ]
    for name in ("alpha", "beta", "nope"):
        assert registry.versions(name) == registry._versions_through_client(name)
    for name, ref in (("alpha", 1), ("alpha", "3"), ("alpha", "champion"), ("alpha", "latest"), ("beta", "champion")):
        assert registry.resolve(name, ref) == registry._resolve_through_client(name, ref, str(ref).isdigit())
    assert registry.resolve("alpha", "champion").manifest_sha256 == client.get_model_version("alpha", "3").tags["mloop.manifest_sha256"]


@pytest.mark.parametrize(("name", "ref"), [("alpha", 2), ("alpha", "challenger"), ("alpha", "nope"), ("zeta", "latest"), ("zeta", 1)])
def test_missing_versions_are_not_found_either_way(ws: Workspace, name: str, ref: str | int) -> None:
    from mloop.errors import NotFound

    with pytest.raises(NotFound):
        ws.registry.resolve(name, ref)
    with pytest.raises(NotFound):
        ws.registry._resolve_through_client(name, ref, str(ref).isdigit())


def test_run_reads_match_the_client(ws: Workspace) -> None:
    direct = ws.tracker.list_runs(max_results=100)
    assert direct == ws.tracker._list_runs(None, 100)
    assert {r.experiment for r in direct} == {"toy", "empty"} and len(direct) == 5
    assert ws.tracker.list_runs("empty") == ws.tracker._list_runs("empty", 100)
    assert [r.name for r in ws.tracker.list_runs("toy", max_results=2)] == [r.name for r in ws.tracker._list_runs("toy", 2)]


def test_a_store_it_cannot_read_falls_back_to_the_client(tmp_path: Path, ws: Workspace) -> None:
    with pytest.raises(CatalogUnavailable):
        MlflowCatalog("file:///tmp/mlruns")
    import sqlite3

    missing = MlflowCatalog(f"sqlite:///{tmp_path / 'not-yet.db'}")  # read-only: it does not create the file
    with pytest.raises(CatalogUnavailable) as info:
        missing.model_names()
    assert not info.value.lasting and not (tmp_path / "not-yet.db").exists()
    sqlite3.connect(tmp_path / "not-mlflow.db").execute("CREATE TABLE other (x INTEGER)").connection.commit()
    empty = MlflowCatalog(f"sqlite:///{tmp_path / 'not-mlflow.db'}")  # no MLflow tables: another schema
    with pytest.raises(CatalogUnavailable) as info:
        empty.model_names()
    assert info.value.lasting
    ws.tracker._catalog = empty
    try:
        assert [m["name"] for m in ws.registry.list_models()] == ["alpha", "beta"]  # answered by the client
        assert ws.tracker._catalog is None  # and the view is not tried again
    finally:
        ws.tracker._catalog = False


def test_mlflow_workspaces_are_left_to_the_client(monkeypatch: pytest.MonkeyPatch, ws: Workspace) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    with pytest.raises(CatalogUnavailable, match="workspaces"):
        MlflowCatalog(ws.tracking_uri)
