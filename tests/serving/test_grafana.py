"""The Grafana dashboard in the repository queries series the server really exports."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fastapi.testclient import TestClient

from mloop.serving import create_app
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, auth_headers, register_monitor, toy_frame

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "mloop-serving.json"


def test_every_dashboard_series_is_exported(deployed: Workspace, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    wanted = {m for e in exprs for m in re.findall(r"\b(mloop_[a-z_]+)", e)}
    reference = tmp_path / "reference.parquet"
    toy_frame(300)[list(TOY_SPEC.features)].to_parquet(reference)
    register_monitor(deployed.store, {"name": "inputs", "deployment": "toy", "reference": {"path": str(reference)},
                          "window": {"kind": "count", "size": 30}, "grace_seconds": 0})
    rows = toy_frame(30)[list(TOY_SPEC.features)]
    with TestClient(create_app(deployed, log_flush_interval=0.05, monitor_interval=0.1), headers=auth_headers(deployed)) as client:
        client.post("/invocations", json={"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}})
        client.post("/invocations", json={"bad": 1})
        client.post("/v2/models/toy/feedback", json={"request_id": "r", "labels": [1]})
        deadline = time.time() + 20
        while "mloop_drift_share{" not in client.get("/metrics").text and time.time() < deadline:
            time.sleep(0.1)
        exported = set(re.findall(r"^(mloop_[a-z_]+)", client.get("/metrics").text, flags=re.M))
    only_after_a_failure_or_a_detection = {"mloop_runtime_fallbacks_total", "mloop_concept_drift_detections_total", "mloop_monitor_alarms_total"}
    assert wanted - exported <= only_after_a_failure_or_a_detection, wanted - exported
    assert len(dashboard["panels"]) >= 6 and dashboard["uid"] == "mloop-serving"
