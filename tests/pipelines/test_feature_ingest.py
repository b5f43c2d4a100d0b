"""A feature-store ingest step is checked before anything runs: its section (one source, a service or features, the
options only it takes), its entity rows file, and — against the workspace's definitions — its service or features,
each refused with the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import InvalidInput
from mloop.features import FeatureRegistry, load_definitions
from mloop.pipelines import Pipeline, Runner
from mloop.workspace import Workspace
from tests.features.test_lineage import PIPELINE, feature_project


def test_a_feature_store_ingest_is_checked_with_its_file_and_line(tmp_path: Path) -> None:
    project = feature_project(tmp_path)
    path = project / "bad.yaml"
    for edit, line, message in (
        ((", service: driver_model}", "}"), 4, "name a feature service"),
        (("service: driver_model", "service: driver_model, path: x.parquet"), 4, "exactly one of path"),
        (("{entities: entities.parquet, service: driver_model}", "{path: entities.parquet, service: driver_model}"), 4,
         "service: only a feature-store ingest takes it"),
        (("service: driver_model", "features: [driver_stats]"), 4, "'driver_stats' is not a feature reference"),
        (("entities.parquet", "nowhere.parquet"), 4, "ingest.entities: no file at"),
    ):
        path.write_text(PIPELINE.replace(*edit))
        with pytest.raises(InvalidInput, match=rf"bad.yaml:{line}: .*{message}"):
            Pipeline.load(path)
    ws = Workspace.init(tmp_path / "ws")
    FeatureRegistry(ws.store).apply(load_definitions(project / "features.yaml"))
    path.write_text(PIPELINE.replace("service: driver_model", "service: drivers"))
    with pytest.raises(InvalidInput, match=r"bad.yaml:4: steps\[0\] \(data\).ingest.service: No feature service 'drivers'"):
        Runner(ws).run(Pipeline.load(path))  # before anything runs
    path.write_text(PIPELINE.replace("service: driver_model", "features: ['driver_stats:f9']"))
    with pytest.raises(InvalidInput, match=r"bad.yaml:4: .*ingest.features: .*view 'driver_stats' has no feature 'f9'"):
        Runner(ws).run(Pipeline.load(path))
    ws.close()


@pytest.mark.slow
def test_a_deploy_step_can_fill_a_feature_service(tmp_path: Path) -> None:
    project = feature_project(tmp_path)
    ws = Workspace.init(tmp_path / "ws")
    FeatureRegistry(ws.store).apply(load_definitions(project / "features.yaml"))
    body = PIPELINE.replace("register: {model: model, name: drivers, alias: champion}", "register: {model: model, name: drivers}")
    path = project / "deployed.yaml"
    path.write_text(body + "  - name: serve\n    deploy: {version: publish, deployment: drivers, feature_service: nope}\n")
    with pytest.raises(InvalidInput, match=r"deployed.yaml:\d+: steps\[4\] \(serve\).deploy.feature_service: no feature service 'nope'"):
        Runner(ws).run(Pipeline.load(path))
    assert ws.store.deployments.list() == []  # refused before the alias moved or anything was served
    path.write_text(body + "  - name: serve\n    deploy: {version: publish, deployment: drivers, feature_service: driver_model}\n")
    Runner(ws).run(Pipeline.load(path))
    assert ws.store.deployments.get("drivers").serving.feature_service == "driver_model"
    ws.close()
