from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mloop.workspace import Workspace
from tests.conftest import run_cli

GROUPS = ("init", "demo", "serve", "runs", "models", "deployments", "drift", "auth", "keys", "log", "monitors")


def test_help_lists_every_group_and_each_group_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for group in GROUPS:
        assert re.search(rf"│ {group}\b", out), group
    expected = {
        "runs": ["list"], "models": ["list", "show", "export", "import"], "deployments": ["list"], "drift": ["report"],
        "auth": ["create-key", "list-keys", "revoke", "token"], "keys": ["rotate", "adopt"], "log": ["collect"],
        "monitors": ["apply", "list", "remove", "windows", "run"],
    }
    for group, commands in expected.items():
        code, out, _ = run_cli([group, "--help"], capsys)
        assert code == 0, group
        for command in commands:
            assert re.search(rf"│ {command}\b", out), (group, command)


def test_lists_of_an_empty_workspace_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    code, out, _ = run_cli(["init", str(ws)], capsys)
    assert code == 0 and f"workspace ready at {ws.resolve()}" in " ".join(out.split())
    assert (ws / "mloop.db").exists() and (ws / "keys" / "admin.key").exists()
    for args, hint in ((["runs", "list"], "no runs yet"), (["models", "list"], "no registered models yet"),
                       (["deployments", "list"], "no deployments yet")):
        code, out, err = run_cli(["--workspace", str(ws), *args], capsys)
        assert code == 0, err
        assert out.startswith(hint) and "mloop demo" in out and "│" not in out, (args, out)


def test_lists_show_what_was_tracked_registered_and_deployed(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["-w", str(deployed.root)]
    run = deployed.tracker.list_runs()[0]
    code, out, err = run_cli([*base, "runs", "list"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "experiment toy"  # the experiment's name, not its id
    assert re.fullmatch(rf"  {run.run_id}  FINISHED  20\d\d-\d\d-\d\d \d\d:\d\d  toy-0", lines[1]), lines[1]  # one line at 80 columns
    assert lines[2].split() == ["train_rows=600"]
    code, out, err = run_cli([*base, "models", "list"], capsys)
    assert code == 0, err
    assert re.search(r"│ toy\s+│ 1\s+│ v1\s+│ champion→v1", out), out
    code, out, err = run_cli([*base, "deployments", "list"], capsys)
    assert code == 0, err
    assert re.search(r"│ toy\s+│ toy\s+│ champion\s+│ v1\s+│\s+│ 1", out), out


def test_models_show_prints_versions_and_card(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-w", str(deployed.root), "models", "show", "toy", "--version", "champion"], capsys)
    assert code == 0, err
    assert "Model card: toy v1" in out
    digest = deployed.registry.resolve("toy", 1).manifest_sha256
    assert digest and re.search(rf"│ v1\s+│ champion\s+│ \S+\s+│ {digest[:16]}", out), out


def test_auth_revoke_takes_the_key_out_of_the_list(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["-w", str(workspace.root)]
    code, key, err = run_cli([*base, "auth", "create-key", "--role", "viewer", "--name", "temp"], capsys)
    assert code == 0 and key.startswith("mlk_") and "shown only now" in err
    key_id = key.split("_")[1]
    code, out, _ = run_cli([*base, "auth", "revoke", key_id], capsys)
    assert code == 0 and f"revoked {key_id}" in out
    assert workspace.store.api_keys.active().get(key_id) is None
    code, _, err = run_cli([*base, "auth", "revoke", key_id], capsys)
    assert code == 2 and key_id in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "list"], "No mloop workspace at"),
        (["models", "show", "../etc"], "Invalid model name '../etc'"),
        (["deployments", "list"], "No mloop workspace at"),
    ],
)
def test_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    if "show" in args:
        Workspace.init(ws)
    code, out, err = run_cli(["-w", str(ws), *args], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["serve", "--port", "99999"], capsys)
    assert code == 2 and "--port" in err and "65535" in err


def test_a_misspelt_setting_is_refused_with_the_nearest_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path / "ws")
    monkeypatch.setenv("MLOOP_LOG_TRANSPRT", "redis://127.0.0.1:6379/0")
    code, _, err = run_cli(["-w", str(tmp_path / "ws"), "deployments", "list"], capsys)
    assert code == 2 and err.startswith("error: Unknown setting MLOOP_LOG_TRANSPRT: did you mean MLOOP_LOG_TRANSPORT?")


def test_real_process_error_and_debug_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "mloop", "-w", str(tmp_path / "none"), "models", "list"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and plain.stderr.startswith("error: No mloop workspace") and "Traceback" not in plain.stderr
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
