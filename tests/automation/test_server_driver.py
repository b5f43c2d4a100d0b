"""`mloop serve` alone drives a rollout: a canary set from the command line advances and is promoted by the server's
own driver, with no other process, and the decisions show in the API, the bus and Prometheus."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from mloop.demo._server_process import ServerProcess
from mloop.workspace import Workspace
from tests.conftest import run_cli, train_and_register

BODY = {"dataframe_split": {"columns": ["x1", "x2", "x3", "color"], "data": [[0.1, -0.3, 1.2, "red"]]}}


def _send(client: httpx.Client, n: int, start: int) -> set[str]:
    versions = set()
    for i in range(start, start + n):
        answer = client.post("/invocations", json=BODY, headers={"X-Routing-Key": f"user-{i}"})
        assert answer.status_code == 200, answer.text
        versions.add(answer.headers["x-model-version"])
    return versions


@pytest.mark.slow
def test_a_canary_set_from_the_cli_is_advanced_and_promoted_by_the_server_alone(
    deployed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    monkeypatch.setenv("MLOOP_ROLLOUT_INTERVAL", "0.2")
    monkeypatch.setenv("MLOOP_MONITOR_INTERVAL", "0")
    monkeypatch.setenv("MLOOP_HOME", str(deployed.root))
    policy = tmp_path / "canary.yaml"
    policy.write_text("policy: canary\nbaseline: '1'\ncandidate: '2'\nsteps: [30, 100]\nmin_samples: 60\nmin_seconds: 0\n")
    with ServerProcess(deployed.root, log_file=tmp_path / "server.log", log_flush_interval=0.1, event_poll_interval=0.05) as server, \
            server.client(timeout=10.0) as client:
        code, out, err = run_cli(["rollout", "set", "toy", str(policy), "--reason", "v2 from the notebook"], capsys)
        assert code == 0, err
        assert "canary policy set (revision 1)" in out
        sent, deadline = 0, time.monotonic() + 60
        while deployed.store.rollouts.live("toy") is not None and time.monotonic() < deadline:
            _send(client, 50, sent)
            sent += 50
        assert deployed.store.rollouts.live("toy") is None, "the server's driver took no final decision within 60 s"
        history = deployed.store.rollouts.history("toy")
        assert history[-1].status == "promoted"
        decisions = deployed.store.rollouts.decisions("toy")
        assert [(d.action, d.actor) for d in decisions] == [("promote", "driver")]  # one stage below 100 %: promote ends it
        [errors] = decisions[0].decision["evidence"]
        assert errors["n_candidate"] >= 60 and errors["no_worse"]
        time.sleep(0.5)  # the hub hears the event within its poll interval
        assert _send(client, 20, 10_000) == {"2"}  # every answer now comes from the promoted version
        metrics = client.get("/metrics").text
        assert 'mloop_rollout_decisions_total{action="promote",deployment="toy"} 1.0' in metrics
        status = client.get("/api/deployments/toy/rollout").json()
        assert status["serves"] == 2 and status["decisions"][0]["decision"]["by"] == "driver"
    code, out, _ = run_cli(["rollout", "status", "toy"], capsys)
    assert code == 0 and "every metric shown to be within its tolerance" in out


@pytest.mark.slow
def test_a_policy_file_with_a_problem_is_refused_naming_the_file_and_field(
    deployed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    monkeypatch.setenv("MLOOP_HOME", str(deployed.root))
    cases = {
        "steps.yaml": ("policy: canary\nbaseline: '1'\ncandidate: '2'\nsteps: [5, 250]\n", "steps"),
        "metric.yaml": ("policy: canary\nbaseline: '1'\ncandidate: '2'\nmetrics: {accuracy: {}}\n", "unknown metric 'accuracy'"),
        "broken.yaml": ("policy: [canary\n", "is not valid YAML"),
        "list.yaml": ("- canary\n", "must be an object"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        code, out, err = run_cli(["rollout", "set", "toy", str(tmp_path / name)], capsys)
        assert code == 2 and expected in err and name in err, (name, err)
    code, _, err = run_cli(["rollout", "set", "toy", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "No policy file" in err
    assert deployed.store.rollouts.history("toy") == []


def _fresh_answers(server: ServerProcess, n: int) -> set[str]:
    """The versions that answered ``n`` requests, each on a new connection (so the workers share them)."""
    return {httpx.post(f"{server.url}/invocations", json=BODY, headers=server.headers, timeout=10.0).headers["x-model-version"] for _ in range(n)}


def _within(server: ServerProcess, version: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _fresh_answers(server, 30) == {version}:
            return True
    return False


@pytest.mark.slow
def test_a_blue_green_switch_and_its_rollback_reach_every_worker(
    deployed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    monkeypatch.setenv("MLOOP_MONITOR_INTERVAL", "0")
    monkeypatch.setenv("MLOOP_HOME", str(deployed.root))
    with ServerProcess(deployed.root, log_file=tmp_path / "server.log", workers=2) as server:
        assert _within(server, "1", 30.0), "both workers serve version 1 once started"
        code, out, err = run_cli(["deploy", "toy", "--model", "toy", "--version", "2", "--strategy", "blue-green"], capsys)
        assert code == 0, err
        assert _within(server, "2", 5.0), "every worker answers from version 2 within 5 s of the switch"
        code, out, err = run_cli(["rollout", "rollback", "toy"], capsys)
        assert code == 0 and "serves version 1" in out, err
        assert _within(server, "1", 5.0), "every worker is back on version 1 within 5 s of the rollback"
