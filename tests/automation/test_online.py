"""The adaptive response: a champion that learns online is updated with the labels that arrived since its last
update — each update gated on the newest of them, registered as a version that names its parent, and live only if
the gate passed; a bad batch is stopped with its statistic; a champion that cannot learn is said so once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.automation import Loop, LoopController, load_loop_policies, parse_loop_policy
from mloop.errors import InvalidInput
from mloop.monitoring import PredictionLog
from mloop.serving import Rollouts
from mloop.training import OnlineClassifier, RiverClassifier, online, river, updated
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, deploy, toy_frame, train_and_register

FEATURES = TOY_SPEC.features


def _register(ws: Workspace, model: object, frame: pd.DataFrame, *, alias: str | None = "champion") -> int:
    with ws.tracker.start_run("toy", run_name="online") as run:
        uri = run.log_sklearn_model(model, frame[FEATURES])
    return ws.registry.register(uri, "toy", alias=alias).version


@pytest.fixture
def online_loop(tmp_path: Path) -> Iterator[tuple[Workspace, Loop, LoopController]]:
    """``toy`` v1, an :class:`OnlineClassifier`, deployed as ``toy``; the loop and a controller on the workspace."""
    ws = Workspace.init(tmp_path / "ws")
    frame = toy_frame(2000, seed=0)
    _register(ws, online(frame, "y", epochs=2), frame)
    deploy(ws, "toy", "toy", "champion")
    controller = LoopController(ws.store, ws.bus, ws.registry, ws.tracker, ws.logs_dir, ws.root / "loop")
    yield ws, Loop(ws.store, ws.bus), controller
    controller.trainer.close()
    ws.close()


def _feedback(ws: Workspace, frame: pd.DataFrame, *, per_request: int = 100) -> None:
    """Predictions of ``toy`` and their labels, arriving now (as the server and the feedback endpoint write them)."""
    log = PredictionLog(ws.logs_dir, flush_interval=60)
    start = time.time()
    for i in range(0, len(frame), per_request):
        part = frame.iloc[i : i + per_request]
        rid = f"r{start:.3f}-{i}"
        log.log_predictions("toy", 1, rid, start + i * 1e-6, part[FEATURES], np.full(len(part), 0.5), 1.0)
        log.log_feedback("toy", rid, part["y"].astype(float).tolist(), time.time())
    log.close()


def _moved_world(n: int, seed: int) -> pd.DataFrame:
    """The label now depends on x3 too, and red no longer matters: what an update should learn."""
    frame = toy_frame(n, seed=seed)
    rng = np.random.default_rng(seed)
    logit = 1.5 * frame["x1"] - frame["x2"] + 2.0 * frame["x3"]
    return frame.assign(y=(rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int))


@pytest.mark.slow
def test_online_models_learn_a_batch_into_a_copy_and_survive_the_registry(tmp_path: Path) -> None:
    frame, later = toy_frame(1500, seed=1), _moved_world(1500, seed=2)
    ws = Workspace.init(tmp_path / "ws")
    for model in (online(frame, "y"), river(frame, "y"), river(frame, "y", model="hoeffding")):
        before = model.predict_proba(later[FEATURES])
        learnt = updated(model, later[FEATURES], later["y"])
        assert np.array_equal(model.predict_proba(later[FEATURES]), before)  # the registered version itself is left alone
        assert not np.allclose(learnt.predict_proba(later[FEATURES]), before)
        version = _register(ws, learnt, later, alias=None)
        loaded = ws.registry.load("toy", version)
        assert isinstance(loaded.model, OnlineClassifier | RiverClassifier)
        assert np.allclose(loaded.score(later[FEATURES]), learnt.predict_proba(later[FEATURES])[:, 1])
    ws.close()
    with pytest.raises(InvalidInput, match="cannot learn online"):
        from mloop.training import tabular

        updated(tabular(frame, "y", max_iter=5), later[FEATURES], later["y"])


@pytest.mark.slow
def test_labels_that_arrive_update_the_champion_each_update_a_gated_version(online_loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = online_loop
    service.apply([parse_loop_policy({"deployment": "toy", "online": {"rows": 1000, "holdout": 0.3}})])
    assert controller.tick() == []  # the first look starts the clock
    _feedback(ws, _moved_world(600, seed=3))
    assert controller.tick() == []  # 600 labels: not yet an update
    _feedback(ws, _moved_world(900, seed=4))
    [attempt] = controller.tick()
    assert attempt.trigger_kind == "online" and attempt.result == "promoted" and not attempt.human
    assert attempt.trigger_detail["rows"] == 1500 and attempt.trigger_detail["champion"] == 1
    [history] = service.history("toy")
    assert [(s["name"], s["outcome"]) for s in history["steps"]] == [("train", "ok"), ("gate", "ok"), ("rollout", "ok")]
    train, gate, rollout = history["steps"]
    assert train["detail"]["updated_from"] == 1 and train["detail"]["train_rows"] == 1050 and train["detail"]["holdout_rows"] == 450
    # The gate: the update must be shown at most 0.05 AUC worse than the champion on the newest rows; it is better.
    assert gate["detail"]["passed"] and gate["detail"]["min_effect"] == -0.05 and gate["detail"]["challenger"] > gate["detail"]["champion"]
    assert gate["detail"]["refit"]["updated_from"] == 2 and rollout["detail"]["promoted"] == 3
    assert Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 3
    for run_id, parent in ((train["detail"]["run_id"], "1"), (gate["detail"]["refit"]["run_id"], "2")):  # each update names its parent
        run = ws.tracker.client.get_run(run_id)
        assert run.data.tags["mloop.loop.updated_from"] == parent and run.data.tags["mloop.loop.attempt"] == str(attempt.id)
    assert controller.tick() == [] and len(ws.store.loop.attempts("toy")) == 1  # those labels are learnt once
    restarted = LoopController(ws.store, ws.bus, ws.registry, ws.tracker, ws.logs_dir, ws.root / "loop")  # by the cursor, not memory
    assert restarted.tick() == [] and len(ws.store.loop.attempts("toy")) == 1
    restarted.trainer.close()


def test_labels_younger_than_the_grace_wait_for_the_next_look(online_loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, _ = online_loop
    now = [time.time()]
    controller = LoopController(ws.store, ws.bus, ws.registry, ws.tracker, ws.logs_dir, ws.root / "loop", clock=lambda: now[0], grace=30)
    service.apply([parse_loop_policy({"deployment": "toy", "online": {"rows": 1000}})])
    controller.tick()
    _feedback(ws, _moved_world(1200, seed=9))
    now[0] = time.time()
    assert controller.learn() == []  # written this second: a label stamped as early may not be in the files yet
    now[0] += 31
    [opened] = controller.learn()
    assert ws.store.loop.attempt(opened).trigger_detail["rows"] == 1200
    controller.trainer.close()


@pytest.mark.slow
def test_a_bad_batch_is_stopped_at_the_gate_and_the_champion_keeps_serving(online_loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = online_loop
    service.apply([parse_loop_policy({"deployment": "toy", "online": {"rows": 3000, "holdout": 0.25}})])
    controller.tick()
    flipped = toy_frame(2400, seed=5)
    _feedback(ws, flipped.assign(y=1 - flipped["y"]))  # a labelling bug upstream: every label inverted
    _feedback(ws, toy_frame(800, seed=6))  # the newest rows, labelled correctly, judge the update
    [attempt] = controller.tick()
    assert attempt.result == "rejected_by_gate"
    gate = service.history("toy")[0]["steps"][1]
    assert not gate["detail"]["passed"] and gate["detail"]["lower"] < -0.05 and gate["detail"]["challenger"] < gate["detail"]["champion"]
    assert Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 1 and ws.store.rollouts.history("toy") == []


def test_a_champion_that_cannot_learn_online_is_said_so_once(deployed: Workspace) -> None:
    controller = LoopController(deployed.store, deployed.bus, deployed.registry, deployed.tracker, deployed.logs_dir, deployed.root / "loop")
    Loop(deployed.store, deployed.bus).apply([parse_loop_policy({"deployment": "toy", "online": {"rows": 200, "gate": {"min_rows": 20}}})])
    controller.tick()
    for seed in (7, 8):
        _feedback(deployed, toy_frame(300, seed=seed))
        assert controller.tick() == []
    skipped = [e for e in deployed.store.audit.list(target="toy") if e.action == "loop.trigger_skipped"]
    assert len(skipped) == 1 and "cannot learn online" in (skipped[0].details or {})["reason"]
    assert deployed.store.loop.attempts("toy") == []
    train_and_register(deployed, alias=None)  # (the workspace still works: nothing was left half done)


def test_an_online_section_with_a_problem_is_refused_naming_its_field(tmp_path: Path) -> None:
    cases = {
        "policies[0].online.rows": "policies:\n  - deployment: toy\n    online: {rows: 10}\n",
        "policies[0].online.holdout": "policies:\n  - deployment: toy\n    online: {holdout: 0.9}\n",
        "policies[0].online.gate.alpha": "policies:\n  - deployment: toy\n    online: {gate: {alpha: 3}}\n",
        "policies[0].online.every": "policies:\n  - deployment: toy\n    online: {every: 5}\n",
        "policies[0].online": "policies:\n  - deployment: toy\n    online: {rows: 500}\n",  # 100 held out, the gate needs 200
    }
    for field, text in cases.items():
        path = tmp_path / "loop.yaml"
        path.write_text(text)
        with pytest.raises(InvalidInput) as info:
            load_loop_policies(path)
        assert info.value.field is not None and info.value.field.startswith(field), (field, info.value)
