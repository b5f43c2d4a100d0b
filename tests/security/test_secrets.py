"""Canary secrets: a database password, an API key and the JWT secret go through the main flows (init,
train, register, deploy, serve, bad requests, metrics, monitors, the CLI and its errors); none may appear in
any output — stdout, stderr, logs, HTTP bodies and headers, Prometheus series, tracked params and tags."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mloop.server import create_app
from mloop.workspace import Workspace
from tests.conftest import PG_ADMIN_URL, TOY_SPEC, deploy, run_cli, toy_frame, train_and_register

CANARY = "CanaryPw-" + uuid.uuid4().hex[:12]


@pytest.mark.slow
@pytest.mark.postgres
def test_no_secret_reaches_any_output(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    # trust auth accepts any password, so the canary is a real part of a working URL
    secret_url = pg_url.replace("postgres@", f"postgres:{CANARY}@", 1)
    monkeypatch.setenv("MLOOP_DATABASE_URL", secret_url)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    ws = Workspace.init(tmp_path / "ws")
    seen.append(repr(ws.store))
    train_and_register(ws)
    deploy(ws, "toy", "toy", "champion")
    api_key, _ = ws.store.api_keys.create("canary", "predictor")
    jwt_secret = ws.keyring.jwt_secret().decode()
    secrets = [CANARY, api_key.split("_", 2)[2], jwt_secret, ws.keyring.credential().split("_", 2)[2]]

    rows = toy_frame(3)[list(TOY_SPEC.features)]
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    with TestClient(create_app(ws, monitor_interval=0)) as client:
        for headers, path, payload in [
            ({"Authorization": f"Bearer {api_key}"}, "/invocations", body),
            ({"Authorization": f"Bearer {api_key}"}, "/invocations", {"bad": 1}),
            ({"Authorization": f"Bearer {api_key}x"}, "/invocations", body),  # a wrong key: the error must not echo it
            ({"Authorization": f"Bearer {api_key}"}, "/api/keys", {"name": "x", "role": "admin"}),
            ({"Authorization": f"Bearer {ws.keyring.credential()}"}, "/api/keys", {"name": "y", "role": "viewer", "secret": api_key}),
        ]:
            resp = client.post(path, json=payload, headers=headers)
            seen += [resp.text, str(dict(resp.headers))]
        for path in ("/metrics", "/api/keys", "/api/whoami", "/v2/models/toy/stats", "/openapi.json"):
            resp = client.get(path, headers={"Authorization": f"Bearer {ws.keyring.credential()}"})
            seen.append(resp.text)
    for args in (["deployments", "list"], ["models", "list"], ["auth", "list-keys"], ["monitors", "list"],
                 ["models", "show", "nope"], ["drift", "report", "-r", "missing.parquet", "-c", "x.csv", "--json"]):
        code, out, err = run_cli(["--workspace", str(ws.root), *args], capsys)
        seen += [out, err]
    code, out, err = run_cli(["--workspace", str(ws.root), "log", "collect", "--transport", f"redis://user:{CANARY}@127.0.0.1:1/0", "--once"], capsys)
    seen += [out, err]
    bad = ws.root.parent / "bad"
    monkeypatch.setenv("MLOOP_DATABASE_URL", f"postgresql+psycopg://postgres:{CANARY}@127.0.0.1:1/none")
    code, out, err = run_cli(["--workspace", str(bad), "init"], capsys)
    seen += [out, err]
    monkeypatch.setenv("MLOOP_DATABASE_URL", secret_url)
    client = ws.tracker.client
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=100)
    seen.append(repr([(r.info, r.data.tags, r.data.params, r.data.metrics) for r in runs]))
    seen += [r.getMessage() for r in caplog.records]
    seen += [p.read_text(errors="replace") for p in ws.root.rglob("*") if p.is_file() and p.suffix in (".md", ".html", ".json", ".log", ".yaml")]
    with sa.create_engine(PG_ADMIN_URL).connect() as conn:  # what mloop wrote about itself: audit rows, alerts, events
        schema = pg_url.split("search_path%3D", 1)[1]
        for table in ("audit_log", "events", "alerts"):
            seen += [str(tuple(r)) for r in conn.execute(sa.text(f'SELECT * FROM "{schema}".{table}'))]
    assert any("toy" in text for text in seen) and any("***" in text for text in seen)  # the flows ran; URLs were redacted
    leaks = {s[:6] + "…": [i for i, text in enumerate(seen) if s in text] for s in secrets}
    assert all(not found for found in leaks.values()), leaks
