"""A tabular network registered like every model: PyTorch flavour, signature, rebuilt without pickle, an ONNX twin that
agrees with it, served through ONNX Runtime with the network as fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mloop.errors import InvalidInput
from mloop.training import TabularNet, mlp
from mloop.workspace import Workspace
from tests.conftest import auth_headers, deploy, toy_frame


def _register(ws: Workspace, frame: pd.DataFrame, name: str = "net") -> int:
    with ws.tracker.start_run("nets", seed=0) as run:
        model = mlp(frame, "y", epochs=3, batch_size=64, run=run)
        uri = run.log_sklearn_model(model, frame.drop(columns="y"), labels=frame["y"])
    return ws.registry.register(uri, name, alias="champion").version


def test_a_network_is_registered_rebuilt_without_pickle_and_served_through_its_twin(workspace: Workspace) -> None:
    import yaml

    from mloop.serving import create_app
    from mloop.serving._runtime import runtime_for
    from mloop.tracking import NET_FILE

    frame = toy_frame(1500)
    version = _register(workspace, frame)
    folder = workspace.registry.artifact_dir("net", version)
    assert "pytorch" in yaml.safe_load((folder / "MLmodel").read_text())["flavors"]
    assert (folder / NET_FILE).exists()
    loaded = workspace.registry.load("net", "champion")
    assert loaded.flavour == "pytorch" and isinstance(loaded.model, TabularNet) and loaded.twin is not None
    assert [c.name for c in loaded.inputs] == ["x1", "x2", "x3", "color"]
    params = workspace.tracker.client.get_run(workspace.registry.resolve("net", version).run_id or "").data.params
    assert params["hidden"] == "128,64" and params["batch_size"] == "64"

    rows = frame.drop(columns="y").head(40).copy()
    rows.loc[0, "color"] = "purple"  # a category it never saw
    rows.loc[1, "x2"] = np.nan  # a missing number
    native = loaded.model.predict_proba(rows)
    runtime = runtime_for(loaded)
    assert runtime.kind == "onnx"
    columns = rows.astype(object).where(rows.notna(), None).to_dict("list")  # missing as null, as JSON carries it
    got = runtime.predict([runtime.prepare(columns)])[0]
    np.testing.assert_allclose(got, native, atol=1e-5)
    deploy(workspace, "net", "net", "champion")
    with TestClient(create_app(workspace), headers=auth_headers(workspace)) as client:
        assert client.get("/v2/models/net").json()["platform"] == "mloop-onnx"
        body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.astype(object).where(rows.notna(), None).to_numpy().tolist()}}
        resp = client.post("/invocations", json=body)
        assert resp.status_code == 200
        np.testing.assert_allclose(np.asarray(resp.json()["predictions"]), native, atol=1e-5)
        bad = client.post("/invocations", json={"dataframe_split": {"columns": ["x1"], "data": [[1.0]]}})
        assert bad.status_code == 422 and "x2" in bad.text


def test_the_network_learns_the_task() -> None:
    from mloop.training import auc

    train, test = toy_frame(3000, seed=1), toy_frame(1000, seed=2)
    net = mlp(train, "y", epochs=10, batch_size=64)
    score = auc(test["y"], net.predict_proba(test.drop(columns="y"))[:, 1])
    assert score > 0.8  # the logistic truth behind toy_frame allows about 0.85


def test_recipe_input_is_checked_by_name() -> None:
    frame = toy_frame(200)
    with pytest.raises(InvalidInput, match="target column 'label'"):
        mlp(frame, "label")
    with pytest.raises(InvalidInput, match="layers must be a positive integer") as err:
        mlp(frame, "y", layers=0)
    assert err.value.field == "layers"
    with pytest.raises(InvalidInput, match="single class"):
        mlp(frame.assign(y=1), "y")
    net = mlp(frame, "y", epochs=1)
    with pytest.raises(InvalidInput, match="lacks column"):
        net.predict_proba(frame.drop(columns=["x1", "y"]))
