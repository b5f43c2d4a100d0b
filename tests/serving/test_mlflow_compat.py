"""MLflow clients keep working: for the same model and body, mloop answers what MLflow's own scoring server answers."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow.pyfunc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow.pyfunc import scoring_server

from mloop.serving import create_app
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, auth_headers, deploy, toy_frame, train_and_register

ROWS = toy_frame(5, seed=11)[list(TOY_SPEC.features)]
BODIES = {
    "dataframe_split": {"dataframe_split": {"columns": list(ROWS.columns), "data": ROWS.to_numpy().tolist()}},
    "dataframe_split_with_index": {"dataframe_split": {"index": list(range(5)), "columns": list(ROWS.columns), "data": ROWS.to_numpy().tolist()}},
    "dataframe_records": {"dataframe_records": ROWS.to_dict("records")},
    "instances": {"instances": ROWS.to_dict("records")},
    "inputs_records": {"inputs": ROWS.to_dict("records")},
    "inputs_columns": {"inputs": ROWS.to_dict("list")},
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    ws = Workspace.init(tmp_path_factory.mktemp("compat") / "ws")
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    mlflow.set_tracking_uri(ws.tracking_uri)
    reference = scoring_server.init(mlflow.pyfunc.load_model("models:/toy/1"))
    with TestClient(create_app(ws), headers=auth_headers(ws)) as ours, TestClient(reference) as theirs:
        yield ours, theirs
    ws.close()


@pytest.mark.parametrize("fmt", list(BODIES))
def test_same_answer_as_mlflow_scoring_server(pair: tuple[TestClient, TestClient], fmt: str) -> None:
    ours, theirs = pair
    a = ours.post("/invocations", json=BODIES[fmt])
    b = theirs.post("/invocations", json=BODIES[fmt])
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert set(a.json()) == set(b.json()) == {"predictions"}
    np.testing.assert_allclose(np.asarray(a.json()["predictions"]), np.asarray(b.json()["predictions"]), atol=1e-9)
    assert a.headers["x-model-version"] == "1"
