"""``POST /v2/models/{name}/explain``: attributions that add up to the output, on the scale the answer names, from
inference's request formats; the same validation and roles as inference; in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, auth_headers, toy_frame

ROWS = toy_frame(5, seed=11)[list(TOY_SPEC.features)]


@pytest.fixture(scope="module")
def client(shared_deployed: Workspace) -> Iterator[TestClient]:
    from mloop.serving import create_app

    with TestClient(create_app(shared_deployed, log_flush_interval=0.05, poll_interval=0.05), headers=auth_headers(shared_deployed)) as c:
        yield c


def _v2(rows: object = ROWS, **extra: object) -> dict:
    frame = rows  # a DataFrame
    inputs = [{"name": c, "shape": [len(frame)], "datatype": "BYTES" if c == "color" else "FP64", "data": frame[c].tolist()}  # type: ignore[index, arg-type]
              for c in frame.columns]  # type: ignore[attr-defined]
    return {"inputs": inputs, **extra}


def _check(body: dict, client: TestClient, rows: int) -> None:
    assert body["model_name"] == "toy" and body["model_version"] == "1"
    assert body["method"] == "tree-shap" and body["output"]["scale"] == "log-odds"
    explanations = body["explanations"]
    assert len(explanations) == rows
    proba = client.post("/models/toy/invocations", json={"dataframe_records": ROWS.head(rows).to_dict("records")}).json()["predictions"]
    for entry, p in zip(explanations, proba, strict=True):
        assert set(entry["attributions"]) == set(TOY_SPEC.features)  # the input columns, color as one
        assert abs(entry["base_value"] + sum(entry["attributions"].values()) - entry["output"]) < 1e-6
        assert abs(1 / (1 + np.exp(-entry["output"])) - p[1]) < 1e-9  # the output is the served model's, as log-odds
        assert entry["class"] == "1"


def test_explain_over_the_v2_body_and_mlflows_formats(client: TestClient) -> None:
    resp = client.post("/v2/models/toy/explain", json=_v2(id="why-1"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "why-1" and resp.headers["x-model-version"] == "1"
    _check(resp.json(), client, 5)
    resp = client.post("/v2/models/toy/explain", json={"dataframe_records": ROWS.head(2).to_dict("records")})
    assert resp.status_code == 200, resp.text
    _check(resp.json(), client, 2)


def test_a_sampling_method_can_be_asked_for(client: TestClient, shared_deployed: Workspace) -> None:
    resp = client.post("/v2/models/toy/explain", json=_v2(ROWS.head(2), parameters={"method": "permutation"}))
    # The toy model was registered from a run that logged its training rows: they are the background.
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["method"] == "permutation" and body["output"]["scale"] == "probability"
    for entry in body["explanations"]:
        assert abs(entry["base_value"] + sum(entry["attributions"].values()) - entry["output"]) < 1e-6


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"dataframe_records": [{"x1": 1.0, "x2": 1.0, "x3": 1.0}]}, 422, "color"),
        ({"dataframe_records": [{"x1": "one", "x2": 1.0, "x3": 1.0, "color": "red"}]}, 422, "x1"),
        ({"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, 422, "x1"),
        ({"inputs": "x"}, 422, "inputs"),
        ({**_v2(), "parameters": {"method": "lime-ish"}}, 422, "parameters.method"),
        ({**_v2(), "parameters": []}, 422, "parameters"),
        ([1, 2], 422, "inputs"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client: TestClient, body: object, status: int, field: str) -> None:
    resp = client.post("/v2/models/toy/explain", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field


def test_limits_roles_and_the_openapi_document(client: TestClient, shared_deployed: Workspace) -> None:
    assert client.post("/v2/models/nope/explain", json=_v2()).status_code == 404
    many = toy_frame(10_001, seed=1)[list(TOY_SPEC.features)]
    resp = client.post("/v2/models/toy/explain", json={"dataframe_split": {"columns": list(many.columns), "data": many.to_numpy().tolist()}})
    assert resp.status_code == 422 and resp.json()["field"] == "inputs"
    key, _ = shared_deployed.store.api_keys.create("explain-viewer", "viewer")
    assert client.post("/v2/models/toy/explain", json=_v2(), headers={"Authorization": f"Bearer {key}"}).status_code == 403
    doc = client.get("/openapi.json").json()
    assert "post" in doc["paths"]["/v2/models/{name}/explain"]
