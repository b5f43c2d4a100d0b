"""Features at serving time: the online route, a deployment whose requests are filled from a feature service (the model
scores what the store holds, the log records the joined values), the skew check over that log, the freshness series and
the freshness alarm through the monitors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mloop.errors import InvalidInput
from mloop.features import FeatureRegistry, load_definitions, materialize, open_online_store
from mloop.monitoring import LogReader
from mloop.serving import online_features
from mloop.store import ServingConfig
from mloop.training import TabularSpec
from mloop.workspace import Workspace
from tests.conftest import auth_headers, deploy, monitor_runner, register_monitor, run_cli

RUN: dict[str, Any] = {}  # when the module's workspace was made (its data is relative to then) and its first rows
DEFINITIONS = """entities: [{name: driver, join_keys: [driver_id]}]
feature_views:
  - name: driver_stats
    entities: [driver]
    source: {path: driver_stats.parquet, timestamp: event_timestamp, created_timestamp: created}
    ttl: 24h
    features: [{name: f0, dtype: float32}, {name: f1, dtype: float64}]
feature_services: [{name: driver_model, features: ["driver_stats:f0", "driver_stats:f1"]}]
"""
SPEC = TabularSpec(numeric=("trip", "f0", "f1"), categorical=(), target="y")


def _stats(root: Path, rows: list[tuple[int, pd.Timestamp, float]]) -> None:
    """(driver, event time, f0) rows, each known when it happened; f1 = 10 × f0."""
    pd.DataFrame({"driver_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows], "created": [r[1] for r in rows],
                  "f0": np.array([r[2] for r in rows], dtype=np.float32), "f1": [r[2] * 10 for r in rows]}).to_parquet(root / "driver_stats.parquet")




def _first(now: pd.Timestamp) -> list[tuple[int, pd.Timestamp, float]]:
    return [(1, now - pd.Timedelta(hours=3), 0.5), (1, now - pd.Timedelta(hours=2), 1.5), (2, now - pd.Timedelta(hours=2), -1.0)]


def _newest_age_bounds() -> tuple[float, float]:
    """The age the newest row (two hours before the workspace was made) can have now."""
    return 7200.0, 7200.0 + 60.0 + (time.time() - RUN["made"]) + 60.0


def _train(ws: Workspace) -> None:
    from mloop.training import fit

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"trip": rng.normal(size=400), "f0": rng.normal(size=400), "f1": rng.normal(size=400)})
    frame["y"] = (frame["trip"] + frame["f0"] - 0.1 * frame["f1"] + rng.normal(0, 0.5, 400) > 0).astype(int)
    with ws.tracker.start_run("drivers", seed=0) as run:
        uri = run.log_sklearn_model(fit(frame, SPEC, {"max_iter": 20, "max_leaf_nodes": 8}, 0), frame[SPEC.features])
    ws.registry.register(uri, "drivers", alias="champion")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with the definitions applied, materialised up to now, and ``drivers`` deployed filling ``driver_model``."""
    root = tmp_path_factory.mktemp("features-serving")
    now = pd.Timestamp.now(tz="UTC").floor("min")
    RUN.update(now=now, made=time.time(), first=_first(now))
    ws = Workspace.init(root / "ws")
    _stats(root, RUN["first"])
    (root / "features.yaml").write_text(DEFINITIONS)
    registry = FeatureRegistry(ws.store, ws.bus)
    registry.apply(load_definitions(root / "features.yaml"))
    store = open_online_store(workspace_root=ws.root)
    materialize(registry, store, end=now.to_pydatetime())
    store.close()
    _train(ws)
    deploy(ws, "drivers", "drivers", serving=ServingConfig(feature_service="driver_model"))
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def client(served: Workspace) -> Iterator[TestClient]:
    from mloop.serving import create_app

    with TestClient(create_app(served, log_flush_interval=0.05, poll_interval=0.05, monitor_interval=0), headers=auth_headers(served)) as c:
        yield c


def test_the_online_route_reads_a_service_by_columns_or_rows(client: TestClient) -> None:
    got = client.post("/v2/features/driver_model/online", json={"entities": {"driver_id": [1, 2, 7]}})
    assert got.status_code == 200, got.text
    assert got.json() == {"service": "driver_model", "features": {"driver_id": [1, 2, 7], "f0": [1.5, -1.0, None], "f1": [15.0, -10.0, None]}}
    rows = client.post("/v2/features/driver_model/online", json={"entities": [{"driver_id": 2}]})
    assert rows.json()["features"]["f0"] == [-1.0]
    assert "/v2/features/{service}/online" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"entities": {"driver": [1]}}, 422, "driver_id"),
    ({"entities": {"driver_id": []}}, 422, "entities"),
    ({"entities": {"driver_id": [1.5]}}, 422, "driver_id"),
    ({"entities": [{"driver_id": 1}, {"other": 2}]}, 422, "driver_id"),
    ({"keys": {"driver_id": [1]}}, 422, "entities"),
    ("not an object", 422, "entities"),
])
def test_bad_online_requests_name_the_field(client: TestClient, body: object, status: int, field: str) -> None:
    got = client.post("/v2/features/driver_model/online", json=body)
    assert got.status_code == status and got.json()["field"] == field, got.text


def test_an_unknown_service_is_404_and_a_viewer_is_refused(client: TestClient, served: Workspace) -> None:
    missing = client.post("/v2/features/nope/online", json={"entities": {"driver_id": [1]}})
    assert missing.status_code == 404 and "driver_model" in missing.json()["error"]
    key, _ = served.store.api_keys.create("dashboard", "viewer")
    refused = client.post("/v2/features/driver_model/online", json={"entities": {"driver_id": [1]}}, headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403


def test_a_deployment_fills_its_feature_service_and_logs_the_joined_values(client: TestClient, served: Workspace) -> None:
    got = client.post("/models/drivers/invocations", json={"dataframe_records": [{"driver_id": 1, "trip": 0.3}, {"driver_id": 9, "trip": -0.2}]})
    assert got.status_code == 200, got.text
    model = served.registry.load("drivers", 1).model
    want = model.predict_proba(pd.DataFrame({"trip": [0.3, -0.2], "f0": [1.5, np.nan], "f1": [15.0, np.nan]}))
    np.testing.assert_allclose(np.asarray(got.json()["predictions"]), want, rtol=1e-9)
    v2 = client.post("/v2/models/drivers/infer", json={"inputs": [{"name": "driver_id", "shape": [1], "datatype": "INT64", "data": [2]},
                                                              {"name": "trip", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert v2.status_code == 200, v2.text
    reader = LogReader(served.logs_dir)
    for _ in range(100):
        logged = reader.predictions("drivers")
        if len(logged) >= 3:
            break
        time.sleep(0.05)
    logged = logged.sort_values(["ts", "row"]).reset_index(drop=True)
    assert logged["driver_id"].tolist()[:3] == [1, 9, 2] and logged["trip"].tolist()[:3] == [0.3, -0.2, 1.0]
    assert logged["f0"].tolist()[0] == 1.5 and np.isnan(logged["f0"].tolist()[1]) and logged["f1"].tolist()[2] == -10.0


@pytest.mark.parametrize(("record", "field"), [({"trip": 1.0}, "driver_id"), ({"driver_id": 1, "trip": 1.0, "f0": 3.0}, "f0"),
                                               ({"driver_id": 1, "trip": 1.0, "oops": 1}, "oops")])
def test_a_filled_request_must_carry_keys_only_and_no_unknown_field(client: TestClient, record: dict, field: str) -> None:
    got = client.post("/models/drivers/invocations", json={"dataframe_records": [record]})
    assert got.status_code == 422 and got.json()["field"] == field, got.text


def test_deploying_with_an_unknown_feature_service_is_refused(served: Workspace) -> None:
    with pytest.raises(InvalidInput, match="no feature service 'nope'"):
        deploy(served, "other", "drivers", serving=ServingConfig(feature_service="nope"))


def test_the_freshness_series_is_exported(client: TestClient) -> None:
    text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith('mloop_feature_age_seconds{view="driver_stats"}'))
    low, high = _newest_age_bounds()
    assert low <= float(line.split()[-1]) <= high  # the newest row is two hours old


def test_skew_is_none_until_the_source_is_rewritten(client: TestClient, served: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    client.post("/models/drivers/invocations", json={"dataframe_records": [{"driver_id": 1, "trip": 0.0}]})

    for _ in range(100):
        if len(LogReader(served.logs_dir).predictions("drivers")) >= 1:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    code, out, err = run_cli(["--workspace", str(served.root), "features", "skew", "drivers", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert code == 0 and report["rows"] >= 1 and all(f["mismatched"] == 0 for f in report["features"]), out
    root = served.root.parent
    _stats(root, [RUN["first"][0], (1, RUN["first"][1][1], 4.0), RUN["first"][2]])  # history rewritten: driver 1's row of two hours ago
    code, out, _ = run_cli(["--workspace", str(served.root), "features", "skew", "drivers", "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and set(report["skewed"]) == {"f0", "f1"}, out
    f0 = next(f for f in report["features"] if f["feature"] == "f0")
    assert f0["max_abs_diff"] == pytest.approx(2.5) and report["examples"][0]["offline"] == pytest.approx(4.0)
    _stats(root, RUN["first"])


def test_a_freshness_monitor_alarms_when_views_go_stale_and_resolves(tmp_path: Path, served: Workspace) -> None:
    register_monitor(served.store, {"name": "fresh", "deployment": "drivers", "freshness": {"max_age": "1h"}})
    features = online_features(served)
    runner = monitor_runner(served)
    runner.feature_ages = features.watched_ages
    try:
        results = runner.tick()
        fired = [r for r in results if r.monitor == "fresh"]
        assert len(fired) == 1 and fired[0].alarm and fired[0].drifted == ["driver_stats"]
        alert = next(a for a in served.store.alerts.list("drivers") if a["kind"] == "feature_freshness")
        low, high = _newest_age_bounds()
        assert alert["details"]["details"]["stale"] == ["driver_stats"] and low <= alert["details"]["details"]["ages_s"]["driver_stats"] <= high
        assert [r for r in runner.tick() if r.monitor == "fresh"] == []  # still stale: no second alarm
        root = served.root.parent
        _stats(root, [*RUN["first"], (2, pd.Timestamp.now(tz="UTC"), 0.0)])  # a row known after the last materialisation
        store = open_online_store(workspace_root=served.root)
        materialize(FeatureRegistry(served.store), store, end=pd.Timestamp.now(tz="UTC").to_pydatetime())
        store.close()
        resolved = [r for r in runner.tick() if r.monitor == "fresh"]
        assert len(resolved) == 1 and not resolved[0].alarm
    finally:
        runner.close()
        features.close()
        served.store.monitors.remove("drivers", "fresh")


def test_freshness_monitor_config_errors_name_the_field(served: Workspace) -> None:
    with pytest.raises(InvalidInput) as bad:
        register_monitor(served.store, {"name": "f", "deployment": "drivers", "freshness": {"max_age": "soon"}})
    assert bad.value.field == "freshness.max_age"
    with pytest.raises(InvalidInput, match="freshness monitor takes no window"):
        register_monitor(served.store, {"name": "f", "deployment": "drivers", "freshness": {"max_age": 60}, "window": {"kind": "streaming"}})


def test_mloop_deploy_sets_and_clears_the_feature_service(served: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--workspace", str(served.root), "deploy", "drivers-cli", "--model", "drivers", "--version", "1", "--alias", "cli"]
    code, _, err = run_cli([*base, "--feature-service", "nope"], capsys)
    assert code == 2 and "no feature service 'nope'" in err
    assert "drivers-cli" not in {d.name for d in served.store.deployments.list()}  # nothing half-done
    code, out, err = run_cli([*base, "--feature-service", "driver_model"], capsys)
    assert code == 0, err
    assert served.store.deployments.get("drivers-cli").serving.feature_service == "driver_model" and "driver_model" in out
    code, _, err = run_cli([*base, "--feature-service", ""], capsys)
    assert code == 0 and served.store.deployments.get("drivers-cli").serving.feature_service is None, err
