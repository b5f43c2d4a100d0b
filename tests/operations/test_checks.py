"""A change's dry run checks what the change checks, and a change refused leaves nothing half done: deploying a
version whose files no longer match their signed hashes, rollouts the real run would refuse, policy documents that
are not what they should be, rows of the wrong type, and retraining policies for a deployment that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mloop.operations import Caller, Context, invoke
from mloop.server import create_app
from mloop.workspace import Workspace
from tests.conftest import auth_headers, train_and_register

ROW = {"x1": 0.1, "x2": -0.2, "x3": 1.0, "color": "red"}


@pytest.fixture
def client(deployed: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(deployed, monitor_interval=0), headers=auth_headers(deployed)) as c:
        yield c


def _both(client: TestClient, method: str, path: str, body: Any) -> tuple[Any, Any]:
    """The dry run's and the change's answers to the same request."""
    dry = client.request(method, f"{path}?dry_run=true", json=body)
    return dry, client.request(method, path, json=body)


def test_a_tampered_version_is_refused_by_the_dry_run_and_no_alias_moves(deployed: Workspace, client: TestClient) -> None:
    train_and_register(deployed, alias=None, seed=3)  # version 2, no alias yet
    folder = deployed.registry.artifact_dir("toy", 2)
    with open(f"{folder}/model.skops", "ab") as fh:
        fh.write(b"x")
    for body, alias in (({"name": "toy", "model": "toy", "version": 2}, "champion"),
                        ({"name": "toy-b", "model": "toy", "version": 2, "alias": "staging"}, "staging")):
        dry, real = _both(client, "POST", "/api/deployments", body)
        assert dry.status_code == real.status_code == 409 and "does not match its registered SHA-256" in dry.json()["error"], body
        assert [v.version for v in deployed.registry.versions("toy") if alias in v.aliases] in ([1], []), alias
    assert [d.name for d in deployed.store.deployments.list()] == ["toy"]


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"version": 1, "strategy": "canary"}, "version", "already serves version 1"),
    ({"version": 2, "strategy": "blue-green", "steps": [10, 100]}, "steps", "steps need strategy canary"),
    ({"version": 2, "strategy": "canary", "steps": [1e308, 100]}, "steps", "step"),
])
def test_a_rollout_the_change_refuses_is_refused_by_its_dry_run(deployed: Workspace, client: TestClient, body: dict[str, Any],
                                                              field: str, message: str) -> None:
    train_and_register(deployed, alias=None, seed=3)
    dry, real = _both(client, "POST", "/api/deployments", {"name": "toy", "model": "toy", **body})
    assert dry.status_code == real.status_code == 422 and dry.json() == real.json(), (dry.text, real.text)
    assert dry.json()["field"].startswith(field) and message in dry.json()["error"]
    assert deployed.store.rollouts.live("toy") is None


@pytest.mark.parametrize(("document", "field"), [
    (["x"], "body"),
    ({"policy": ["canary"]}, "policy"),
    ({"policy": "canary", "baseline": "1", "candidate": "99999999999999999999"}, "candidate"),
    ({"policy": "canary", "baseline": "1", "candidate": "0"}, "candidate"),
])
def test_odd_policy_documents_are_a_422_naming_the_field(client: TestClient, document: Any, field: str) -> None:
    dry, real = _both(client, "PUT", "/api/deployments/toy/rollout", document)
    assert dry.status_code == real.status_code == 422 and dry.json()["field"] == field, (dry.text, real.text)


@pytest.mark.parametrize(("change", "field"), [({"x1": "abc"}, "x1"), ({"x1": [1, 2]}, "x1"), ({"color": 1.5}, "color")])
def test_a_row_of_the_wrong_type_is_a_422_naming_its_column(client: TestClient, change: dict[str, Any], field: str) -> None:
    for explain in (False, True):
        reply = client.post("/api/deployments/toy/predict", json={"rows": [ROW, {**ROW, **change}], "explain": explain})
        assert reply.status_code == 422 and reply.json()["field"] == f"rows[1].{field}", reply.text
    assert client.post("/api/deployments/toy/predict", json={"rows": [ROW]}).status_code == 200


def test_a_policy_for_a_deployment_that_does_not_exist_is_refused_alike(deployed: Workspace) -> None:
    from mloop.errors import MloopError

    policy = {"deployment": "nope", "data": {"rows": 5000, "min_rows": 300, "holdout": 0.3}, "recipe": {"callable": "mloop.training:tabular"}}
    answers = []
    for dry_run in (True, False):
        with pytest.raises(MloopError) as raised:
            invoke("loop.apply", Context(deployed, Caller("t", "operator")), {"policy": policy}, dry_run=dry_run)
        answers.append((raised.value.status_code, raised.value.field, raised.value.message))
    assert answers[0] == answers[1] and answers[0][:2] == (422, "policy.deployment"), answers
    assert deployed.store.loop.policy("nope") is None


def test_a_policy_file_is_checked_whole_before_any_entry_is_applied(deployed: Workspace, tmp_path: Any,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    entry = "  - deployment: {}\n    data: {{rows: 5000, min_rows: 300, holdout: 0.3}}\n    recipe: {{callable: 'mloop.training:tabular'}}\n"
    (tmp_path / "loop.yaml").write_text("policies:\n" + entry.format("toy") + entry.format("nope"))
    for extra in (["--dry-run"], []):
        code, out, err = run_cli(["-w", str(deployed.root), "loop", "apply", str(tmp_path / "loop.yaml"), *extra], capsys)
        assert code == 2 and "policies[1].deployment: no deployment 'nope'" in err and "dry run" not in out, (extra, out, err)
    assert deployed.store.loop.policy("toy") is None  # the good entry was not applied either


@pytest.mark.parametrize(("tool", "arguments", "field"), [
    ("list_runs", {"limit": "500"}, "limit"),
    ("list_runs", {"limit": 500.0}, "limit"),
    ("drift_windows", {"deployment": "toy", "name": "drift", "features": "true", "last": "50"}, "last"),
    ("drift_windows", {"deployment": "toy", "name": "drift", "features": 1, "last": 3}, "last"),
])
def test_mcp_page_caps_hold_whatever_form_a_number_takes(deployed: Workspace, tool: str, arguments: dict[str, Any], field: str) -> None:
    import json

    from tests.operations.test_faces import _mcp_call

    result = _mcp_call(deployed, "viewer", tool, arguments)
    body = json.loads(result.content[0].text)
    assert result.is_error and body["status"] == 422 and body["field"] == field and "through MCP" in body["error"], body


def test_the_rollout_history_is_as_long_as_asked(deployed: Workspace, client: TestClient) -> None:
    train_and_register(deployed, alias=None, seed=3)
    for _ in range(4):
        assert client.post("/api/deployments/toy/rollout", json={"version": 2, "strategy": "blue-green"}).status_code == 201
        assert client.post("/api/deployments/toy/rollout/rollback").status_code == 200
    status = client.get("/api/deployments/toy/rollout?last=3").json()
    assert status["revisions"] == 4 and [h["revision"] for h in status["history"]] == [2, 3, 4]
    assert len(client.get("/api/deployments/toy/rollout").json()["history"]) == 4


def test_a_new_deployment_loads_and_verifies_its_version_once(deployed: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.registry import Registry

    train_and_register(deployed, alias=None, seed=3)
    loads: list[tuple[str, Any]] = []
    real = Registry.load
    monkeypatch.setattr(Registry, "load", lambda self, name, ref="champion": loads.append((name, ref)) or real(self, name, ref))
    done = invoke("deploy", Context(deployed, Caller("t", "operator")), {"name": "toy-b", "model": "toy", "version": 2, "alias": "staging"})
    assert done.version == 2 and deployed.registry.resolve("toy", "staging").version == 2
    assert loads == [("toy", 2)]  # checked once, before the alias moved; the deployment reuses that check
