from __future__ import annotations

import pytest

from mloop.demo._server_process import ServerProcess
from mloop.monitoring import LogReader
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame

pytestmark = pytest.mark.slow


def _body(n: int, seed: int) -> dict:
    rows = toy_frame(n, seed=seed)[list(TOY_SPEC.features)]
    return {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}


def _server(ws: Workspace, **options: float) -> ServerProcess:
    return ServerProcess(ws.root, log_file=ws.root / "server.log", **options).start()  # type: ignore[arg-type]


def test_sigterm_drains_flushes_the_log_and_exits_zero(deployed: Workspace) -> None:
    body = _body(3, seed=4)
    # A long flush interval: only the shutdown path can have written these rows.
    server = _server(deployed, log_flush_interval=60.0)
    try:
        with server.client(timeout=10) as client:
            for i in range(20):
                assert client.post("/invocations", json=body, headers={"X-Request-Id": f"r{i}"}).status_code == 200
                assert client.post("/v2/models/toy/feedback", json={"request_id": f"r{i}", "labels": [1, 0, 1]}).status_code == 200
        assert LogReader(deployed.logs_dir).count("toy") == 0
    finally:
        code = server.stop()
    assert code == 0
    frame = LogReader(deployed.logs_dir).labelled("toy")
    assert len(frame) == 60 and frame["label"].notna().all()


def test_sigterm_turns_readiness_to_503_while_requests_still_succeed(deployed: Workspace) -> None:
    import time

    body = _body(1, seed=4)
    server = _server(deployed, drain_seconds=1.5)
    try:
        with server.client(timeout=10) as client:
            assert client.get("/v2/health/ready").status_code == 200
            server.terminate()
            deadline = time.time() + 5
            while client.get("/v2/health/ready").status_code != 503 and time.time() < deadline:
                time.sleep(0.02)
            assert client.get("/v2/health/ready").status_code == 503
            assert client.get("/v2/health/live").status_code == 200
            assert client.post("/invocations", json=body).status_code == 200
    finally:
        code = server.stop()
    assert code == 0


def test_acknowledged_rows_survive_kill_9_after_the_flush_interval(deployed: Workspace) -> None:
    import time

    body = _body(2, seed=5)
    server = _server(deployed, log_flush_interval=0.2)
    try:
        with server.client(timeout=10) as client:
            for i in range(50):
                assert client.post("/invocations", json=body, headers={"X-Request-Id": f"k{i}"}).status_code == 200
        time.sleep(0.2 * 3)  # the documented bound: one flush interval (plus the write itself)
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: no shutdown hook runs
        server.proc.wait(10)
    finally:
        server.stop()
    frame = LogReader(deployed.logs_dir).labelled("toy")
    assert len(frame) == 100 and set(frame["request_id"]) == {f"k{i}" for i in range(50)}
    assert not [p for p in deployed.logs_dir.rglob("*.parquet") if p.stat().st_size == 0]
