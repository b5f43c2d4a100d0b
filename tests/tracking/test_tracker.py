from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pytest

from mloop.workspace import Workspace
from tests.conftest import toy_frame


def test_runs_record_lineage_visible_to_stock_mlflow(workspace: Workspace) -> None:
    frame = toy_frame(100)
    with workspace.tracker.start_run("exp", run_name="r1", seed=7) as run:
        fp = run.log_dataset(frame, context="training", name="toy", targets="y")
        run.log_params({"lr": 0.1})
        run.log_metrics({"auc": 0.9})
    mlflow.set_tracking_uri(workspace.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["exp"])
    row = runs.iloc[0]
    assert row["params.lr"] == "0.1" and row["params.seed"] == "7" and row["metrics.auc"] == 0.9
    assert row["tags.mloop.dataset.training.sha256"] == fp.sha256
    assert row["tags.mloop.dataset.training.rows"] == "100"
    assert row["tags.mloop.env.python"].count(".") == 2
    assert "tags.mloop.env.scikit-learn" in runs.columns
    lineage = workspace.tracker.lineage(run.run_id)
    assert lineage["seed"] == 7
    assert lineage["datasets"]["training"]["sha256"] == fp.sha256
    assert lineage["environment"]["packages"]["mlflow"] == mlflow.__version__
    inputs = mlflow.get_run(run.run_id).inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["toy"]
    import json

    assert json.loads(inputs[0].dataset.profile) == {"num_rows": 100, "num_elements": 500}  # the whole frame
    assert [c["name"] for c in json.loads(inputs[0].dataset.schema)["mlflow_colspec"]] == ["x1", "x2", "x3", "color", "y"]


def test_code_version_has_commit_and_dirty_hash(tmp_path: Path, workspace: Workspace) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    with workspace.tracker.start_run("exp", code_dir=repo) as clean:
        pass
    (repo / "train.py").write_text("print(2)\n")
    with workspace.tracker.start_run("exp", code_dir=repo) as dirty:
        pass
    client = workspace.tracker.client
    clean_tags = client.get_run(clean.run_id).data.tags
    dirty_tags = client.get_run(dirty.run_id).data.tags
    assert clean_tags["mloop.code.commit"] == commit == dirty_tags["mloop.code.commit"]
    assert clean_tags["mloop.code.dirty_sha256"] == ""
    assert len(dirty_tags["mloop.code.dirty_sha256"]) == 64


def test_code_version_outside_git(tmp_path: Path) -> None:
    from mloop.tracking import code_version

    assert code_version(tmp_path).commit is None


@pytest.mark.slow
def test_two_workspaces_in_one_process_log_to_their_own_stores(tmp_path: Path) -> None:
    """No MLflow process-wide state: runs interleaved between two workspaces (one nested inside the other's) land
    in their own stores, and MLflow's global tracking URI and active run are left alone."""
    from tests.conftest import TOY_SPEC, train_and_register

    global_uri = mlflow.get_tracking_uri()
    a, b = Workspace.init(tmp_path / "a"), Workspace.init(tmp_path / "b")
    with a.tracker.start_run("shared-name", run_name="in-a") as run_a:
        with b.tracker.start_run("shared-name", run_name="in-b") as run_b:
            run_b.log_metrics({"which": 2.0})
            run_a.log_metrics({"which": 1.0})
        assert mlflow.active_run() is None
    assert mlflow.get_tracking_uri() == global_uri
    assert [(r.name, r.metrics) for r in a.tracker.list_runs()] == [("in-a", {"which": 1.0})]
    assert [(r.name, r.metrics) for r in b.tracker.list_runs()] == [("in-b", {"which": 2.0})]

    assert train_and_register(a, name="alpha") == 1 and train_and_register(b, name="beta") == 1
    assert [m["name"] for m in a.registry.list_models()] == ["alpha"]
    assert [m["name"] for m in b.registry.list_models()] == ["beta"]
    assert a.registry.artifact_dir("alpha", 1).is_relative_to(a.root) and b.registry.artifact_dir("beta", 1).is_relative_to(b.root)
    scores = a.registry.load("alpha").score(toy_frame(5)[list(TOY_SPEC.features)])
    assert scores.shape == (5,)
    assert mlflow.get_tracking_uri() == global_uri


def test_a_failing_block_ends_its_run_failed(workspace: Workspace) -> None:
    import pytest

    with pytest.raises(RuntimeError), workspace.tracker.start_run("exp", run_name="boom"):
        raise RuntimeError("boom")
    assert [(r.name, r.status) for r in workspace.tracker.list_runs()] == [("boom", "FAILED")]
