"""Each native runtime answers exactly what MLflow's pyfunc answers for the same registered model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mloop.serving import create_app
from mloop.serving._runtime import runtime_for
from mloop.tracking import TrackedRun
from mloop.workspace import Workspace
from tests.conftest import auth_headers, deploy

X = pd.DataFrame(np.random.default_rng(0).normal(size=(400, 4)), columns=["a", "b", "c", "d"])
Y = (X["a"] + X["b"] > 0).astype(int)


def _lgb_booster(run: TrackedRun) -> str:
    import lightgbm as lgb
    import mlflow.lightgbm

    return run.log_model(mlflow.lightgbm, lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, Y), 10), input_example=X.head(3))


def _lgb_classifier(run: TrackedRun) -> str:
    import lightgbm as lgb
    import mlflow.lightgbm

    return run.log_model(mlflow.lightgbm, lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, Y), input_example=X.head(3))


def _xgb_booster(run: TrackedRun) -> str:
    xgb = pytest.importorskip("xgboost")
    import mlflow.xgboost

    return run.log_model(mlflow.xgboost, xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, Y), 10), input_example=X.head(3))


def _xgb_classifier(run: TrackedRun) -> str:
    xgb = pytest.importorskip("xgboost")
    import mlflow.xgboost

    return run.log_model(mlflow.xgboost, xgb.XGBClassifier(n_estimators=10).fit(X, Y), input_example=X.head(3))


@pytest.mark.parametrize(
    ("log", "kind"),
    [(_lgb_booster, "lightgbm"), (_lgb_classifier, "lightgbm"), (_xgb_booster, "xgboost"), (_xgb_classifier, "xgboost")],
    ids=["lightgbm-booster", "lightgbm-sklearn", "xgboost-booster", "xgboost-sklearn"],
)
def test_native_runtime_matches_pyfunc(workspace: Workspace, log: Callable[[TrackedRun], str], kind: str) -> None:
    with workspace.tracker.start_run("runtimes") as run:
        uri = log(run)
    workspace.registry.register(uri, "m", alias="champion")
    deploy(workspace, "m", "m", "champion")
    expected = mlflow.pyfunc.load_model(str(workspace.registry.artifact_dir("m", 1))).predict(X.head(20))
    runtime = runtime_for(workspace.registry.load("m", "champion"))
    assert runtime.kind == kind
    got = runtime.predict([runtime.prepare(X.head(20).to_dict("list"))])[0]
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-7)
    with TestClient(create_app(workspace), headers=auth_headers(workspace)) as client:
        assert client.get("/v2/models/m").json()["platform"] == f"mloop-{kind}"
        resp = client.post("/invocations", json={"dataframe_split": {"columns": list(X.columns), "data": X.head(20).to_numpy().tolist()}})
        assert resp.status_code == 200
        np.testing.assert_allclose(np.asarray(resp.json()["predictions"]), np.asarray(expected), atol=1e-7)


def test_deploy_refuses_a_twin_that_disagrees(workspace: Workspace) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mloop.errors import Conflict
    from mloop.optimize import convert_hgb, verify_twin
    from mloop.registry import TWIN_FILE, ColumnSpec
    from mloop.security import build_manifest

    with workspace.tracker.start_run("runtimes") as run:
        uri = run.log_sklearn_model(HistGradientBoostingClassifier(max_iter=20).fit(X, Y), X)
    version = workspace.registry.register(uri, "h", alias="champion").version
    assert verify_twin(workspace.registry.load("h", version))
    # Someone holding the workspace key swaps in a different twin and re-records and re-signs the manifest:
    # digests and signature now match (without the key the signature check refuses first, see
    # tests/security), but the twin no longer agrees with the model.
    files = workspace.registry.artifact_dir("h", version)
    other = HistGradientBoostingClassifier(max_iter=3).fit(X, 1 - Y)
    (files / TWIN_FILE).write_bytes(convert_hgb(other, [ColumnSpec(c, "double") for c in X.columns]))
    import json

    import sqlalchemy as sa

    from mloop.security import sign_manifest
    from mloop.store import manifest_digest
    from mloop.store._schema import model_manifests

    manifest = build_manifest(files)
    kid, key = workspace.keyring.signing_key()
    with workspace.store.transaction() as conn:
        conn.execute(sa.update(model_manifests).values(manifest=json.dumps(manifest, sort_keys=True), manifest_sha256=manifest_digest(manifest),
                                                       signature=sign_manifest(key, "h", version, manifest), key_id=kid))
    with pytest.raises(Conflict, match=r"ONNX twin disagrees with the model: max \|native - onnx\| = .* at row \d+"):
        deploy(workspace, "h", "h", "champion")


def test_onnx_failure_falls_back_to_the_native_model_and_is_counted(workspace: Workspace) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    with workspace.tracker.start_run("runtimes") as run:
        model = HistGradientBoostingClassifier(max_iter=20).fit(X, Y)
        uri = run.log_sklearn_model(model, X)
    workspace.registry.register(uri, "h", alias="champion")
    deploy(workspace, "h", "h", "champion")
    with TestClient(create_app(workspace), headers=auth_headers(workspace)) as client:
        runtime = client.app.state.hub.get("h").baseline.runtime  # type: ignore[attr-defined]
        assert runtime.kind == "onnx"

        class Broken:
            def run(self, *args: Any) -> Any:
                raise RuntimeError("onnxruntime exploded")

        runtime._session = Broken()
        body = {"dataframe_split": {"columns": list(X.columns), "data": X.head(3).to_numpy().tolist()}}
        resp = client.post("/invocations", json=body)
        assert resp.status_code == 200
        np.testing.assert_allclose(resp.json()["predictions"], model.predict_proba(X.head(3)), atol=1e-9)
        assert client.get("/v2/models/h/stats").json()["versions"]["1"]["fallbacks"] == 1
        assert 'mloop_runtime_fallbacks_total{deployment="h",version="1"} 1.0' in client.get("/metrics").text


@pytest.mark.slow
def test_a_slow_onnx_batch_is_aborted_and_answered_natively(workspace: Workspace) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mloop.store import ServingConfig

    with workspace.tracker.start_run("runtimes") as run:
        model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=63).fit(X, Y)
        uri = run.log_sklearn_model(model, X)
    workspace.registry.register(uri, "h", alias="champion")
    deploy(workspace, "h", "h", "champion", serving=ServingConfig(runtime_timeout_ms=1, max_batch_size=100_000))
    big = pd.concat([X] * 500, ignore_index=True)  # 200,000 rows: far more than 1 ms of ONNX work
    with TestClient(create_app(workspace), headers=auth_headers(workspace)) as client:
        resp = client.post("/invocations", json={"dataframe_split": {"columns": list(X.columns), "data": big.to_numpy().tolist()}})
        assert resp.status_code == 200
        np.testing.assert_allclose(resp.json()["predictions"][:400], model.predict_proba(X), atol=1e-9)
        assert client.get("/v2/models/h/stats").json()["versions"]["1"]["fallbacks"] == 1
