"""Monitoring wired to a real server process: the scheduler evaluates windows off the event loop and exports
alarms as Prometheus series; the log can travel over Redis to a collector."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from mloop.demo._server_process import ServerProcess
from mloop.monitoring import LogReader, collector_for
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, register_monitor, toy_frame

pytestmark = pytest.mark.slow


def _post(client: httpx.Client, shift: float, seed: int, n: int = 10) -> None:
    rows = toy_frame(n * 20, seed=seed, shift=shift)[list(TOY_SPEC.features)]
    for k in range(n):
        chunk = rows.iloc[k * 20:(k + 1) * 20]
        body = {"dataframe_split": {"columns": list(chunk.columns), "data": chunk.to_numpy().tolist()}}
        assert client.post("/invocations", json=body).status_code == 200


def test_the_server_scheduler_raises_an_alarm_and_exports_it(deployed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "reference.parquet"
    toy_frame(2000, seed=11)[list(TOY_SPEC.features)].to_parquet(reference)
    register_monitor(deployed.store, {"name": "inputs", "deployment": "toy", "reference": {"path": str(reference)},
                          "window": {"kind": "count", "size": 200}, "grace_seconds": 0, "predictions": False})
    monkeypatch.setenv("MLOOP_MONITOR_INTERVAL", "0.3")
    server = ServerProcess(deployed.root, log_file=deployed.root / "server.log", log_flush_interval=0.1).start()
    try:
        with server.client(timeout=10) as client:
            _post(client, 0.0, seed=12)  # 200 rows like the reference
            _post(client, 1.5, seed=13)  # 200 rows shifted
            monitor = deployed.store.monitors.get("toy", "inputs")
            deadline = time.time() + 30
            while len(deployed.store.monitors.windows(monitor.id)) < 2 and time.time() < deadline:
                time.sleep(0.2)
            windows = deployed.store.monitors.windows(monitor.id)
            assert [w.drift for w in windows] == [False, True]
            alarm = 'mloop_monitor_alarm{deployment="toy",monitor="inputs"} 1.0'
            while alarm not in (metrics := client.get("/metrics").text) and time.time() < deadline:
                time.sleep(0.1)  # the window is stored before its alarm reaches the gauge, in the same tick
            assert alarm in metrics
            assert client.post("/invocations", json={"dataframe_split": {"columns": ["x1"], "data": [[1.0]]}}).status_code == 422
    finally:
        assert server.stop() == 0
    assert deployed.store.monitors.holder("monitor-scheduler") is None  # released on shutdown
    windows = deployed.store.monitors.windows(monitor.id)  # a window is stored first, its report path once written
    assert Path(windows[1].report or "").is_file()


@pytest.mark.redis
def test_a_server_logging_to_redis_feeds_a_collector(deployed: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    stream = f"mloop-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLOOP_LOG_TRANSPORT", f"redis://127.0.0.1:6379/0?stream={stream}")
    monkeypatch.setenv("MLOOP_MONITOR_INTERVAL", "0")
    server = ServerProcess(deployed.root, log_file=deployed.root / "server.log", log_flush_interval=0.1).start()
    try:
        with server.client(timeout=10) as client:
            _post(client, 0.0, seed=14, n=5)
    finally:
        assert server.stop() == 0
    try:
        assert LogReader(deployed.logs_dir).count("toy") == 0  # the server wrote nothing locally
        collector = collector_for(f"redis://127.0.0.1:6379/0?stream={stream}", deployed.logs_dir)
        while collector.poll(wait=0.2):
            pass
        collector.close()
        assert LogReader(deployed.logs_dir).count("toy") == 100
    finally:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(stream)
