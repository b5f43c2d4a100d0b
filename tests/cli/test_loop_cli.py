"""The loop from the command line: apply a policy file, retrain by hand, let `mloop controller --once` do the work,
and read the history as a person and as JSON (the fields a program relies on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.workspace import Workspace
from tests.automation.test_loop import _changed_world, _log_labelled
from tests.conftest import run_cli

POLICY = """policies:
  - deployment: toy
    data: {rows: 5000, min_rows: 300, holdout: 0.3}
    recipe: {callable: "mloop.training:tabular", params: {max_iter: 30}}
    rollout: {strategy: blue-green}
"""


@pytest.mark.slow
def test_apply_retrain_run_once_and_read_the_history(deployed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import json

    monkeypatch.setenv("MLOOP_HOME", str(deployed.root))
    _log_labelled(deployed, _changed_world(3000, seed=1))
    (tmp_path / "loop.yaml").write_text(POLICY)
    code, out, err = run_cli(["loop", "apply", str(tmp_path / "loop.yaml")], capsys)
    assert code == 0 and "toy: retraining policy revision 1 applied" in out, err
    code, out, _ = run_cli(["retrain", "toy", "--reason", "new season"], capsys)
    assert code == 0 and "toy: attempt 1 opened" in out
    code, out, _ = run_cli(["retrain", "toy"], capsys)
    assert code == 1  # the operation failed: one in flight already
    code, out, err = run_cli(["controller", "--once"], capsys)
    assert code == 0 and "loop-controller: one pass done" in out, err
    code, out, _ = run_cli(["loop", "history", "toy", "--json"], capsys)
    [attempt] = json.loads(out)["attempts"]
    assert {"id", "deployment", "trigger", "steps", "result", "human"} <= set(attempt)
    assert attempt["result"] == "promoted" and attempt["human"] is False and attempt["trigger"]["kind"] == "manual"
    assert attempt["trigger"]["detail"]["reason"] == "new season"
    assert [s["name"] for s in attempt["steps"]] == ["train", "gate", "rollout"]
    assert all({"name", "started_at", "finished_at", "outcome", "detail"} <= set(s) for s in attempt["steps"])
    code, out, _ = run_cli(["loop", "history"], capsys)
    assert code == 0 and "attempt 1" in out and "promoted" in out and "version 2 from 2,100 rows" in out
    code, out, _ = run_cli(["loop", "status", "toy"], capsys)
    assert code == 0 and "retraining policy revision 1" in out and "promoted" in out
    code, out, _ = run_cli(["deployments", "list"], capsys)
    assert "toy" in out
    code, out, _ = run_cli(["loop", "remove", "toy", "--dry-run"], capsys)
    assert code == 0 and "dry run of loop.remove" in out and '"revision": 1' in out
    code, out, _ = run_cli(["loop", "status", "toy"], capsys)
    assert "retraining policy revision 1" in out  # the dry run removed nothing
    code, out, _ = run_cli(["loop", "remove", "toy"], capsys)
    assert code == 0 and "revision 1 removed" in out
    code, _, err = run_cli(["loop", "remove", "toy", "--dry-run"], capsys)
    assert code == 2 and "no retraining policy" in err
    code, _, err = run_cli(["retrain", "toy"], capsys)
    assert code == 2 and "no retraining policy" in err


def test_a_bad_policy_file_is_refused_naming_the_field(deployed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLOOP_HOME", str(deployed.root))
    (tmp_path / "bad.yaml").write_text(POLICY.replace("holdout: 0.3", "holdout: 0.9"))
    code, _, err = run_cli(["loop", "apply", str(tmp_path / "bad.yaml")], capsys)
    assert code == 2 and "bad.yaml" in err and "policies[0].data.holdout" in err
    code, _, err = run_cli(["loop", "status", "nope"], capsys)
    assert code == 2 and "nope" in err
    assert deployed.store.loop.policies() == []
