"""The tune step: an Optuna study whose trials run in four worker processes at once on one journal file (never
"database is locked"), each trial a nested run, the best parameters refit and registered; a bad space is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import InvalidInput
from mloop.pipelines import Pipeline, Runner
from mloop.workspace import Workspace

TUNE = """name: tuned
steps:
  - name: data
    ingest: {path: toy.parquet}
  - name: search
    tune:
      input: data
      target: y
      params: {max_iter: 10}
      space:
        learning_rate: {low: 0.03, high: 0.3, log: true}
        max_leaf_nodes: {low: 4, high: 15, type: int}
      folds: 2
      trials: 8
      jobs: 4
      pruner: none
  - name: publish
    register: {model: search, name: tuned}
"""


@pytest.mark.slow
def test_four_workers_share_one_study_and_the_best_is_refit_and_registered(project: Path) -> None:
    (project / "tune.yaml").write_text(TUNE)
    ws = Workspace.init(project / ".mloop")
    outcome = Runner(ws).run(Pipeline.load(project / "tune.yaml"))
    assert outcome.ok, outcome.steps
    client = ws.tracker.client
    experiment = client.get_experiment_by_name("pipeline-tuned").experiment_id
    trials = client.search_runs([experiment], filter_string="tags.`mloop.pipeline.trial` != ''")
    assert len(trials) == 8 and {t.data.tags["mloop.pipeline.trial_state"] for t in trials} == {"COMPLETE"}
    search = next(r for r in client.search_runs([experiment]) if r.data.tags.get("mloop.pipeline.step") == "search")
    assert all(t.data.tags["mlflow.parentRunId"] == search.info.run_id for t in trials)  # nested under the step
    best = max(t.data.metrics["auc"] for t in trials)
    assert search.data.metrics["best_auc"] == pytest.approx(best)
    assert 0.03 <= float(search.data.params["best.learning_rate"]) <= 0.3 and 4 <= int(search.data.params["best.max_leaf_nodes"]) <= 15
    [version] = ws.registry.versions("tuned")
    assert version.run_id == search.info.run_id  # the registered model is the refit the step logged


def test_a_space_with_a_problem_is_refused_before_anything_runs(project: Path) -> None:
    cases = {
        "low must be below high": TUNE.replace("{low: 4, high: 15, type: int}", "{low: 15, high: 4, type: int}"),
        "a log scale needs low > 0": TUNE.replace("{low: 0.03, high: 0.3, log: true}", "{low: 0, high: 0.3, log: true}"),
        "give low and high": TUNE.replace("{low: 4, high: 15, type: int}", "{type: int}"),
        "a grid sampler needs choices": TUNE.replace("pruner: none", "sampler: grid"),
        "'search.best' is a metrics, but model takes a model": TUNE.replace("register: {model: search", "register: {model: search.best"),
    }
    for message, text in cases.items():
        (project / "bad.yaml").write_text(text)
        with pytest.raises(InvalidInput, match=message.replace("(", r"\(")) as info:
            Pipeline.load(project / "bad.yaml")
        assert info.value.message.startswith(str(project / "bad.yaml") + ":"), info.value.message


NAS = """name: nas
steps:
  - name: data
    ingest: {path: toy.parquet}
  - name: search
    tune:
      input: data
      target: y
      callable: "mloop.training:mlp"
      params: {epochs: 4, batch_size: 64, patience: null}  # every epoch runs: the test counts their reports
      space:
        layers: {low: 1, high: 3, type: int}
        width: {low: 16, high: 128, type: int, log: true}
        dropout: {low: 0.0, high: 0.5}
      folds: 2
      trials: 6
      pruner: median
  - name: publish
    register: {model: search, name: nas}
"""


@pytest.mark.slow
def test_architecture_search_tunes_depth_width_and_dropout_and_reports_every_epoch_to_the_pruner(project: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from mloop.training import TabularNet

    (project / "nas.yaml").write_text(NAS)
    ws = Workspace.init(project / ".mloop")
    outcome = Runner(ws).run(Pipeline.load(project / "nas.yaml"))
    assert outcome.ok, outcome.steps
    [journal] = (ws.root / "pipelines" / "studies").glob("*.journal")
    [summary] = optuna.get_all_study_summaries(JournalStorage(JournalFileBackend(str(journal))))
    study = optuna.load_study(study_name=summary.study_name, storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(study.trials) == 6 and {"layers", "width", "dropout"} <= set(study.trials[0].params)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert finished and all(len(t.intermediate_values) >= 2 * 4 for t in finished)  # each fold's epochs, then each fold's end
    epochs_of_fold_one = sorted(s for s in study.trials[0].intermediate_values if s < 999)
    assert epochs_of_fold_one == [0, 1, 2, 3]
    model = ws.registry.load("nas", 1).model
    assert isinstance(model, TabularNet) and len(model.hidden) == study.best_params["layers"]
