"""A catalogue of bad bodies for every POST endpoint: never a 5xx, always a JSON error naming a reason."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mloop.serving import create_app
from mloop.workspace import Workspace
from tests.conftest import auth_headers, deploy, train_and_register

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1e308, -1e308, 2**63, -(2**63), 2**70, 1.5, "", "x", "é", "\u202e", "\ud7ff", "💥" * 50, "a" * 10_000,
    [], {}, [[]], [None], {"": None}, [1, "a", None], {"inputs": None}, "NaN", "Infinity",
]
KEYS = ["dataframe_split", "dataframe_records", "instances", "inputs", "columns", "data", "index", "name", "shape",
        "datatype", "id", "parameters", "request_id", "labels", "x1", "color", "binary_data_size"]


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice(ODD_VALUES)
    if roll < 0.7:
        return {rng.choice(KEYS): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _bodies() -> Iterator[bytes]:
    rng = random.Random(0)
    fixed = [b"", b"{", b"null", b"[]", b"\x00\xff", b'{"a":' * 600 + b"1" + b"}" * 600, b'"\\ud800"', b"1" * 5000,
             b'{"dataframe_split": {"columns": ["x1", "x1"], "data": [[1, 2]]}}',
             b'{"inputs": [{"name": "x1", "shape": [1, 2, 3], "datatype": "FP64", "data": [1]}]}',
             b'{"inputs": [{"name": "x1", "shape": [-1], "datatype": "FP64", "data": []}]}',
             b'{"inputs": [{"name": "x1", "shape": [true], "datatype": "FP64", "data": [1]}]}']
    yield from fixed
    for _ in range(150):
        yield json.dumps(_random_json(rng)).encode()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    ws = Workspace.init(tmp_path_factory.mktemp("fuzz") / "ws")
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    with TestClient(create_app(ws), headers=auth_headers(ws)) as c:
        yield c
    ws.close()


@pytest.mark.parametrize("path", ["/invocations", "/models/toy/invocations", "/v2/models/toy/infer", "/v2/models/toy/feedback", "/models/../invocations"])
def test_no_bad_body_causes_a_server_error(client: TestClient, path: str) -> None:
    statuses = []
    for body in _bodies():
        resp = client.post(path, content=body, headers={"content-type": "application/json"})
        statuses.append(resp.status_code)
        assert resp.status_code < 500, (body[:200], resp.text)
        if resp.status_code >= 400:
            assert "error" in resp.json()
    assert any(s >= 400 for s in statuses)


def test_odd_headers_are_4xx(client: TestClient) -> None:
    for headers in ({"x-request-id": "r" * 500}, {"x-request-timeout-ms": "-5"}, {"x-request-timeout-ms": "nan"},
                    {"inference-header-content-length": "abc"}, {"content-length": "99999999999"}):
        resp = client.post("/v2/models/toy/infer", content=b'{"inputs": []}', headers=headers)
        assert 400 <= resp.status_code < 500, (headers, resp.text)
