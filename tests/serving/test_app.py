from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mloop.monitoring import LogReader
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, auth_headers, deploy, toy_frame, train_and_register

ROWS = toy_frame(4, seed=9)[list(TOY_SPEC.features)]


def _client(ws: Workspace) -> TestClient:
    from mloop.serving import create_app

    return TestClient(create_app(ws, log_flush_interval=0.05, poll_interval=0.05), headers=auth_headers(ws))


@pytest.fixture(scope="module")
def shared(shared_deployed: Workspace) -> Workspace:
    """One deployed workspace for the tests that only read."""
    return shared_deployed


@pytest.fixture(scope="module")
def client(shared: Workspace) -> Iterator[TestClient]:
    with _client(shared) as c:
        yield c


@pytest.fixture
def own_client(deployed: Workspace) -> Iterator[TestClient]:
    """A server over a workspace of this test's own, for tests that change deployments or aliases."""
    with _client(deployed) as c:
        yield c


def _split() -> dict:
    return {"dataframe_split": {"columns": list(ROWS.columns), "data": ROWS.to_numpy().tolist()}}


def test_health_and_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/health/ready").status_code == 200
    meta = client.get("/v2/models/toy").json()
    assert meta["name"] == "toy" and meta["versions"] == ["1"]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {"x1": "FP64", "x2": "FP64", "x3": "FP64", "color": "BYTES"}
    assert client.get("/v2/models/toy/ready").json() == {"name": "toy", "ready": True}


@pytest.mark.parametrize(
    "body",
    [
        _split(),
        {"dataframe_records": ROWS.to_dict("records")},
        {"instances": ROWS.to_dict("records")},
        {"inputs": ROWS.to_dict("list")},
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_mlflow_scoring_formats(client: TestClient, body: dict) -> None:
    for path in ("/invocations", "/models/toy/invocations"):
        resp = client.post(path, json=body)
        assert resp.status_code == 200, resp.text
        preds = resp.json()["predictions"]
        assert len(preds) == 4 and all(len(p) == 2 and abs(sum(p) - 1) < 1e-9 for p in preds)
        assert resp.headers["x-model-version"] == "1" and resp.headers["x-request-id"]


def test_v2_infer_echoes_id_and_names_the_version(client: TestClient) -> None:
    inputs = [
        {"name": c, "shape": [4], "datatype": "BYTES" if c == "color" else "FP64", "data": ROWS[c].tolist()} for c in ROWS.columns
    ]
    resp = client.post("/v2/models/toy/infer", json={"id": "abc", "inputs": inputs})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["id"] == "abc" and body["model_name"] == "toy" and body["model_version"] == "1"
    assert body["outputs"][0]["shape"] == [4, 2] and body["outputs"][0]["datatype"] == "FP64"
    assert len(body["outputs"][0]["data"]) == 8


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/invocations", {"dataframe_records": [{"x1": 1.0, "x2": 1.0, "x3": 1.0}]}, 422, "color"),
        ("/invocations", {"dataframe_records": [{"x1": 1.0, "x2": 1.0, "x3": 1.0, "color": "red", "zz": 1}]}, 422, "zz"),
        ("/invocations", {"dataframe_records": [{"x1": "one", "x2": 1.0, "x3": 1.0, "color": "red"}]}, 422, "x1"),
        ("/invocations", {"dataframe_records": [{"x1": 1.0, "x2": 1.0, "x3": 1.0, "color": 7}]}, 422, "color"),
        ("/invocations", {"dataframe_split": {"columns": ["x1"], "data": [[1.0, 2.0]]}}, 422, "dataframe_split.data"),
        ("/invocations", {"nonsense": []}, 422, "body"),
        ("/invocations", [1, 2], 422, "body"),
        ("/invocations", {"dataframe_records": []}, 422, "dataframe_records"),
        ("/v2/models/toy/infer", {"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "data": [1.0]}]}, 422, "x1"),
        ("/v2/models/toy/infer", {"inputs": [{"name": "x1", "shape": [1], "datatype": "FLOAT", "data": [1.0]}]}, 422, "x1"),
        ("/v2/models/toy/infer", {"inputs": "x"}, 422, "inputs"),
        ("/v2/models/nope/infer", {"inputs": []}, 404, None),
        ("/v2/models/toy/feedback", {"request_id": "r", "labels": ["x"]}, 422, "labels"),
        ("/v2/models/toy/feedback", {"labels": [1]}, 422, "request_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client: TestClient, path: str, body: object, status: int, field: str | None) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == status, resp.text
    assert "error" in resp.json()
    if field is not None:
        assert resp.json()["field"] == field


def test_malformed_and_oversized_bodies(client: TestClient) -> None:
    resp = client.post("/invocations", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422 and "not valid JSON" in resp.json()["error"]
    resp = client.post("/invocations", content=b"x", headers={"content-type": "application/json", "content-length": str(1 << 30)})
    assert resp.status_code == 413
    assert client.get("/v2/nowhere").status_code == 404
    assert client.post("/v2/models/toy/infer", content=b"[]" * 10).status_code == 422


def test_predictions_and_feedback_reach_the_log(client: TestClient, shared: Workspace) -> None:
    resp = client.post("/invocations", json=_split(), headers={"X-Request-Id": "req-1"})
    assert resp.status_code == 200
    assert client.post("/v2/models/toy/feedback", json={"request_id": "req-1", "labels": [0, 1, 1, 0]}).json() == {"accepted": 4}
    reader = LogReader(shared.logs_dir)
    deadline = time.time() + 5
    while time.time() < deadline:
        frame = reader.labelled("toy")
        frame = frame[frame["request_id"] == "req-1"] if len(frame) else frame
        if len(frame) == 4 and frame["label"].notna().all():
            break
        time.sleep(0.05)
    assert frame["label"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert set(frame["version"]) == {1} and list(frame["color"]) == list(ROWS["color"])
    metrics = client.get("/metrics").text
    assert 'mloop_requests_total{deployment="toy",protocol="mlflow",status="200",version="1"}' in metrics
    assert 'mloop_feedback_rows_total{deployment="toy"} 4.0' in metrics


def test_alias_move_hot_swaps_with_no_failed_request(own_client: TestClient, deployed: Workspace) -> None:
    client = own_client
    train_and_register(deployed, alias=None, seed=5)
    failures: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            resp = client.post("/invocations", json=_split())
            if resp.status_code != 200:
                failures.append(resp.status_code)
            else:
                versions.add(resp.headers["x-model-version"])

    thread = threading.Thread(target=hammer)
    thread.start()
    time.sleep(0.3)
    deployed.registry.set_alias("toy", "champion", 2)
    deadline = time.time() + 10
    while "2" not in versions and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    stop.set()
    thread.join()
    assert failures == [] and versions == {"1", "2"}


def test_canary_rollout_splits_traffic_by_request(own_client: TestClient, deployed: Workspace) -> None:
    client = own_client
    train_and_register(deployed, alias="challenger", seed=5)
    deploy(deployed, "toy", "toy", "champion", rollout={"candidate_alias": "challenger", "percent": 50})
    deadline = time.time() + 10
    while client.get("/v2/models/toy").json()["versions"] != ["1", "2"] and time.time() < deadline:
        time.sleep(0.05)
    seen = {client.post("/invocations", json=_split(), headers={"X-Request-Id": f"k{i}"}).headers["x-model-version"] for i in range(40)}
    assert seen == {"1", "2"}


@pytest.mark.slow  # a workspace per case
@pytest.mark.parametrize(
    ("rollout", "field", "message"),
    [
        ({"candidate_alias": "challenger", "percent": 250}, "rollout.percent", "less than or equal to 100"),
        ({"candidate_alias": "challenger", "percent": float("nan")}, "rollout.percent", "finite number"),
        ({"candidate_alias": "challenger"}, "rollout.percent", "Field required"),
        ({"candidate_alias": "challenger", "percent": 5, "strategy": "yolo"}, "rollout.strategy", "'canary', 'blue-green' or 'manual'"),
        ({"candidate_alias": "challenger", "percent": 5, "weights": [1]}, "rollout.weights", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_rollout_is_refused_at_deploy_and_the_deployment_keeps_serving(
    deployed: Workspace, rollout: dict[str, object], field: str, message: str
) -> None:
    """A share of 250 used to be accepted and then fail every request; now the deploy is refused, naming the field,
    and the deployment row is left as it was."""
    from mloop.errors import InvalidInput

    train_and_register(deployed, alias="challenger", seed=5)
    before = deployed.store.deployments.get("toy")
    with pytest.raises(InvalidInput) as info:
        deploy(deployed, "toy", "toy", "champion", rollout=rollout)
    assert info.value.field == field and message in info.value.message
    assert deployed.store.deployments.get("toy") == before


def test_stats_report_latency_percentiles_batches_and_throughput(client: TestClient) -> None:
    for _ in range(5):
        assert client.post("/invocations", json=_split()).status_code == 200
    stats = client.get("/v2/models/toy/stats").json()
    v1 = stats["versions"]["1"]
    assert v1["requests"] >= 5 and v1["rows"] >= 20
    assert set(v1["latency_ms"]) == {"p50", "p95", "p99", "p999", "mean"} and v1["latency_ms"]["p50"] > 0
    assert v1["queue_ms"]["p50"] >= 0 and v1["compute_ms"]["p50"] > 0
    assert sum(v1["batch_size"].values()) >= 1 and v1["rows_per_s"] > 0
    assert stats["serving"]["max_batch_size"] == 64 and stats["queue_depth"] == {"1": 0}
    metrics = client.get("/metrics").text
    for series in ("mloop_queue_seconds_bucket", "mloop_compute_seconds_bucket", "mloop_batch_rows_bucket", "mloop_request_latency_seconds_bucket"):
        assert series in metrics


def test_the_onnx_twin_serves_and_agrees_with_the_native_model(client: TestClient, shared: Workspace) -> None:
    assert client.get("/v2/models/toy").json()["platform"] == "mloop-onnx"
    served = client.post("/invocations", json=_split()).json()["predictions"]
    native = shared.registry.load("toy", 1).predict(ROWS)
    np.testing.assert_allclose(served, native, atol=1e-9)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"dataframe_records": [{"x1": NaN, "x2": 1, "x3": 1, "color": "red"}]}', "body"),
        (b'{"dataframe_records": [{"x1": Infinity, "x2": 1, "x3": 1, "color": "red"}]}', "body"),
        (b'{"dataframe_records": [{"x1": 1e999, "x2": 1, "x3": 1, "color": "red"}]}', None),
        (b'{"dataframe_records": [{"x1": 1, "x2": 1, "x3": 1, "color": "red"}], "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),
    ],
)
def test_non_finite_and_huge_numbers_are_refused(client: TestClient, body: bytes, field: str | None) -> None:
    resp = client.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    if field:
        assert resp.json()["field"] == field


def test_deadline_and_timeout_header(client: TestClient) -> None:
    resp = client.post("/invocations", json=_split(), headers={"X-Request-Timeout-Ms": "0.000001"})
    assert resp.status_code == 504 and "deadline" in resp.json()["error"]
    resp = client.post("/invocations", json=_split(), headers={"X-Request-Timeout-Ms": "soon"})
    assert resp.status_code == 422 and resp.json()["field"] == "X-Request-Timeout-Ms"


def test_missing_values_can_be_refused_per_deployment(own_client: TestClient, deployed: Workspace) -> None:
    from mloop.store import ServingConfig

    body = {"dataframe_records": [{"x1": None, "x2": 1.0, "x3": 1.0, "color": "red"}]}
    assert own_client.post("/invocations", json=body).status_code == 200
    deploy(deployed, "toy", "toy", "champion", serving=ServingConfig(allow_missing=False))
    deadline = time.time() + 10
    while own_client.get("/v2/models/toy/stats").json()["serving"]["allow_missing"] and time.time() < deadline:
        time.sleep(0.05)
    resp = own_client.post("/invocations", json=body)
    assert resp.status_code == 422 and resp.json()["field"] == "x1" and "missing" in resp.json()["error"]


def test_overload_answers_429_with_retry_after_and_no_5xx(own_client: TestClient, deployed: Workspace) -> None:
    import asyncio

    import httpx

    from mloop.store import ServingConfig

    deploy(deployed, "toy", "toy", "champion", serving=ServingConfig(queue_size=2, max_batch_size=1))
    deadline = time.time() + 10
    while own_client.get("/v2/models/toy/stats").json()["serving"]["queue_size"] != 2 and time.time() < deadline:
        time.sleep(0.05)
    batcher = own_client.app.state.hub.get("toy").baseline.batcher  # type: ignore[attr-defined]
    real = batcher._predict

    def slow(blocks):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return real(blocks)

    batcher._predict = slow

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=own_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth_headers(deployed)) as c:
            return await asyncio.gather(*(c.post("/invocations", json=_split()) for _ in range(12)))

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) == {200, 429} and codes.count(200) >= 2
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 429)


def test_framework_routes_answer_like_the_fast_path(shared: Workspace) -> None:
    """The same table drives both: through FastAPI or the fast path, the same statuses, bodies and headers; and the
    fast path really skips the framework (no hot request reaches FastAPI)."""
    from mloop.serving import create_app

    def counting(gateway):  # type: ignore[no-untyped-def]
        inner, seen = gateway.app, []

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] == "http":
                seen.append(scope["path"])
            await inner(scope, receive, send)

        app.state = inner.state  # type: ignore[attr-defined]
        gateway.app = app
        return seen

    cases = [
        ("/invocations", _split(), 200, None),
        ("/invocations", {"dataframe_records": [{"x1": 1.0}]}, 422, "x2"),
        ("/v2/models/toy/feedback", {"labels": [1]}, 422, "request_id"),
        ("/v2/models/nope/infer", {"inputs": []}, 404, None),
    ]
    slow_app, fast_app = create_app(shared, fast_path=False), create_app(shared, log_flush_interval=0.05, poll_interval=0.05)
    through_slow, through_fast = counting(slow_app), counting(fast_app)
    with TestClient(slow_app, headers=auth_headers(shared)) as slow, TestClient(fast_app, headers=auth_headers(shared)) as fast:
        for path, body, status, field in cases:
            a, b = slow.post(path, json=body, headers={"X-Request-Id": "same"}), fast.post(path, json=body, headers={"X-Request-Id": "same"})
            assert (a.status_code, b.status_code) == (status, status), (path, a.text, b.text)
            assert a.json() == b.json()
            assert a.json().get("field") == field
            assert a.headers.get("x-model-version") == b.headers.get("x-model-version")
        oversized = {"content-type": "application/json", "content-length": str(1 << 30)}
        assert slow.post("/invocations", content=b"x", headers=oversized).status_code == 413
        assert fast.post("/invocations", content=b"x", headers=oversized).status_code == 413
    assert through_fast == [] and len(through_slow) == len(cases) + 1


@pytest.mark.parametrize(
    ("body", "header", "field"),
    [
        (b'{"inputs": []}', "999", "Inference-Header-Content-Length"),
        (b'{"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]}' + b"\x00" * 8, None, "x1"),
        (b'{"inputs": [{"name": "color", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}' + b"\x09\x00\x00\x00ab", None, "color"),
        (b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]}' + b"\x00" * 12, None, "body"),
    ],
)
def test_malformed_binary_tensors_are_422(client: TestClient, body: bytes, header: str | None, field: str) -> None:
    length = header or str(body.index(b"}]}") + 3)
    resp = client.post("/v2/models/toy/infer", content=body, headers={"inference-header-content-length": length, "content-type": "application/octet-stream"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field


def test_openapi_document_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [
        ("/invocations", "post"), ("/models/{name}/invocations", "post"), ("/v2/models/{name}/infer", "post"),
        ("/v2/models/{name}/feedback", "post"), ("/v2/models/{name}", "get"), ("/v2/models/{name}/ready", "get"),
        ("/v2/models/{name}/stats", "get"), ("/v2/health/live", "get"), ("/v2/health/ready", "get"), ("/metrics", "get"),
    ]:
        assert method in paths[path], path


def test_a_failed_request_is_logged_as_an_outcome_of_its_arm(own_client: TestClient, deployed: Workspace) -> None:
    """Error rates per arm need the failures: a request the routed version did not answer leaves a row with its
    arm, probability, status and error; a request refused before routing (a bad header) leaves none."""
    late = own_client.post("/invocations", json=_split(), headers={"X-Request-Timeout-Ms": "0.000001", "X-Request-Id": "late-1"})
    assert late.status_code == 504
    assert own_client.post("/invocations", json=_split(), headers={"X-Request-Timeout-Ms": "soon", "X-Request-Id": "bad-1"}).status_code == 422
    assert own_client.post("/invocations", json=_split(), headers={"X-Request-Id": "ok-1"}).status_code == 200
    reader = LogReader(deployed.logs_dir)
    deadline = time.time() + 10
    while reader.count("toy", kind="failures") < 1 and time.time() < deadline:
        time.sleep(0.05)
    failures = reader.failures("toy")
    assert failures["request_id"].tolist() == ["late-1"]
    row = failures.iloc[0]
    assert (row["arm"], row["probability"], row["version"], row["status"], row["error"]) == ("baseline", 1.0, 1, 504, "DeadlineExceeded")
