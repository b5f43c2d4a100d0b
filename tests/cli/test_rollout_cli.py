"""Rollouts from the command line: start, follow, pause, promote and roll back, each decision recorded."""

from __future__ import annotations

import json

import pytest

from mloop.workspace import Workspace
from tests.conftest import run_cli, train_and_register

pytestmark = pytest.mark.slow  # each test deploys two versions in a workspace of its own


def test_a_canary_from_the_cli_to_promotion_and_back(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    train_and_register(deployed, alias="challenger", seed=5)  # version 2
    base = ["--workspace", str(deployed.root)]

    def status() -> dict:
        code, out, err = run_cli([*base, "rollout", "status", "toy", "--json"], capsys)
        assert code == 0, err
        return json.loads(out)

    code, out, _ = run_cli([*base, "deploy", "toy", "--model", "toy", "--version", "2", "--strategy", "canary", "--steps", "10,100"], capsys)
    assert code == 0 and "canary rollout of version 2 started (policy revision 1)" in out
    now = status()
    assert now["serves"] == 1 and now["live"]["kind"] == "canary" and now["live"]["weights"] == {"baseline": 0.9, "candidate": 0.1}
    code, out, _ = run_cli([*base, "rollout", "status", "toy"], capsys)
    assert code == 0 and "canary (revision 1, active) over version 1: baseline 90%, candidate 10%" in out
    assert run_cli([*base, "rollout", "pause", "toy"], capsys)[0] == 0 and status()["live"]["status"] == "paused"
    code, _, err = run_cli([*base, "rollout", "pause", "toy"], capsys)
    assert code == 1 and "already paused" in err  # the operation failed (the input was fine)
    assert run_cli([*base, "rollout", "resume", "toy"], capsys)[0] == 0 and status()["live"]["status"] == "active"
    code, out, _ = run_cli([*base, "rollout", "promote", "toy"], capsys)
    assert code == 0 and "promoted; serves version 2" in out
    after = status()
    assert after["serves"] == 2 and after["live"] is None and after["history"][0]["status"] == "promoted"
    assert [d["action"] for d in after["decisions"]] == ["pause", "resume", "promote"]
    assert all(d["actor"].startswith("cli") for d in after["decisions"])
    code, out, _ = run_cli([*base, "rollout", "rollback", "toy"], capsys)  # no rollout live: undo the promotion
    assert code == 0 and "rolled back; serves version 1" in out and status()["serves"] == 1


def test_blue_green_switches_at_once_and_rolls_back_to_the_standby(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    base = ["--workspace", str(deployed.root)]
    assert run_cli([*base, "deploy", "toy", "--model", "toy", "--version", "2", "--strategy", "blue-green"], capsys)[0] == 0
    code, out, _ = run_cli([*base, "rollout", "status", "toy", "--json"], capsys)
    assert json.loads(out)["live"]["weights"] == {"active": 1.0, "standby": 0.0}
    code, out, _ = run_cli([*base, "rollout", "rollback", "toy"], capsys)
    assert code == 0 and "serves version 1" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "9", "--strategy", "canary"], "Model 'toy' has no version 9"),
        (["--version", "2", "--strategy", "rainbow"], "strategy: Input should be 'canary', 'blue-green', 'bandit' or 'shadow'"),
        (["--version", "2", "--strategy", "canary", "--steps", "5,500"], "got 500 in [5, 500]"),
        (["--version", "1", "--strategy", "canary"], "'toy' already serves version 1"),
        (["--version", "2", "--steps", "5,100"], "steps: steps need strategy canary"),
    ],
)
def test_bad_rollouts_are_refused_naming_the_problem(deployed: Workspace, args: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    code, _, err = run_cli(["--workspace", str(deployed.root), "deploy", "toy", "--model", "toy", *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    code, _, err = run_cli(["--workspace", str(deployed.root), "rollout", "promote", "toy"], capsys)
    assert code == 2 and "has no rollout in progress" in err


def test_the_deployment_list_names_the_live_rollout(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    train_and_register(deployed, alias="challenger", seed=5)
    base = ["--workspace", str(deployed.root)]
    assert run_cli([*base, "deploy", "toy", "--model", "toy", "--version", "2", "--strategy", "bandit"], capsys)[0] == 0
    code, out, _ = run_cli([*base, "deployments", "list"], capsys)
    assert code == 0 and "bandit r1 (active)" in out
