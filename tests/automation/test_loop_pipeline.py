"""A pipeline as the loop's retraining recipe: the loop's labelled rows stand for one of its tables, the steps from
there to the model (validation, features, training) run on them, and the challenger is judged and promoted as any
other; a validation the rows fail fails the attempt with the pipeline's reason; a recipe that cannot work is refused
when the policy is applied, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.automation import Loop, LoopController, load_loop_policies, parse_loop_policy
from mloop.errors import InvalidInput
from mloop.serving import Rollouts
from mloop.workspace import Workspace
from tests.automation.test_loop import _alarm, _changed_world, _log_labelled
from tests.conftest import toy_frame

PIPELINE = """name: toy-recipe
steps:
  - name: data
    ingest: {path: toy.parquet}
  - name: split
    split: {input: data, method: stratified, by: y, test: 0.25}
  - name: checked
    validate:
      input: split.train
      columns:
        x1: {dtype: float, min: -20, max: 20, nullable: false}
        y: {isin: [0, 1]}
  - name: terms
    features: {input: checked, target: y, polynomial: {degree: 2, interaction_only: true}}
  - name: model
    train: {input: terms.table, features: terms.transform, target: y, params: {max_iter: 30}}
  - name: check
    evaluate: {model: model, input: split.test, target: y}
"""


def _project(folder: Path) -> Path:
    folder.mkdir()
    toy_frame(600).to_parquet(folder / "toy.parquet")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    return folder / "pipeline.yaml"


def _policy(recipe: dict[str, object]) -> dict[str, object]:
    return {"deployment": "toy", "data": {"rows": 5000, "min_rows": 300, "holdout": 0.3}, "recipe": recipe, "rollout": {"strategy": "blue-green"}}


@pytest.mark.slow
def test_a_pipeline_recipe_trains_the_challenger_and_a_failed_validation_fails_the_attempt(deployed: Workspace, tmp_path: Path) -> None:
    path = _project(tmp_path / "project")
    controller = LoopController(deployed.store, deployed.bus, deployed.registry, deployed.tracker, deployed.logs_dir, deployed.root / "loop")
    service = Loop(deployed.store, deployed.bus)
    _log_labelled(deployed, _changed_world(3000, seed=1))
    service.apply([parse_loop_policy(_policy({"pipeline": str(path), "input": "split.train"}))])
    _alarm(deployed)
    [attempt] = controller.tick()
    assert attempt.result == "promoted", attempt.state
    served = Rollouts(deployed.registry, deployed.store, deployed.bus).served_version("toy")
    model = deployed.registry.load("toy", served)
    assert sorted(model.feature_names) == ["color", "x1", "x2", "x3"]  # the raw columns: the pipeline's terms are inside the model
    assert type(model.model).__name__ == "Pipeline" and "x1 x3" in model.model.named_steps["features"].get_feature_names_out()
    [history] = service.history("toy")
    run = deployed.tracker.client.get_run(history["steps"][0]["detail"]["run_id"])
    assert run.data.params["recipe"] == "mloop.pipelines._recipe:fit" and run.data.params["recipe.pipeline"] == str(path.resolve())

    strict = _policy({"pipeline": str(path), "input": "split.train", "set": ["checked.columns.x1.max=0.5"]})  # most rows break it
    service.apply([parse_loop_policy(strict)])
    _alarm(deployed)
    [failed] = controller.tick()
    assert failed.result == "failed" and "the data failed validation: x1: less_than_or_equal_to(0.5)" in failed.state["reason"]


def test_a_pipeline_recipe_that_cannot_work_is_refused_when_applied(tmp_path: Path) -> None:
    path = _project(tmp_path / "project")
    cases = {
        "policy.recipe.input": {"pipeline": str(path), "input": "check"},  # metrics, not a table
        "policy.recipe.model": {"pipeline": str(path), "input": "split.train", "model": "terms"},
    }
    for field, recipe in cases.items():
        with pytest.raises(InvalidInput) as caught:
            parse_loop_policy(_policy(recipe))
        assert caught.value.field == field, caught.value.message
    with pytest.raises(InvalidInput, match="also needs 'split.test'"):  # a step the model needs reads another output of the replaced step
        parse_loop_policy(_policy({"pipeline": str(path), "input": "split.train", "set": ["checked.reference=split.test"]}))
    with pytest.raises(InvalidInput, match="takes pipeline, input, model and set, not 'params'"):
        parse_loop_policy(_policy({"pipeline": str(path), "input": "split.train", "params": {}}))
    policies = tmp_path / "project" / "loop.yaml"
    policies.write_text("policies:\n  - deployment: toy\n    recipe: {pipeline: pipeline.yaml, input: split.train}\n")
    [policy] = load_loop_policies(policies)  # a pipeline file named beside the policy file
    assert policy.recipe.params["pipeline"] == str(path.resolve())
