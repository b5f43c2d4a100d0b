from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mloop.errors import InvalidInput
from mloop.events import DRIFT_DETECTED, DRIFT_RESOLVED
from mloop.monitoring import LEASE, MonitorMetrics, MonitorScheduler, PredictionLog, check_webhook, load_monitors, parse_monitor
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.conftest import monitor_runner, register_monitor, run_cli

T0 = 1_800_000_000.0  # a fixed start of prediction time: windows are reproducible


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A workspace with a deployment row (monitors need one; the model itself is not used here)."""
    ws = Workspace.init(tmp_path / "ws")
    with ws.store.transaction() as conn:
        ws.store.deployments.upsert(conn, "dep", model_name="m", alias="champion")
    return ws


def _frame(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({
        "x": rng.normal(shift, 1.0, n), "y": rng.exponential(1.0, n), "color": rng.choice(["r", "g", "b"], n).astype(object),
    })


def _log(ws: Workspace, frame: pd.DataFrame, start: float, step: float, scores: np.ndarray | None = None, prefix: str = "r") -> list[str]:
    """One request per row, ``step`` seconds apart from ``start``; returns the request ids."""
    log = PredictionLog(ws.logs_dir)
    ids = []
    scores = scores if scores is not None else np.full(len(frame), 0.3)
    for i in range(len(frame)):
        rid = f"{prefix}{i:06d}"
        log.log_predictions("dep", 1, rid, start + i * step, frame.iloc[[i]].reset_index(drop=True), np.array([scores[i]]), 1.0)
        ids.append(rid)
    log.flush()
    return ids


def _reference(tmp_path: Path, rng: np.random.Generator) -> Path:
    path = tmp_path / "reference.parquet"
    ref = _frame(3000, rng)
    ref["score"] = rng.beta(2, 5, len(ref))
    ref.to_parquet(path)
    return path


def test_count_windows_persistence_alarm_and_resolution(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    register_monitor(ws.store, {
        "name": "inputs", "deployment": "dep", "reference": {"path": str(_reference(tmp_path, rng))},
        "window": {"kind": "count", "size": 400}, "persistence": {"k": 2, "n": 3}, "predictions": False,
    })
    # 2 normal windows, 2 drifted windows (x shifted), 2 normal windows
    parts = [_frame(400, rng), _frame(400, rng), _frame(400, rng, 1.0), _frame(400, rng, 1.0), _frame(400, rng), _frame(400, rng)]
    _log(ws, pd.concat(parts, ignore_index=True), T0, 1.0)
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    runner = monitor_runner(ws, MonitorMetrics(registry))
    runner.clock = Clock(T0 + 2400 + 60)
    seen = ws.bus.last_id()
    results = runner.tick()
    runner.close()
    assert [r.rows for r in results] == [400] * 6
    assert [r.drift for r in results] == [False, False, True, True, False, False]
    # 2 of the last 3 windows drifted from window 4 on; window 5 still has 2 of 3; window 6 has 1 of 3
    assert [r.alarm for r in results] == [False, False, False, True, True, False]
    assert results[3].drifted == ["x"]
    events = [e for e in ws.bus.poll(seen) if e.topic in (DRIFT_DETECTED, DRIFT_RESOLVED)]
    assert [(e.topic, e.payload["status"]) for e in events] == [(DRIFT_DETECTED, "firing"), (DRIFT_RESOLVED, "resolved")]
    assert events[0].payload["drifted"] == ["x"] and events[0].payload["window"]["rows"] == 400
    alerts = ws.store.alerts.list("dep")
    assert [a["kind"] for a in alerts] == ["data_drift", "drift_resolved"]
    text = generate_latest(registry).decode()
    assert 'mloop_monitor_alarm{deployment="dep",monitor="inputs"} 0.0' in text
    assert 'mloop_monitor_alarms_total{deployment="dep",monitor="inputs"} 1.0' in text
    assert 'mloop_drift_statistic{deployment="dep",feature="x",monitor="inputs",test="ks"}' in text
    # nothing new: the next tick evaluates nothing, and the windows survive in the store
    again = monitor_runner(ws)
    again.clock = Clock(T0 + 10_000)
    assert again.tick() == []
    again.close()
    monitor = ws.store.monitors.get("dep", "inputs")
    assert len(ws.store.monitors.windows(monitor.id)) == 6


def test_the_floors_of_a_monitor_decide_with_the_effect_they_record(ws: Workspace, tmp_path: Path) -> None:
    """A 1 σ shift is significant under both monitors; only the one whose W1/σ floor it reaches alarms, and each
    window records the effect, its measure and the floor it was held to."""
    rng = np.random.default_rng(3)
    reference = str(_reference(tmp_path, rng))
    for name, floors in (("default", {}), ("strict", {"wasserstein_sd": 2.0})):
        register_monitor(ws.store, {"name": name, "deployment": "dep", "reference": {"path": reference},
                                    "window": {"kind": "count", "size": 400}, "predictions": False, "floors": floors})
    _log(ws, _frame(400, rng, 1.0), T0, 1.0)
    runner = monitor_runner(ws)
    runner.clock = Clock(T0 + 400 + 60)
    results = {r.monitor: r for r in runner.tick() if r.deployment == "dep"}
    runner.close()
    assert results["default"].drifted == ["x"] and results["strict"].drifted == []
    for name, floor in (("default", 0.1), ("strict", 2.0)):
        window = ws.store.monitors.windows(ws.store.monitors.get("dep", name).id)[-1]
        x = next(f for f in window.summary["features"] if f["name"] == "x")
        assert x["measure"] == "wasserstein_sd" and x["floor"] == floor and 0.8 < x["effect_size"] < 1.2


def test_rows_younger_than_the_grace_period_wait(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    register_monitor(ws.store, {"name": "m", "deployment": "dep", "reference": {"path": str(_reference(tmp_path, rng))},
                    "window": {"kind": "count", "size": 100}, "grace_seconds": 30})
    _log(ws, _frame(100, rng), T0, 0.1)
    runner = monitor_runner(ws)
    runner.clock = Clock(T0 + 10 + 29)  # the last row is 29 s old
    assert runner.tick() == []
    runner.clock = Clock(T0 + 10 + 31)
    assert len(runner.tick()) == 1
    runner.close()


def test_hourly_windows_skip_empty_hours_and_check_prediction_drift(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    register_monitor(ws.store, {"name": "hourly", "deployment": "dep", "reference": {"path": str(_reference(tmp_path, rng))}, "window": {"kind": "hourly"}})
    hour = 3600.0
    start = (T0 // hour) * hour
    _log(ws, _frame(300, rng), start + 10, 5.0, scores=rng.beta(2, 5, 300), prefix="a")  # hour 0
    _log(ws, _frame(300, rng), start + 3 * hour + 10, 5.0, scores=rng.beta(5, 2, 300), prefix="b")  # hour 3: outputs moved
    runner = monitor_runner(ws)
    runner.clock = Clock(start + 5 * hour)
    results = runner.tick()
    runner.close()
    assert [(r.start - start) / hour for r in results] == [0.0, 3.0]
    assert [r.drift for r in results] == [False, True] and results[1].drifted == []  # the inputs did not move
    monitor = ws.store.monitors.get("dep", "hourly")
    summary = ws.store.monitors.windows(monitor.id)[-1].summary
    assert summary["prediction"]["name"] == "score" and summary["prediction"]["drift"] is True


def test_reference_from_the_first_predictions(ws: Workspace) -> None:
    rng = np.random.default_rng(3)
    register_monitor(ws.store, {"name": "self", "deployment": "dep", "reference": {"first_predictions": 500}, "window": {"kind": "count", "size": 250}})
    _log(ws, pd.concat([_frame(500, rng), _frame(250, rng), _frame(250, rng, 1.5)], ignore_index=True), T0, 1.0)
    runner = monitor_runner(ws)
    runner.clock = Clock(T0 + 5000)
    results = runner.tick()
    runner.close()
    assert [r.drift for r in results] == [False, True]  # windows start after the reference rows


@pytest.mark.browser
def test_each_window_has_an_offline_report_with_a_timeline(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    register_monitor(ws.store, {"name": "inputs", "deployment": "dep", "reference": {"path": str(_reference(tmp_path, rng))},
                                "window": {"kind": "count", "size": 300}})
    _log(ws, pd.concat([_frame(300, rng), _frame(300, rng, 1.0)], ignore_index=True), T0, 1.0)
    runner = monitor_runner(ws)
    runner.clock = Clock(T0 + 5000)
    results = runner.tick()
    runner.close()
    report = Path(results[1].report or "")
    assert report.is_file() and report.is_relative_to(ws.reports_dir)
    seen: dict[str, Any] = {}

    def inspect(page: Any) -> None:
        seen["verdict"] = page.inner_text("#verdict")
        seen["timeline"] = page.locator("#timeline svg").count()
        seen["prediction"] = page.locator("#prediction").count()
        seen["charts"] = page.locator("figure svg").count()

    errors, requests = open_offline(report, inspect)
    assert errors == [] and all(u.startswith("file://") for u in requests)
    assert seen["verdict"].startswith("Drift") and seen["timeline"] == 1 and seen["prediction"] == 1
    assert seen["charts"] == 1 + 4  # the timeline, then x, y, color and the score


def test_streaming_concept_monitor_alarms_when_the_loss_rises(ws: Workspace) -> None:
    rng = np.random.default_rng(5)
    register_monitor(ws.store, {"name": "errors", "deployment": "dep", "window": {"kind": "streaming"}, "concept": {"detector": "adwin", "loss": "brier"}})
    n = 1500
    scores = rng.uniform(0, 1, n)
    labels = (rng.random(n) < scores).astype(float)  # calibrated at first
    labels[1000:] = 1.0 - labels[1000:]  # then the world flips
    ids = _log(ws, _frame(n, rng), T0, 1.0, scores=scores)
    log = PredictionLog(ws.logs_dir)
    monitor = ws.store.monitors.get("dep", "errors")
    for i, rid in enumerate(ids):
        log.log_feedback("dep", rid, [float(labels[i])], monitor.created_at + 1 + i)
    log.flush()
    runner = monitor_runner(ws)
    results = runner.tick()
    runner.close()
    assert len(results) >= 1 and all(r.alarm for r in results)
    first = results[0]
    assert 1000 <= first.end - T0 < 1200  # detected within 200 labels of the flip, none before it
    assert ws.store.alerts.list("dep")[0]["kind"] == "concept_drift"


def test_a_failing_monitor_records_its_error_and_others_go_on(ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    path = _reference(tmp_path, rng)
    register_monitor(ws.store, {"name": "broken", "deployment": "dep", "reference": {"path": str(path)}, "window": {"kind": "count", "size": 100},
                    "features": ["x", "nope"]})
    register_monitor(ws.store, {"name": "fine", "deployment": "dep", "reference": {"path": str(path)}, "window": {"kind": "count", "size": 100}})
    _log(ws, _frame(100, rng), T0, 1.0)
    runner = monitor_runner(ws)
    runner.clock = Clock(T0 + 1000)
    assert [r.monitor for r in runner.tick()] == ["fine"]
    runner.close()
    broken = ws.store.monitors.get("dep", "broken")
    assert "lacks feature(s) ['nope']" in ws.store.monitors.state(broken.id)["error"]


def test_one_scheduler_holds_the_lease(ws: Workspace) -> None:
    first = MonitorScheduler(monitor_runner(ws), interval=1.0, holder="a")
    second = MonitorScheduler(monitor_runner(ws), interval=1.0, holder="b")
    assert first.run_once() == [] and second.run_once() is None
    assert ws.store.monitors.holder(LEASE) == "a"
    first.stop()  # releases
    assert second.run_once() == [] and ws.store.monitors.holder(LEASE) == "b"
    second.stop()


def test_an_expired_lease_is_taken_over(ws: Workspace) -> None:
    assert ws.store.monitors.acquire(LEASE, "dead", ttl=0.05)
    assert not ws.store.monitors.acquire(LEASE, "other", ttl=1.0)
    time.sleep(0.1)
    assert ws.store.monitors.acquire(LEASE, "other", ttl=1.0)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_on_loopback_receives_the_alarm(ws: Workspace, tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    rng = np.random.default_rng(7)
    register_monitor(ws.store, {"name": "hooked", "deployment": "dep", "reference": {"path": str(_reference(tmp_path, rng))},
                    "window": {"kind": "count", "size": 300}, "webhooks": [f"http://127.0.0.1:{server.server_port}/alerts"]})
    _log(ws, _frame(300, rng, 1.0), T0, 1.0)
    runner = monitor_runner(ws)
    runner.clock = Clock(T0 + 1000)
    runner.tick()
    runner.close()  # waits for deliveries
    server.shutdown()
    assert [(h["status"], h["monitor"], h["drifted"]) for h in _Hook.received] == [("firing", "hooked", ["x"])]


@pytest.mark.parametrize(
    ("url", "addresses", "allow", "message"),
    [
        ("http://169.254.169.254/latest/meta-data", ["169.254.169.254"], (), "link-local"),
        ("http://metadata.internal/", ["169.254.169.254"], ("metadata.internal",), "link-local"),
        ("http://10.0.0.5/hook", ["10.0.0.5"], (), "neither loopback nor on the allow-list"),
        ("http://hooks.example.com/x", ["93.184.216.34"], (), "neither loopback nor on the allow-list"),
        ("http://[::ffff:169.254.169.254]/", ["::ffff:169.254.169.254"], (), "link-local"),
        ("http://0.0.0.0:80/", ["0.0.0.0"], (), "link-local/unspecified"),
        ("ftp://127.0.0.1/", ["127.0.0.1"], (), "http(s) URL"),
    ],
)
def test_webhook_addresses_are_checked_after_resolution(url: str, addresses: list[str], allow: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_webhook(url, allow, resolve=lambda host, port: addresses)


def test_webhook_allowed_hosts() -> None:
    assert check_webhook("http://localhost:9/x", resolve=lambda h, p: ["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]
    assert check_webhook("https://hooks.example.com/x", ["hooks.example.com"], resolve=lambda h, p: ["10.1.2.3"]) == ["10.1.2.3"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"window": {"kind": "count"}}, "window", "count windows need a size"),
        ({"window": {"kind": "count", "size": 5}}, "window.size", "greater than or equal to 30"),
        ({"window": {"kind": "weekly"}}, "window.kind", "'count', 'hourly', 'daily' or 'streaming'"),
        ({"persistence": {"k": 3, "n": 2}}, "persistence", "k (3) cannot exceed n (2)"),
        ({"reference": {"path": "a.parquet", "first_predictions": 100}}, "reference", "exactly one of path or first_predictions"),
        ({"reference": None}, "monitor", "compare with a reference"),
        ({"tests": {"x": "t-test"}}, "tests", "unknown test 't-test' for 'x'"),
        ({"correction": "holm"}, "correction", "unknown correction 'holm'"),
        ({"webhooks": ["http://user:pw@127.0.0.1/"]}, "webhooks", "must not carry credentials"),
        ({"name": "../etc"}, "name", "Invalid name"),
        ({"alpha": 2}, "alpha", "less than 1"),
        ({"floors": {"ks_d": 0.1}}, "floors", "Unknown effect measure 'ks_d'"),
        ({"floors": {"total_variation": -0.2}}, "floors", "The floor for total_variation must be a finite number"),
        ({"floors": {"total_variation": 1.5}}, "floors", "The floor for total_variation must be a finite number within [0, 1]"),
        ({"floors": {"wasserstein_sd": True}}, "floors", "The floor for wasserstein_sd must be a finite number ≥ 0, got True"),
        ({"effect_floor": 0.1}, "effect_floor", "effect_floor was replaced by floors, one per effect measure"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"window": {"kind": "streaming"}}, "monitor", "need a concept detector"),
        ({"window": {"kind": "streaming"}, "concept": {"detector": "ddm", "loss": "brier"}}, "concept", "ddm reads 0/1 errors"),
        ({"window": {"kind": "streaming"}, "concept": {"detector": "cusum"}}, "concept.detector", "unknown detector 'cusum'"),
    ],
)
def test_bad_configs_name_the_field(change: dict[str, Any], field: str, message: str) -> None:
    base: dict[str, Any] = {"name": "m", "deployment": "dep", "reference": {"first_predictions": 100}, "window": {"kind": "count", "size": 100}}
    with pytest.raises(InvalidInput) as info:
        parse_monitor({**base, **change})
    assert info.value.field == (field if field != "monitor" else None) and message in info.value.message


def test_yaml_file_and_cli(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(8)
    ref = _reference(tmp_path, rng)
    good = tmp_path / "monitors.yaml"
    good.write_text(f"monitors:\n  - name: inputs\n    deployment: dep\n    reference: {{path: {ref}}}\n    window: {{kind: count, size: 200}}\n")
    assert [c.name for c in load_monitors(good)] == ["inputs"]
    base = ["--workspace", str(ws.root)]
    code, out, _ = run_cli([*base, "monitors", "apply", str(good)], capsys)
    assert code == 0 and "dep/inputs" in out
    _log(ws, _frame(200, rng, 1.0), time.time() - 600, 1.0)
    code, out, _ = run_cli([*base, "monitors", "run"], capsys)
    assert code == 0 and "dep/inputs: 200 rows, drift, ALARM (x)" in out
    code, out, _ = run_cli([*base, "monitors", "windows", "dep", "inputs", "--json"], capsys)
    line = json.loads(out)["windows"][0]
    assert line["drift"] is True and line["summary"]["features"][0]["name"] == "x"
    code, out, _ = run_cli([*base, "monitors", "list"], capsys)
    assert code == 0 and "inputs" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("monitors:\n  - name: inputs\n    deployment: dep\n    window: {kind: count, size: 200}\n"
                   "    persistence: {k: 4, n: 2}\n    reference: {first_predictions: 50}\n")
    code, _, err = run_cli([*base, "monitors", "apply", str(bad)], capsys)
    assert code == 2 and err.strip() == "error: monitors[0].persistence: k (4) cannot exceed n (2)."
    code, _, err = run_cli([*base, "monitors", "apply", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "No monitor file" in err
    other = tmp_path / "other.yaml"
    other.write_text("monitors:\n  - {name: m, deployment: ghost, window: {kind: count, size: 50}, reference: {first_predictions: 50}}\n")
    code, _, err = run_cli([*base, "monitors", "apply", str(other)], capsys)
    assert code == 2 and "ghost" in err
    code, _, err = run_cli([*base, "monitors", "remove", "dep", "inputs"], capsys)
    assert code == 0
    code, _, err = run_cli([*base, "monitors", "windows", "dep", "inputs"], capsys)
    assert code == 2 and "No monitor 'inputs'" in err
