"""The Grafana dashboard in the repository queries series the server really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from mloop.serving import create_app
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "mloop-serving.json"


def test_every_dashboard_series_is_exported(deployed: Workspace) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    wanted = {m for e in exprs for m in re.findall(r"\b(mloop_[a-z_]+)", e)}
    rows = toy_frame(2)[list(TOY_SPEC.features)]
    with TestClient(create_app(deployed)) as client:
        client.post("/invocations", json={"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}})
        client.post("/invocations", json={"bad": 1})
        client.post("/v2/models/toy/feedback", json={"request_id": "r", "labels": [1]})
        exported = set(re.findall(r"^(mloop_[a-z_]+)", client.get("/metrics").text, flags=re.M))
    runtime_fallbacks_only_after_a_failure = {"mloop_runtime_fallbacks_total"}
    assert wanted - exported <= runtime_fallbacks_only_after_a_failure, wanted - exported
    assert len(dashboard["panels"]) >= 6 and dashboard["uid"] == "mloop-serving"
