"""Lineage from feature views to runs and models: a pipeline whose ingest reads the feature store records the views and
versions it joined on its runs, the trained model's card lists them, a view bumped by ``features apply`` is recorded at
its new version by the next run (and ``mloop reproduce`` of the first joins the version it recorded), and ``mloop
features lineage VIEW`` lists the runs and the models; an unknown view exits 2; a snapshot of the definitions joins
and reports the same versions whatever is applied meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.cli._app import main
from mloop.errors import NotFound
from mloop.features import FeatureRegistry, load_definitions
from mloop.features._lineage import FeatureSnapshot, record_feature_lineage, training_data, used_views
from mloop.pipelines import Pipeline, Runner
from mloop.pipelines._reproduce import reproduce
from mloop.workspace import Workspace

DEFINITIONS = """entities: [{name: driver, join_keys: [driver_id]}]
feature_views:
  - name: driver_stats
    entities: [driver]
    source: {path: data/driver_stats.parquet, timestamp: event_timestamp}
    features: [{name: f0, dtype: float32}, {name: f1, dtype: float32}]
feature_services: [{name: driver_model, features: ["driver_stats:*"]}]
"""

PIPELINE = """name: drivers
steps:
  - name: data
    ingest: {entities: entities.parquet, service: driver_model}
  - name: split
    split: {input: data, method: stratified, by: y, test: 0.25}
  - name: model
    train: {input: split.train, target: y, params: {max_iter: 20, categorical: []}}
  - name: publish
    register: {model: model, name: drivers, alias: champion}
"""


def feature_project(tmp_path: Path) -> Path:
    """Thirty drivers' hourly stats (f2 in the data, not yet declared), 400 labelled entity rows, the definitions and
    the pipeline."""
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.normal(size=30)
    hours = pd.date_range("2026-01-01", periods=10, freq="h")
    stats = pd.DataFrame([(d + 1, t, b + rng.normal(0, 0.3), rng.normal(), rng.normal()) for d, b in enumerate(base) for t in hours],
                         columns=["driver_id", "event_timestamp", "f0", "f1", "f2"]).astype({"f0": "float32", "f1": "float32", "f2": "float32"})
    stats.to_parquet(folder / "data" / "driver_stats.parquet")
    ids = rng.integers(1, 31, size=400)
    pd.DataFrame({"driver_id": ids, "event_timestamp": hours[0] + pd.to_timedelta(rng.uniform(0.5, 12, size=400), unit="h"),
                  "y": ((base[ids - 1] + rng.normal(0, 0.5, size=400)) > 0).astype(int)}).to_parquet(folder / "entities.parquet")
    (folder / "features.yaml").write_text(DEFINITIONS)
    (folder / "pipeline.yaml").write_text(PIPELINE)
    return folder


def _lineage(ws: Workspace, run_id: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    found = ws.tracker.lineage(run_id)
    return found["feature_views"], found["feature_services"]


@pytest.mark.slow
def test_a_pipeline_records_the_views_it_joined_and_the_cli_lists_runs_and_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = feature_project(tmp_path)
    ws = Workspace.init(tmp_path / "ws")
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(project / "features.yaml")])
    capsys.readouterr()

    first = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert first.ok, first.steps
    v1 = [{"name": "driver_stats", "version": 1, "features": ["f0", "f1"]}]
    assert _lineage(ws, first.run_id) == (v1, [{"name": "driver_model", "version": 1}])  # the pipeline's run
    step_runs = {s.name: s.run_id for s in first.steps}
    for step in ("data", "model"):  # the join, and the training run whose model is registered
        assert _lineage(ws, str(step_runs[step]))[0] == v1
    assert ws.tracker.client.get_run(str(step_runs["model"])).data.tags["mloop.feature_view.driver_stats"] == "1"
    card = ws.registry.card("drivers", 1)
    assert "## Feature views" in card and "| driver_stats | v1 | f0, f1 |" in card and "feature service `driver_model` v1" in card

    (project / "features.yaml").write_text(DEFINITIONS.replace("{name: f1, dtype: float32}]", "{name: f1, dtype: float32}, {name: f2, dtype: float32}]"))
    main([*base, "apply", str(project / "features.yaml")])
    assert "view driver_stats: updated, version 2" in capsys.readouterr().out
    second = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert second.ok and {s.name: s.status for s in second.steps}["data"] == "ran"  # a new view version: joined again
    v2 = [{"name": "driver_stats", "version": 2, "features": ["f0", "f1", "f2"]}]
    assert _lineage(ws, second.run_id)[0] == v2
    assert "| driver_stats | v2 | f0, f1, f2 |" in ws.registry.card("drivers", 2)
    again = reproduce(ws, first.run_id)  # in a scratch workspace, through the versions the run recorded: v1, not the newest
    assert again.verdict == "exact", again.steps

    main([*base, "lineage", "driver_stats", "--json"])
    found = json.loads(capsys.readouterr().out)
    runs = {r["run_id"]: r for r in found["runs"]}
    key = "mloop.feature_view.driver_stats"
    assert ws.tracker.runs_tagged(key) == ws.tracker._runs_tagged(key)  # MLflow's tables read directly answer what its client does
    assert ws.registry.versions_from_runs(runs) == [v for v in ws.registry._versions_through_client("drivers")]
    assert {s.run_id for s in [*first.steps, *second.steps] if s.name in ("data", "model")} | {first.run_id, second.run_id} == set(runs)
    assert runs[first.run_id]["versions"] == [1] and runs[second.run_id]["versions"] == [2]
    assert runs[first.run_id]["experiment"] == "pipeline-drivers" and runs[first.run_id]["started"]
    assert [(m["name"], m["version"], m["aliases"], m["view_versions"]) for m in found["models"]] == [
        ("drivers", 2, ["champion"], [2]), ("drivers", 1, [], [1])]
    main([*base, "lineage", "driver_stats"])
    table = capsys.readouterr().out
    assert first.run_id[:8] in table and "pipeline-drivers" in table and "drivers" in table and "champion" in table
    ws.close()


def test_an_unknown_view_exits_2_naming_the_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = feature_project(tmp_path)
    Workspace.init(tmp_path / "ws").close()
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(project / "features.yaml")])
    with pytest.raises(SystemExit) as exit_:
        main([*base, "lineage", "driver_stat"])
    assert exit_.value.code == 2 and "No feature view 'driver_stat' (views: driver_stats)" in capsys.readouterr().err


def test_a_snapshot_joins_and_reports_the_versions_it_read(tmp_path: Path) -> None:
    project = feature_project(tmp_path)
    ws = Workspace.init(tmp_path / "ws")
    registry = FeatureRegistry(ws.store)
    registry.apply(load_definitions(project / "features.yaml"))
    pinned = FeatureSnapshot(ws.store)
    (project / "features.yaml").write_text(DEFINITIONS.replace("{name: f1, dtype: float32}]", "{name: f1, dtype: float32}, {name: f2, dtype: float32}]"))
    registry.apply(load_definitions(project / "features.yaml"))  # applied after the snapshot was taken
    frame, used = training_data(pinned, pd.read_parquet(project / "entities.parquet"), service="driver_model")
    assert list(frame.columns) == ["driver_id", "event_timestamp", "y", "f0", "f1"]
    assert used == {"views": [{"name": "driver_stats", "version": 1, "features": ["f0", "f1"]}], "service": {"name": "driver_model", "version": 1}}
    assert used_views(registry, features=["driver_stats:f2"])["views"] == [{"name": "driver_stats", "version": 2, "features": ["f2"]}]
    assert FeatureSnapshot(ws.store, {("view", "driver_stats"): 1}).used(["driver_stats:*"])["views"][0]["features"] == ["f0", "f1"]
    with pytest.raises(NotFound, match="has no version 7"):
        FeatureSnapshot(ws.store, {("view", "driver_stats"): 7})
    ws.close()


def test_training_in_your_own_code_records_what_it_joined(tmp_path: Path) -> None:
    project = feature_project(tmp_path)
    ws = Workspace.init(tmp_path / "ws")
    registry = FeatureRegistry(ws.store)
    registry.apply(load_definitions(project / "features.yaml"))
    pinned = FeatureSnapshot(ws.store)
    (project / "features.yaml").write_text(DEFINITIONS.replace("{name: f1, dtype: float32}]", "{name: f1, dtype: float32}, {name: f2, dtype: float32}]"))
    registry.apply(load_definitions(project / "features.yaml"))
    with ws.tracker.start_run("own-training") as run:
        record_feature_lineage(run, pinned, service="driver_model")
        record_feature_lineage(run, registry, features=["driver_stats:f2"])  # a second join: the records add up
    views, services = _lineage(ws, run.run_id)
    assert views == [{"name": "driver_stats", "version": 1, "features": ["f0", "f1"]}, {"name": "driver_stats", "version": 2, "features": ["f2"]}]
    assert services == [{"name": "driver_model", "version": 1}]
    assert ws.tracker.client.get_run(run.run_id).data.tags["mloop.feature_view.driver_stats"] == "1,2"
    ws.close()
