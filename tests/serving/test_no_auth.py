"""No unauthenticated server on a public address, by any route: authentication turned off by the CLI flag, by
MLOOP_AUTH or through the Python API is refused on a non-loopback address, and served (every route, without
a credential) on loopback; an app built without authentication answers only loopback connections however it
is run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from mloop.demo._server_process import free_port
from mloop.errors import InvalidInput
from mloop.server import create_app
from mloop.serving import serve
from mloop.workspace import Workspace

ROWS = {"dataframe_records": [{"x1": 0.1, "x2": 0.2, "x3": 0.3, "color": "red"}]}


@pytest.fixture(scope="module")
def ws(shared_deployed: Workspace) -> Workspace:
    return shared_deployed


def _concrete(path: str) -> str:
    return path.replace("{name}", "toy").replace("{key_id}", "0123456789ab").replace("{deployment}", "toy")


def _every_route(client: TestClient) -> list[tuple[str, str, str | None]]:
    return [(r.method, _concrete(r.path), r.role) for r in client.app.table.routes]  # type: ignore[attr-defined]


# -- the Python API: the app factory -----------------------------------------------------------------


def test_app_without_auth_refuses_every_route_on_a_non_loopback_address(ws: Workspace) -> None:
    app = create_app(ws, auth=False, monitor_interval=0)
    with TestClient(app, base_url="http://10.1.2.3") as client:
        checked = 0
        for method, path, role in _every_route(client):
            if method == "DELETE":
                continue  # would delete state the loopback test below reads
            resp = client.request(method, path, json=ROWS if method == "POST" else None)
            if role is None:  # the probes, and the dashboard's page, assets and session (no data: every /api route is refused)
                assert resp.status_code == {("GET", "/ui/assets/toy"): 404, ("POST", "/ui/session"): 422}.get((method, path), 200), (method, path)
            else:
                assert resp.status_code == 403, (method, path, resp.status_code)
                assert "only allowed on a loopback address" in resp.json()["error"]
                checked += 1
        assert checked >= 15
        assert client.get("/nope").status_code == 403  # unknown paths too: nothing is revealed


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost"])
def test_app_without_auth_serves_every_route_on_loopback(ws: Workspace, host: str) -> None:
    app = create_app(ws, auth=False, monitor_interval=0)
    with TestClient(app, base_url=f"http://{host}") as client:
        for method, path, _role in _every_route(client):
            if method == "DELETE":
                continue
            resp = client.request(method, path, json=ROWS if "invocations" in path else None)
            assert resp.status_code not in (401, 403), (host, method, path, resp.status_code)
        assert client.post("/models/toy/invocations", json=ROWS).status_code == 200
        assert client.get("/api/whoami").json() == {"subject": "anonymous", "role": "admin", "via": "no-auth"}


def test_app_with_auth_from_settings_off_still_guards_public_addresses(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_AUTH", "false")
    app = create_app(Workspace.open(ws.root), monitor_interval=0)  # auth from MLOOP_AUTH
    with TestClient(app, base_url="http://192.168.7.7") as client:
        assert client.get("/api/keys").status_code == 403
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/keys").status_code == 200


# -- the Python API: serve() ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.org"])
def test_serve_refuses_auth_off_on_a_non_loopback_address(ws: Workspace, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="only allowed on a loopback address") as info:
        serve(ws, host=host, port=free_port(), auth=False)
    assert info.value.field == "auth"
    monkeypatch.setenv("MLOOP_AUTH", "false")
    with pytest.raises(InvalidInput, match="only allowed on a loopback address") as info:
        serve(Workspace.open(ws.root), host=host, port=free_port())
    assert info.value.field == "MLOOP_AUTH"


# -- the CLI flag and the environment, as real processes ---------------------------------------------------


def _mloop(ws: Workspace, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mloop", "-w", str(ws.root), "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MLOOP_MONITOR_INTERVAL": "0", **(env or {})},
    )


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--no-auth"], None, "--no-auth"),
    ([], {"MLOOP_AUTH": "false"}, "MLOOP_AUTH"),
], ids=["flag", "environment"])
def test_cli_refuses_auth_off_on_a_public_address(ws: Workspace, args: list[str], env: dict[str, str] | None, named: str) -> None:
    proc = _mloop(ws, ["--host", "0.0.0.0", "--port", str(free_port()), *args], env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    assert err.startswith(f"error: {named}: serving without authentication is only allowed on a loopback address")
    assert "serving" not in out  # no banner: nothing started


@pytest.mark.slow
@pytest.mark.parametrize(("args", "env"), [(["--no-auth"], None), ([], {"MLOOP_AUTH": "false"})], ids=["flag", "environment"])
def test_cli_serves_without_auth_on_loopback_and_says_so(ws: Workspace, args: list[str], env: dict[str, str] | None) -> None:
    port = free_port()
    proc = _mloop(ws, ["--host", "127.0.0.1", "--port", str(port), *args], env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not become ready")
        assert httpx.get(f"http://127.0.0.1:{port}/api/keys").status_code == 200  # no credential needed on loopback
        assert httpx.post(f"http://127.0.0.1:{port}/models/toy/invocations", json=ROWS).status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert "authentication OFF (loopback only)" in " ".join(out.split())  # the banner says what is true


def test_the_banner_says_auth_is_on_by_default(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The banner comes from serve() itself; here it is caught before uvicorn starts by a bad TLS pair."""
    lines: list[str] = []
    with pytest.raises(InvalidInput, match="--tls-key"):
        serve(ws, host="0.0.0.0", port=free_port(), tls_cert=Path(__file__), announce=lines.append)
    assert lines == []  # refused before announcing anything
    monkeypatch.setattr("uvicorn.Server.run", lambda self, *a, **k: None)
    serve(ws, host="0.0.0.0", port=free_port(), announce=lines.append)
    assert lines and "authentication on" in lines[0] and "http://0.0.0.0" in lines[0] and "['toy']" in lines[0]


def test_websockets_and_mounted_paths_go_through_the_same_checks(ws: Workspace) -> None:
    """No route is a websocket: one is refused before the app sees it, even without authentication on loopback.
    Behind a proxy that mounts the server under a prefix (``root_path``), routes match without the prefix."""
    import asyncio

    app = create_app(ws, auth=False, monitor_interval=0)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "websocket", "path": "/api/keys", "server": ("127.0.0.1", 8080), "headers": []}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    with TestClient(app, base_url="http://127.0.0.1", root_path="/mloop") as client:
        assert client.get("/mloop/api/whoami").json()["via"] == "no-auth"
        assert client.get("/mloop/v2/health/ready").status_code == 200


def test_without_auth_a_request_addressed_to_another_name_or_from_another_origin_is_refused(ws: Workspace) -> None:
    app = create_app(ws, auth=False, monitor_interval=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/keys").status_code == 200
        assert client.get("/api/keys", headers={"host": "localhost:8080", "origin": "http://127.0.0.1:8080"}).status_code == 200
        rebound = client.get("/api/keys", headers={"host": "evil.example"})  # DNS rebinding: another name now points here
        assert rebound.status_code == 403 and "loopback name" in rebound.json()["error"]
        cross = client.post("/api/deployments", json={"name": "toy", "model": "toy", "version": 1}, headers={"origin": "https://evil.example"})
        assert cross.status_code == 403 and "loopback origin" in cross.json()["error"]
