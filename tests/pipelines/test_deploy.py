"""The deploy step: the first run creates the deployment on the version it registered; a later run with a new model
rolls it out beside the served one as a canary the rollout driver judges; a rerun deploys nothing; a deployment of
another model is refused, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import InvalidInput
from mloop.pipelines import Pipeline, Runner
from mloop.serving import Deployments, Rollouts
from mloop.workspace import Workspace

pytestmark = pytest.mark.slow

DEPLOY = """  - name: ship
    deploy: {version: publish, deployment: toy-live, strategy: canary, steps: [10, 50, 100], after: [check]}
"""


def _statuses(run: object) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}  # type: ignore[attr-defined]


def test_deploy_creates_then_rolls_out_as_a_canary_and_a_rerun_deploys_nothing(project: Path) -> None:
    path = project / "pipeline.yaml"
    path.write_text(path.read_text().replace("alias: champion, ", "") + DEPLOY)
    ws = Workspace.init(project / ".mloop")
    first = Runner(ws).run(Pipeline.load(path))
    assert first.ok, [(s.name, s.reason) for s in first.steps]
    deployment = Deployments(ws.registry, ws.store, ws.bus).get("toy-live")
    rollouts = Rollouts(ws.registry, ws.store, ws.bus)
    assert deployment.model_name == "toy" and deployment.alias == "champion" and rollouts.served_version("toy-live") == 1

    second = Runner(ws).run(Pipeline.load(path, ["model.params.max_iter=25"]))
    assert _statuses(second)["ship"] == "ran"
    live = rollouts.status("toy-live")
    assert live["live"]["kind"] == "canary" and live["live"]["weights"] == {"baseline": 0.9, "candidate": 0.1}, live
    assert (live["live"]["document"]["baseline"], live["live"]["document"]["candidate"]) == ("1", "2")
    assert rollouts.served_version("toy-live") == 1  # the alias moves only when the driver promotes
    ship = ws.tracker.client.get_run(str(next(s.run_id for s in second.steps if s.name == "ship")))
    assert ship.data.params["action"] == "rollout" and ship.data.params["strategy"] == "canary"

    again = Runner(ws).run(Pipeline.load(path, ["model.params.max_iter=25"]))
    assert again.reused  # the same model: nothing registered, nothing deployed

    with pytest.raises(InvalidInput, match="steps apply to a canary only"):
        Pipeline.load(path, ["ship.strategy=blue-green"])
    other = Runner(ws).run(Pipeline.load(path, ["publish.name=other", "model.params.max_iter=15"]))
    failed = next(s for s in other.steps if s.name == "ship")
    assert failed.status == "failed" and "ship.deploy.deployment: 'toy-live' serves model 'toy', not 'other'" in failed.reason
    twin = Runner(ws).run(Pipeline.load(path, ["ship.deployment=toy-twin", "model.params.max_iter=12"]))  # a new deployment on toy@champion
    refused = next(s for s in twin.steps if s.name == "ship")
    assert refused.status == "failed" and "ship.deploy.alias: toy-live already serve(s) toy@champion" in refused.reason
    assert rollouts.served_version("toy-live") == 1  # the alias did not move under toy-live


def test_a_register_alias_that_a_deploy_would_move_is_refused_before_anything_runs(project: Path) -> None:
    path = project / "pipeline.yaml"
    path.write_text(path.read_text() + DEPLOY)  # register moves champion itself, and the deploy would find nothing to roll out
    with pytest.raises(InvalidInput, match=r"pipeline.yaml:\d+: steps\[6\] \(ship\).deploy: the register step 'publish' moves alias 'champion'"):
        Pipeline.load(path)
