"""One operation, four faces: the CLI (``--json``), the HTTP API, and the MCP server (in process, over stdio and over
streamable HTTP under ``/mcp``) answer the same, refuse the same roles, and change nothing on a dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from mloop.demo._server_process import free_port
from mloop.errors import Forbidden, InvalidInput
from mloop.mcp import TOOLS, build_server, tool_list
from mloop.mcp._server import compact
from mloop.operations import Caller, Context, catalogue, invoke
from mloop.roles import ROLES
from mloop.server import create_app
from mloop.workspace import Workspace
from tests.conftest import auth_headers, run_cli, train_and_register

#: Read operations and their input, compared across every face.
READS: list[tuple[str, list[str], str, str, dict[str, Any]]] = [
    # operation, CLI args, HTTP path, MCP tool, input
    ("models.list", ["models", "list"], "/api/models", "list_models", {}),
    ("deployments.list", ["deployments", "list"], "/api/deployments", "list_deployments", {}),
    ("runs.list", ["runs", "list", "--limit", "20"], "/api/runs?limit=20", "list_runs", {"limit": 20}),
    ("monitors.list", ["monitors", "list"], "/api/monitors", "list_monitors", {}),
    ("rollouts.status", ["rollout", "status", "toy", "--last", "10"], "/api/deployments/toy/rollout?last=10", "rollout_status",
     {"name": "toy", "last": 10}),
    ("loop.history", ["loop", "history", "toy", "--last", "5"], "/api/loop/history?deployment=toy&last=5", "loop_history",
     {"deployment": "toy", "last": 5}),
    ("features.list", ["features", "list"], "/api/features", "list_features", {}),
]


def _mcp_call(ws: Workspace, role: str, tool: str, arguments: dict[str, Any]) -> Any:
    """A tool call through the SDK's own client, connected in process to mloop's MCP server acting as ``role``."""
    from mcp import Client

    async def main() -> Any:
        async with Client(build_server(ws, lambda _ctx: Caller("agent", role, "test"))) as client:  # type: ignore[arg-type]
            return await client.call_tool(tool, arguments)

    return anyio.run(main)


@pytest.fixture
def client(deployed: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(deployed, monitor_interval=0), headers=auth_headers(deployed)) as c:
        yield c


def test_every_operation_and_tool_is_declared_completely() -> None:
    ops = catalogue()
    assert len({op.name for op in ops}) == len(ops) and all(op.summary and op.role in ROLES and op.http for op in ops)
    assert len({(op.http.method, op.http.path) for op in ops if op.http}) == len(ops)
    assert 10 <= len(TOOLS) <= 15 and len({t.name for t in TOOLS}) == len(TOOLS)
    for tool, listed in zip(TOOLS, tool_list(), strict=True):
        annotations = listed.annotations
        assert annotations is not None and annotations.read_only_hint is (not tool.op.mutates)
        assert ("dry_run" in listed.input_schema["properties"]) is tool.op.mutates, tool.name
        assert f"(role: {tool.op.role})" in (listed.description or "")
        for name, (default, maximum) in tool.caps.items():
            assert listed.input_schema["properties"][name]["maximum"] == maximum and listed.input_schema["properties"][name]["default"] == default


def test_reads_answer_the_same_through_the_cli_http_and_mcp(deployed: Workspace, client: TestClient,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    for name, cli, path, tool, data in READS:
        direct = invoke(name, Context(deployed, Caller("t", "viewer")), data).model_dump(mode="json")
        http = client.get(path)
        assert http.status_code == 200 and http.json() == direct, name
        mcp = _mcp_call(deployed, "viewer", tool, data)
        assert not mcp.is_error and mcp.structured_content == compact(direct), name  # the same, floats to 4 significant digits
        if cli:
            code, out, err = run_cli(["-w", str(deployed.root), *cli, "--json"], capsys)
            assert code == 0 and json.loads(out) == direct, (name, err)
    assert direct == {"entities": {}, "views": [], "services": {}}  # features.list of a store with none: an empty answer, not an error


def test_a_change_below_its_role_is_refused_on_every_face(deployed: Workspace, client: TestClient) -> None:
    viewer_key, _ = deployed.store.api_keys.create("v", "viewer")
    body = {"name": "toy", "model": "toy", "version": 1}
    answer = client.post("/api/deployments", json=body, headers={"Authorization": f"Bearer {viewer_key}"})
    assert answer.status_code == 403 and "needs 'operator'" in answer.json()["error"]
    mcp = _mcp_call(deployed, "viewer", "deploy", {**body, "dry_run": True})  # not even a dry run
    assert mcp.is_error and json.loads(mcp.content[0].text)["status"] == 403
    with pytest.raises(Forbidden, match="needs 'admin'"):
        invoke("keys.list", Context(deployed, Caller("o", "operator")))


def test_a_dry_run_checks_everything_changes_nothing_and_says_what_would(deployed: Workspace, client: TestClient,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    v2 = train_and_register(deployed, alias=None, seed=5)
    body = {"name": "toy", "model": "toy", "version": v2, "strategy": "canary", "steps": [10, 100]}
    plan = client.post("/api/deployments?dry_run=true", json=body).json()
    assert plan == {"dry_run": True, "operation": "deploy",
                    "would": {"start_rollout": {"deployment": "toy", "strategy": "canary", "version": v2, "steps": [10.0, 100.0]}}}
    assert _mcp_call(deployed, "operator", "deploy", {**body, "dry_run": True}).structured_content == compact(plan)
    code, out, _ = run_cli(["-w", str(deployed.root), "deploy", "toy", "--model", "toy", "--version", str(v2), "--strategy", "canary",
                            "--steps", "10,100", "--dry-run", "--json"], capsys)
    assert code == 0 and json.loads(out) == plan
    assert deployed.store.rollouts.live("toy") is None  # none of the three changed anything
    bad = client.post("/api/deployments?dry_run=true", json={**body, "version": 99})  # a dry run checks what the change would
    assert bad.status_code == 404 and "no version 99" in bad.json()["error"]
    key, row = deployed.store.api_keys.create("temp", "viewer")
    assert client.delete(f"/api/keys/{row.id}?dry_run=true").json()["would"] == {"revoke_key": row.id}
    assert deployed.store.api_keys.find_active(row.id) is not None
    started = client.post("/api/deployments", json=body)
    assert started.status_code == 201 and started.json()["rollout"]["kind"] == "canary"
    assert client.get("/api/deployments").json()["deployments"][0]["rollout"]["weights"] == {"baseline": 0.9, "candidate": 0.1}


@pytest.mark.parametrize(
    ("data", "field"),
    [({"name": "toy", "model": "toy"}, "version"), ({"name": "../x", "model": "toy", "version": 1}, "name"),
     ({"name": "toy", "model": "toy", "version": 1, "colour": "red"}, "colour"),
     ({"name": "toy", "model": "toy", "version": 1, "steps": [5, 100]}, "steps")],
    ids=["missing", "bad-name", "unknown-field", "steps-without-canary"],
)
def test_bad_input_names_the_field_on_every_face(deployed: Workspace, client: TestClient, data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        invoke("deploy", Context(deployed, Caller("o", "operator")), data)
    assert caught.value.field == field
    answer = client.post("/api/deployments", json=data)
    assert answer.status_code == 422 and answer.json()["field"] == field
    mcp = json.loads(_mcp_call(deployed, "operator", "deploy", data).content[0].text)
    assert mcp["status"] == 422 and mcp["field"] == field


def test_runs_are_paged_with_a_total(deployed: Workspace, client: TestClient) -> None:
    for seed in range(1, 5):
        train_and_register(deployed, alias=None, seed=seed)
    first, second = client.get("/api/runs?limit=3").json(), client.get("/api/runs?limit=3&offset=3").json()
    assert first["total"] == second["total"] == 5 and len(first["runs"]) == 3 and len(second["runs"]) == 2
    assert not {r["run_id"] for r in first["runs"]} & {r["run_id"] for r in second["runs"]}
    assert client.get("/api/runs?limit=501").status_code == 422


def _serve(ws: Workspace) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mloop", "-w", str(ws.root), "serve", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MLOOP_MONITOR_INTERVAL": "0"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("the server did not become ready: " + proc.communicate()[1][-2000:])


@pytest.mark.slow
def test_mcp_over_streamable_http_and_stdio_with_the_sdk_client(deployed: Workspace) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    viewer_key, _ = deployed.store.api_keys.create("agent", "viewer")
    operator_key, _ = deployed.store.api_keys.create("agent-op", "operator")
    expected = invoke("deployments.list", Context(deployed, Caller("t", "viewer"))).model_dump(mode="json")
    proc, url = _serve(deployed)

    async def over_http(key: str | None) -> list[Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            listed = await c.call_tool("list_deployments", {})
            refused = await c.call_tool("deploy", {"name": "toy", "model": "toy", "version": 1, "dry_run": True})
            whoami = await c.call_tool("whoami", {})
            return [names, listed.structured_content, refused, whoami.structured_content]

    async def over_stdio() -> list[Any]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "mloop", "-w", str(deployed.root), "mcp", "--role", "viewer"])
        async with Client(params) as c:
            listed = await c.call_tool("list_deployments", {})
            refused = await c.call_tool("change_rollout", {"name": "toy", "action": "rollback"})
            return [listed.structured_content, refused]

    try:
        names, listed, refused, whoami = anyio.run(over_http, viewer_key)
        assert names == [t.name for t in TOOLS] and listed == compact(expected)
        assert refused.is_error and json.loads(refused.content[0].text)["status"] == 403
        assert whoami == {"subject": "agent", "role": "viewer", "via": "mcp-api_key"}
        _, _, allowed, _ = anyio.run(over_http, operator_key)
        assert not allowed.is_error and allowed.structured_content["would"]["serve"]["version"] == 1
        assert httpx.post(f"{url}/mcp", json={}).status_code == 401  # no credential: refused before the MCP server sees it
        listed, refused = anyio.run(over_stdio)
        assert listed == compact(expected) and refused.is_error and "needs 'operator'" in refused.content[0].text
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_the_documentation_lists_every_operation_and_tool() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = [op.name for op in catalogue() if f"| `{op.name}` |" not in text] + [t.name for t in TOOLS if f"| `{t.name}` |" not in text]
    assert missing == [], f"docs/operations.md does not list {missing}"


def test_a_deployment_serves_one_model(deployed: Workspace, client: TestClient) -> None:
    train_and_register(deployed, name="other", alias="champion", seed=3)
    answer = client.post("/api/deployments", json={"name": "toy", "model": "other", "version": 1})
    assert answer.status_code == 422 and answer.json()["field"] == "model" and "serves 'toy'" in answer.json()["error"]
    assert deployed.registry.resolve("other", "champion").version == 1 and deployed.store.deployments.get("toy").model_name == "toy"


def test_predict_scores_and_explains_the_same_on_every_face_for_a_predictor(deployed: Workspace, client: TestClient,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import TOY_SPEC, toy_frame

    rows = toy_frame(3, seed=4)[list(TOY_SPEC.features)].to_dict("records")
    data = {"name": "toy", "rows": rows, "explain": True}
    direct = invoke("predict", Context(deployed, Caller("p", "predictor")), data).model_dump(mode="json")
    assert len(direct["predictions"]) == 3 and direct["version"] == 1
    for p, e in zip(direct["predictions"], direct["explanations"], strict=True):  # attributions add up to what is explained
        assert abs(e["base_value"] + sum(e["attributions"].values()) - e["output"]) < 1e-6 and abs(sum(p) - 1) < 1e-9
    http = client.post("/api/deployments/toy/predict", json={"rows": rows, "explain": True})
    assert http.status_code == 200 and http.json() == direct
    assert _mcp_call(deployed, "predictor", "predict", data).structured_content == compact(direct)
    code, out, _ = run_cli(["-w", str(deployed.root), "predict", "toy", "--rows", json.dumps(rows), "--explain"], capsys)
    assert code == 0 and json.loads(out) == direct
    assert json.loads(_mcp_call(deployed, "viewer", "predict", data).content[0].text)["status"] == 403
    bad = client.post("/api/deployments/toy/predict", json={"rows": [{**rows[0], "colour": 1}]})
    assert bad.status_code == 422 and bad.json()["field"] == "rows" and "unknown colour" in bad.json()["error"]
    too_many = json.loads(_mcp_call(deployed, "predictor", "predict", {"name": "toy", "rows": rows * 7}).content[0].text)
    assert too_many["status"] == 422 and too_many["field"] == "rows"
