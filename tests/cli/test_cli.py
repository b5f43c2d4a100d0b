from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mloop.workspace import Workspace
from tests.conftest import run_cli


def test_help_lists_the_groups(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for group in ("init", "demo", "serve", "runs", "models", "deployments"):
        assert group in out


def test_init_then_list_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    assert run_cli(["init", str(ws)], capsys)[0] == 0
    assert (ws / "mloop.db").exists()
    for args in (["runs", "list"], ["models", "list"], ["deployments", "list"]):
        code, out, err = run_cli(["--workspace", str(ws), *args], capsys)
        assert code == 0, err


def test_models_show_prints_versions_and_card(deployed: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-w", str(deployed.root), "models", "show", "toy", "--version", "champion"], capsys)
    assert code == 0, err
    assert "Model card: toy v1" in out and "champion" in out
    code, out, _ = run_cli(["-w", str(deployed.root), "deployments", "list"], capsys)
    assert "toy" in out and "champion" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "list"], "No mloop workspace at"),
        (["models", "show", "../etc"], "Invalid model name '../etc'"),
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


def test_real_process_error_and_debug_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "mloop", "-w", str(tmp_path / "none"), "models", "list"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and plain.stderr.startswith("error: No mloop workspace") and "Traceback" not in plain.stderr
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
