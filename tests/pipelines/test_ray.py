"""Ray as the scale-out engine: a tune step's trials as four Ray tasks on one journal study (never "database is
locked"), each trial a nested run and the best refit and registered; scoring on Ray Data row for row the same as
local scoring, with the version on each row; an address nobody answers, or Ray missing, refused naming ``--ray``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mloop.cli._app import main
from mloop.errors import InvalidInput
from mloop.pipelines import Pipeline, Runner
from mloop.pipelines._score import score_file
from mloop.workspace import Workspace
from tests.conftest import toy_frame
from tests.pipelines.test_tune import TUNE


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray for this module, shut down after it; four logical CPUs so that four one-CPU tasks run at once."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    frame = toy_frame(5000, seed=11).assign(id=np.arange(5000))
    frame.loc[::97, "x2"] = np.nan
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_feather(tmp_path / "in.arrow", chunksize=900)  # several record batches, split among Ray Data's read tasks
    return frame


@pytest.mark.slow
def test_four_ray_tasks_share_one_study_and_each_trial_is_a_nested_run(project: Path, local_ray: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.pipelines import _ray

    launched: list[int] = []

    def spy(address: str, function: Any, calls: Any) -> list[Any]:
        launched.extend(call[5] for call in calls)  # each task's share of the trials
        return run_tasks(address, function, calls)

    run_tasks = _ray.run_tasks
    monkeypatch.setattr(_ray, "run_tasks", spy)
    (project / "tune.yaml").write_text(TUNE)  # trials: 8, jobs: 4
    ws = Workspace.init(project / ".mloop")
    outcome = Runner(ws, ray="auto").run(Pipeline.load(project / "tune.yaml"))
    assert outcome.ok, outcome.steps
    assert launched == [2, 2, 2, 2]  # four Ray tasks of two trials each
    client = ws.tracker.client
    experiment = client.get_experiment_by_name("pipeline-tuned").experiment_id
    trials = client.search_runs([experiment], filter_string="tags.`mloop.pipeline.trial` != ''")
    # Every trial completed: none failed on a locked study, as four tasks wrote the one journal at once.
    assert len(trials) == 8 and {t.data.tags["mloop.pipeline.trial_state"] for t in trials} == {"COMPLETE"}
    assert {frozenset(t.data.params) for t in trials} == {frozenset({"learning_rate", "max_leaf_nodes"})}
    search = next(r for r in client.search_runs([experiment]) if r.data.tags.get("mloop.pipeline.step") == "search")
    assert all(t.data.tags["mlflow.parentRunId"] == search.info.run_id for t in trials)
    assert search.data.metrics["best_auc"] == pytest.approx(max(t.data.metrics["auc"] for t in trials))
    [version] = ws.registry.versions("tuned")
    assert version.run_id == search.info.run_id
    assert len(local_ray.nodes()) == 1  # attached to the fixture's Ray, not a second one


@pytest.mark.slow
def test_scoring_on_ray_data_gives_the_local_scores_row_for_row(shared_deployed: Workspace, table: pd.DataFrame, tmp_path: Path,
                                                              local_ray: Any) -> None:
    local = score_file(shared_deployed, "toy@champion", tmp_path / "in.parquet", tmp_path / "local.parquet", chunk_rows=700, keep=["id"])
    expected = pd.read_parquet(tmp_path / "local.parquet")
    for source, output in (("in.parquet", "ray.parquet"), ("in.csv", "ray.csv"), ("in.arrow", "ray.arrow")):
        seen: list[int] = []
        result = score_file(shared_deployed, "toy@champion", tmp_path / source, tmp_path / output, chunk_rows=700, keep=["id"], workers=2,
                            ray="auto", on_chunk=seen.append)
        out = _read(tmp_path / output)
        assert result.rows == 5000 and sum(seen) == 5000 and result.runtime == "ray", source
        assert list(out.columns) == ["id", "score", "model_name", "model_version"], source
        assert out["id"].tolist() == list(range(5000)), source  # in the input's order
        assert set(out["model_version"]) == {local.version} and set(out["model_name"].astype(str)) == {"toy"}, source
        assert np.allclose(out["score"], expected["score"], atol=1e-9), source


@pytest.mark.slow
def test_a_file_that_does_not_fit_is_refused_on_ray_before_any_output(shared_deployed: Workspace, table: pd.DataFrame,
                                                                      tmp_path: Path, local_ray: Any) -> None:
    table.drop(columns=["x3"]).to_parquet(tmp_path / "short.parquet")
    with pytest.raises(InvalidInput, match=r"lacks column\(s\) \['x3'\]"):
        score_file(shared_deployed, "toy", tmp_path / "short.parquet", tmp_path / "never.parquet", ray="auto")
    assert not (tmp_path / "never.parquet").exists()


def test_an_address_nobody_answers_is_refused_naming_ray(shared_deployed: Workspace, table: pd.DataFrame, tmp_path: Path,
                                                         project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = (["score", "toy", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "never.parquet"), "--ray", "127.0.0.1:1"],
                ["run", str(project / "pipeline.yaml"), "--ray", "127.0.0.1:1"],
                ["score", "toy", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "never.parquet"), "--ray", "nowhere"])
    for command in commands:
        with pytest.raises(SystemExit) as exit_:
            main(["--workspace", str(shared_deployed.root), *command])
        assert exit_.value.code == 2
        assert "--ray" in capsys.readouterr().err
    assert not (tmp_path / "never.parquet").exists()


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.pipelines._ray import connect

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: ImportError on import
    with pytest.raises(InvalidInput, match=r'--ray needs Ray.*pip install "mloop\[ray\]"') as info:
        connect("auto")
    assert info.value.field == "--ray"


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".arrow":
        return pd.read_feather(path)
    return pd.read_parquet(path)
