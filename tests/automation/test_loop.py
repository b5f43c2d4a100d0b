"""The loop controller's decisions, each checked against the evidence it recorded: a monitor's alarm opens one
attempt (never two), guards hold triggers back and say why, a worse challenger is stopped at the gate with its
statistic, a better one goes live and the alias moves, a rollout's end is the attempt's, and an interrupted step is
redone or the attempt abandoned."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.automation import Loop, LoopController, load_loop_policies, parse_loop_policy
from mloop.automation._controller import CURSOR
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.events import DRIFT_DETECTED
from mloop.monitoring import PredictionLog
from mloop.serving import Rollouts
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame

FEATURES = TOY_SPEC.features


def _log_labelled(ws: Workspace, frame: pd.DataFrame, *, start: float = 1_000.0, per_request: int = 50) -> None:
    """Labelled predictions of the champion in the log, as a server and the feedback endpoint write them."""
    log = PredictionLog(ws.logs_dir, flush_interval=60)
    for i in range(0, len(frame), per_request):
        part = frame.iloc[i : i + per_request]
        rid = f"r{start:.0f}-{i}"
        log.log_predictions("toy", 1, rid, start + i, part[FEATURES], np.full(len(part), 0.5), 1.0)
        log.log_feedback("toy", rid, part["y"].astype(float).tolist(), start + i + 0.5)
    log.close()


def _changed_world(n: int, seed: int) -> pd.DataFrame:
    """Data whose label now depends on x3 (the champion learned x1 and x2): retraining pays off."""
    frame = toy_frame(n, seed=seed)
    rng = np.random.default_rng(seed)
    logit = 2.5 * frame["x3"] - 1.0 * (frame["color"] == "blue")
    return frame.assign(y=(rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int))


def _policy(**overrides: object) -> dict[str, object]:
    return {"deployment": "toy", "data": {"rows": 5000, "min_rows": 300, "holdout": 0.3},
            "recipe": {"callable": "mloop.training:tabular", "params": {"max_iter": 30}}, "rollout": {"strategy": "blue-green"}, **overrides}


@pytest.fixture
def loop(deployed: Workspace) -> Iterator[tuple[Workspace, Loop, LoopController]]:
    controller = LoopController(deployed.store, deployed.bus, deployed.registry, deployed.tracker, deployed.logs_dir, deployed.root / "loop")
    yield deployed, Loop(deployed.store, deployed.bus), controller


def _alarm(ws: Workspace, monitor: str = "inputs", kind: str = "data_drift") -> None:
    with ws.store.transaction() as conn:
        ws.bus.publish(conn, DRIFT_DETECTED, {"status": "firing", "kind": kind, "deployment": "toy", "monitor": monitor,
                                              "drifted": ["x3"], "window": {"start": 0, "end": 1, "rows": 500}, "details": {"share_drifted": 0.25}})


@pytest.mark.slow
def test_a_better_challenger_passes_the_gate_goes_live_and_the_history_says_why(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, _changed_world(3000, seed=1))
    service.apply([parse_loop_policy(_policy())])
    _alarm(ws)
    [attempt] = controller.tick()
    assert attempt.result == "promoted" and attempt.trigger_kind == "monitor" and not attempt.human
    assert Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 3  # the alias moved to the challenger, refit on every row
    [history] = service.history("toy")
    assert history["trigger"]["detail"]["monitor"] == "inputs" and history["trigger"]["detail"]["drifted"] == ["x3"]
    assert [(s["name"], s["outcome"]) for s in history["steps"]] == [("train", "ok"), ("gate", "ok"), ("rollout", "ok")]
    train, gate, rollout = history["steps"]
    assert train["detail"]["version"] == 2 and train["detail"]["holdout_rows"] == 900 and train["detail"]["train_rows"] == 2100
    assert gate["detail"]["passed"] and gate["detail"]["lower"] > 0 and gate["detail"]["challenger"] > gate["detail"]["champion"]
    assert gate["detail"]["refit"]["version"] == 3 and gate["detail"]["refit"]["rows"] == 3000 and rollout["detail"]["promoted"] == 3
    run = ws.tracker.client.get_run(train["detail"]["run_id"])  # lineage: the run that made version 2 names its attempt
    assert run.data.tags["mloop.loop.attempt"] == str(attempt.id) and run.data.params["recipe"] == "mloop.training:tabular"
    refit = ws.tracker.client.get_run(gate["detail"]["refit"]["run_id"])  # and the refit names the version it refits
    assert refit.data.tags["mloop.loop.refit_of"] == "2" and history["challenger"] == 3


@pytest.mark.slow
def test_a_worse_challenger_is_stopped_at_the_gate_and_the_champion_stays(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, toy_frame(2000, seed=3))
    service.apply([parse_loop_policy(_policy(recipe={"callable": "tests.automation.recipes:shuffled", "params": {"max_iter": 30}}))])
    service.retrain("toy", actor="alice", reason="try it")
    [attempt] = controller.tick()
    assert attempt.result == "rejected_by_gate"
    assert Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 1 and ws.store.rollouts.history("toy") == []
    gate = service.history("toy")[0]["steps"][1]
    assert gate["name"] == "gate" and gate["outcome"] == "rejected_by_gate"
    assert not gate["detail"]["passed"] and gate["detail"]["lower"] <= 0 and "not shown better" in gate["detail"]["reason"]


def test_an_alarm_opens_one_attempt_and_guards_hold_the_next_back(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, toy_frame(600, seed=4))
    _alarm(ws)  # before any policy: nobody listened, and it is never replayed later
    service.apply([parse_loop_policy(_policy(triggers={"monitors": ["inputs"], "kinds": ["data_drift"]},
                                             rollout={"strategy": "canary", "steps": [50, 100]}))])
    assert controller.consume() == []
    _alarm(ws, monitor="other")  # a monitor the policy does not listen to
    _alarm(ws, kind="concept_drift")  # nor this kind
    _alarm(ws)
    [opened] = controller.consume()
    assert controller.consume() == []  # consumed once: the cursor moved with it
    _alarm(ws)  # a second alarm while the first attempt is in flight
    assert controller.consume() == []
    skipped = [e for e in ws.store.audit.list(target="toy") if e.action == "loop.trigger_skipped"]
    assert len(skipped) == 1 and f"attempt {opened} is in flight" in (skipped[0].details or {})["reason"]
    with pytest.raises(Conflict, match="in flight"):
        service.retrain("toy")
    assert [a.id for a in ws.store.loop.attempts("toy")] == [opened]
    assert ws.store.loop.cursor(CURSOR) == ws.bus.last_id()


@pytest.mark.slow
def test_the_canary_s_end_is_the_attempt_s_and_a_person_s_hand_is_recorded(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, _changed_world(3000, seed=5))
    service.apply([parse_loop_policy(_policy(rollout={"strategy": "canary", "steps": [50, 100], "min_seconds": 0}))])
    attempt_id = service.retrain("toy")
    [waiting] = controller.tick()
    assert waiting.step == "wait" and waiting.result is None
    live = ws.store.rollouts.live("toy")
    assert live is not None and live.document["candidate"] == "3" and live.document["baseline"] == "1"
    assert controller.tick()[0].step == "wait"  # nothing decided yet: it waits
    Rollouts(ws.registry, ws.store, ws.bus).rollback("toy", actor="bob")
    [ended] = controller.tick()
    assert ended.id == attempt_id and ended.result == "rolled_back" and ended.human
    end = service.history("toy")[0]["steps"][-1]
    assert end["name"] == "rollout_end" and end["detail"]["decided_by"] == "bob"


@pytest.mark.slow
def test_an_interrupted_step_is_redone_and_one_interrupted_twice_is_abandoned(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, toy_frame(600, seed=6))
    service.apply([parse_loop_policy(_policy(recipe={"callable": "tests.automation.recipes:shuffled", "params": {"max_iter": 10}}))])
    first = service.retrain("toy")
    with ws.store.transaction() as conn:  # the process died while training: a step begun, never finished
        ws.store.loop.start_step(conn, first, "train")
    [done] = controller.tick()
    assert done.result == "rejected_by_gate"
    assert [s.outcome for s in ws.store.loop.steps(first)][:2] == ["interrupted", "ok"]  # redone, and the attempt went on
    second = service.retrain("toy")
    for _ in range(2):
        with ws.store.transaction() as conn:
            ws.store.loop.start_step(conn, second, "train")
        if _ == 0:
            with ws.store.transaction() as conn:
                step = ws.store.loop.steps(second)[-1]
                ws.store.loop.finish_step(conn, step.id, "interrupted", {})
    [abandoned] = controller.tick()
    assert abandoned.id == second and abandoned.result == "abandoned" and "interrupted 2 times" in abandoned.state["reason"]


@pytest.mark.slow
def test_a_step_that_cannot_work_fails_the_attempt_with_its_reason(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    service.apply([parse_loop_policy(_policy())])
    service.retrain("toy")
    [attempt] = controller.tick()
    assert attempt.result == "failed" and "only 0 labelled rows" in attempt.state["reason"]
    _log_labelled(ws, toy_frame(600, seed=7))
    service.apply([parse_loop_policy(_policy(recipe={"callable": "tests.automation.recipes:explodes"}))])
    service.retrain("toy")
    [attempt] = controller.tick()
    assert attempt.result == "failed" and "RuntimeError: the recipe's own bug" in attempt.state["reason"]


def test_policies_with_a_problem_are_refused_naming_the_file_entry_and_field(tmp_path: Path, loop: tuple[Workspace, Loop, LoopController]) -> None:
    _, service, _ = loop
    cases = {
        "policies[0].gate.alpha": "policies:\n  - deployment: toy\n    gate: {alpha: 2}\n",
        "policies[0].recipe.callable": "policies:\n  - deployment: toy\n    recipe: {callable: 'nowhere.module:train'}\n",
        "policies[0].rollout": "policies:\n  - deployment: toy\n    rollout: {strategy: blue-green, steps: [5, 100]}\n",
        "policies[0].rollout.steps": "policies:\n  - deployment: toy\n    rollout: {steps: [5, 300]}\n",
        "policies[0].data": "policies:\n  - deployment: toy\n    data: {base: x.parquet}\n",
        "policies[0].triggers.kinds.0": "policies:\n  - deployment: toy\n    triggers: {kinds: [vibes]}\n",
        "policies[0].retrain": "policies:\n  - deployment: toy\n    retrain: often\n",
        "policies": "policies: []\n",
    }
    for field, text in cases.items():
        path = tmp_path / "loop.yaml"
        path.write_text(text)
        with pytest.raises(InvalidInput) as info:
            load_loop_policies(path)
        assert info.value.field is not None and info.value.field.startswith(field) and "loop.yaml" in info.value.message, (field, info.value)
    with pytest.raises(InvalidInput, match="no deployment 'nope'"):
        service.apply([parse_loop_policy({"deployment": "nope"})])
    with pytest.raises(NotFound, match="no retraining policy"):
        service.retrain("toy")


@pytest.mark.slow
def test_the_loop_api_reads_for_viewers_and_acts_for_operators(loop: tuple[Workspace, Loop, LoopController]) -> None:
    from fastapi.testclient import TestClient

    from mloop.server import create_app

    ws, _, controller = loop
    _log_labelled(ws, toy_frame(600, seed=8))
    viewer = {"Authorization": f"Bearer {ws.store.api_keys.create('v', 'viewer')[0]}"}
    operator = {"Authorization": f"Bearer {ws.store.api_keys.create('o', 'operator')[0]}"}
    with TestClient(create_app(ws, monitor_interval=0)) as client:
        document = _policy(recipe={"callable": "tests.automation.recipes:shuffled", "params": {"max_iter": 10}})
        assert client.put("/api/loop/policies", json=document, headers=viewer).status_code == 403
        for bad, field in [({**document, "gate": {"alpha": 3}}, "body.gate.alpha"), ({**document, "deployment": "nope"}, "deployment"),
                           ({**document, "recipe": {"callable": "no.such:thing"}}, "body.recipe.callable")]:
            answer = client.put("/api/loop/policies", json=bad, headers=operator)
            assert answer.status_code == 422 and field in answer.json()["error"], answer.text
        assert client.put("/api/loop/policies", json=document, headers=operator).json() == {"deployment": "toy", "revision": 1}
        assert client.get("/api/loop/policies", headers=viewer).json()["policies"][0]["document"]["recipe"]["params"] == {"max_iter": 10}
        assert client.post("/api/deployments/toy/retrain", json={"reason": "x"}, headers=viewer).status_code == 403
        assert client.post("/api/deployments/toy/retrain", json={"why": "x"}, headers=operator).status_code == 422
        opened = client.post("/api/deployments/toy/retrain", json={"reason": "from the API"}, headers=operator)
        assert opened.status_code == 201 and opened.json() == {"deployment": "toy", "attempt": 1}
        assert client.post("/api/deployments/toy/retrain", headers=operator).status_code == 409  # one in flight
        controller.tick()
        status = client.get("/api/deployments/toy/loop", headers=viewer).json()
        assert status["in_flight"] is None and status["attempts"][0]["result"] == "rejected_by_gate"
        assert status["attempts"][0]["trigger"]["detail"]["reason"] == "from the API"
        assert client.get("/api/loop/history", headers=viewer).json()["attempts"][0]["id"] == 1
        assert client.get("/api/deployments/nope/loop", headers=viewer).status_code == 404


@pytest.mark.slow
def test_a_promotion_that_committed_before_a_crash_is_not_repeated_or_undone(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, _changed_world(3000, seed=9))
    service.apply([parse_loop_policy(_policy())])
    attempt = service.retrain("toy")
    original = controller._do_rollout

    def dies_after_promoting(row, policy):  # type: ignore[no-untyped-def]
        original(row, policy)  # the policy is set and the alias moved...
        raise SystemExit("killed")  # ...and the process dies before the step is recorded

    controller._do_rollout = dies_after_promoting  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        controller.tick()
    assert ws.store.loop.attempt(attempt).step == "rollout" and Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 3
    controller._do_rollout = original  # type: ignore[method-assign]
    [done] = controller.tick()  # the restarted controller finds its own promoted policy: promoted, once
    assert done.result == "promoted" and Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 3
    assert [(s.name, s.outcome) for s in ws.store.loop.steps(attempt)][-2:] == [("rollout", "interrupted"), ("rollout", "ok")]
    assert len([p for p in ws.store.rollouts.history("toy") if p.status == "promoted"]) == 1


@pytest.mark.slow
def test_a_fall_of_the_champion_s_own_auc_opens_an_attempt_once(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    rng = np.random.default_rng(11)
    log = PredictionLog(ws.logs_dir, flush_interval=60)

    def block(start: int, signal: float) -> None:  # 400 labelled predictions of v1 whose scores carry ``signal``
        y = (rng.random(400) < 0.4).astype(float)
        scores = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=400))))
        frame = toy_frame(400, seed=start)
        for i in range(0, 400, 50):
            rid = f"p{start}-{i}"
            log.log_predictions("toy", 1, rid, 2_000.0 + start + i / 1000, frame.iloc[i : i + 50][FEATURES], scores[i : i + 50], 1.0)
            log.log_feedback("toy", rid, y[i : i + 50].tolist(), 2_000.0 + start + i / 1000 + 0.0005)
        log.flush()

    service.apply([parse_loop_policy(_policy(triggers={"monitors": [], "performance": {"rows": 400, "alpha": 0.05}}))])
    block(0, 1.5)  # the reference block
    block(1, 1.5)  # as good: no trigger
    assert controller.watch() == []
    block(2, 0.2)  # the champion's AUC falls
    [opened] = controller.watch()
    assert controller.watch() == []  # each block is judged once
    attempt = ws.store.loop.attempt(opened)
    detail = attempt.trigger_detail
    assert attempt.trigger_kind == "performance" and detail["block"] == 2 and detail["dropped"]
    assert detail["reference"] - detail["current"] > 0.2 and detail["z"] > 1.645
    cursor = ws.store.loop.cursor("loop-performance:toy")
    assert (cursor["champion"], cursor["block"], cursor["until"]) == (1, 2, detail["until"])
    assert cursor["reference"]["auc"] == pytest.approx(detail["reference"])  # the reference kept as its AUC and variance
    assert (detail["since"], detail["until"]) == (pytest.approx(2_002.0), pytest.approx(2_002.35))  # the block's first and last prediction
    block(3, 1.5)  # more rows arrive before the controller gets to the attempt: it learns from what it was triggered on
    controller.drive(attempt)
    train = next(s for s in ws.store.loop.steps(opened) if s.name == "train")
    assert train.outcome == "ok" and train.detail["train_rows"] + train.detail["holdout_rows"] == 1200, train.detail
    log.close()


def test_a_schedule_opens_one_attempt_when_due_and_once_for_many_missed(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    midnight = (int(time.time()) // 86_400 + 1) * 86_400.0  # tomorrow, 00:00 UTC: after the store's own clock
    now = [midnight + 10 * 3600 + 100.0]  # 10:01:40
    controller.clock = lambda: now[0]
    service.apply([parse_loop_policy(_policy(triggers={"monitors": [], "schedule": "0 * * * *"}))])  # on the hour
    assert controller.scheduled() == []  # the first look starts the clock: 10:00 passed before the policy existed
    now[0] = midnight + 11 * 3600 - 1.0
    assert controller.scheduled() == []  # 10:59:59, nothing due
    now[0] = midnight + 11 * 3600 + 5.0
    [opened] = controller.scheduled()
    attempt = ws.store.loop.attempt(opened)
    assert attempt.trigger_kind == "schedule" and attempt.trigger_detail == {"schedule": "0 * * * *", "due": midnight + 11 * 3600,
                                                                             "admitted": "no guard holds it back"}
    assert controller.scheduled() == []  # 11:00 was acted on
    with ws.store.transaction() as conn:  # the attempt ends; then the controller is down from 11:00 to 15:30
        ws.store.loop.advance(conn, opened, step="done", state={}, result="failed")
    now[0] = midnight + 15.5 * 3600
    [again] = controller.scheduled()
    assert ws.store.loop.attempt(again).trigger_detail["due"] == midnight + 15 * 3600  # once, for the latest of 12:00…15:00
    now[0] = midnight + 16 * 3600 + 1.0
    assert controller.scheduled() == []  # due, but attempt ``again`` is in flight: held back, and said why
    skipped = ws.store.audit.list(action="loop.trigger_skipped", target="toy")
    assert skipped and (skipped[-1].details or {})["trigger"] == "schedule" and "in flight" in (skipped[-1].details or {})["reason"]


def test_a_schedule_must_be_a_five_field_cron() -> None:
    from mloop.automation._loop_rules import due

    for bad in ("every monday", "0 3 * *", "61 * * * *"):
        with pytest.raises(InvalidInput) as err:
            parse_loop_policy({"deployment": "toy", "triggers": {"schedule": bad}})
        assert err.value.field == "policy.triggers.schedule" and "cron" in err.value.message, err.value.message
    assert due("30 2 * * *", last=0.0, now=2.5 * 3600) == 2.5 * 3600  # due at that very second
    assert due("30 2 * * *", last=2.5 * 3600, now=3 * 3600) is None


def test_the_guards_decide_from_the_attempts_before_and_say_why() -> None:
    from mloop.automation import admit
    from mloop.automation._loop_policy import Guards
    from mloop.store import AttemptRow

    def attempt(i: int, at: float, result: str | None = "rejected_by_gate") -> AttemptRow:
        return AttemptRow(i, "toy", 1, "monitor", f"k{i}", {}, at, "done", {}, result, False, at, at)

    guards = Guards(cooldown_seconds=3600, max_per_day=2)
    assert admit(guards, [], 10_000).admitted
    cooling = admit(guards, [attempt(1, 10_000)], 10_000 + 1800)
    assert not cooling.admitted and "1,800 s since the last attempt began, the cooldown is 3,600 s" in cooling.reason
    assert admit(guards, [attempt(1, 10_000)], 10_000 + 3600).admitted  # the cooldown is over
    capped = admit(guards, [attempt(1, 10_000), attempt(2, 20_000)], 30_000)
    assert not capped.admitted and "2 attempts in the last 24 h, the most allowed is 2" in capped.reason
    assert not admit(guards, [attempt(1, 10_000), attempt(2, 20_000)], 10_000 + 86_399).admitted  # both inside 24 h
    assert admit(guards, [attempt(1, 10_000), attempt(2, 20_000)], 10_000 + 86_400).admitted  # the first has left the day
    assert admit(guards, [attempt(1, 10_000), attempt(2, 20_000)], 30_000, manual=True).admitted  # a person skips both
    in_flight = admit(guards, [attempt(3, 10_000, result=None)], 10**9, manual=True)
    assert not in_flight.admitted and "attempt 3 is in flight" in in_flight.reason  # but never while one runs


@pytest.mark.slow
def test_an_alarm_routes_to_the_fallback_while_retraining_and_back_when_it_is_over(loop: tuple[Workspace, Loop, LoopController]) -> None:
    import json

    from mloop.events import LOOP_FALLBACK
    from tests.conftest import train_and_register

    ws, service, controller = loop
    stable = train_and_register(ws, alias="stable", seed=7)  # version 2: the designated fallback; the champion is version 1
    _log_labelled(ws, toy_frame(2000, seed=3))
    recipe = {"callable": "tests.automation.recipes:routing_seen", "params": {"max_iter": 30, "workspace": str(ws.root)}}
    service.apply([parse_loop_policy(_policy(recipe=recipe, fallback={"alias": "stable"}))])
    _alarm(ws)
    [attempt] = controller.tick()
    assert attempt.result == "rejected_by_gate"
    seen = json.loads((ws.root / "routing-seen.json").read_text())
    assert seen == {"policy": "blue-green", "active": str(stable), "standby": "1"}  # while it trained, the fallback answered
    steps = [(s["name"], s["outcome"]) for s in service.history("toy")[0]["steps"]]
    assert steps == [("fallback", "ok"), ("train", "ok"), ("gate", "rejected_by_gate"), ("fallback_end", "ok")]
    assert ws.store.rollouts.live("toy") is None  # back to the champion, whose alias never moved
    [switch] = ws.store.rollouts.history("toy")
    assert switch.actor == f"controller:attempt-{attempt.id}" and switch.status == "cancelled"
    assert Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 1
    alerts = [e.payload for e in ws.bus.poll(0) if e.topic == LOOP_FALLBACK]
    assert [(a["status"], a["version"]) for a in alerts] == [("firing", stable), ("resolved", stable)]
    service.retrain("toy")  # a person's retrain is not an alarm: no fallback
    assert ws.store.loop.attempts("toy")[-1].step == "train"


@pytest.mark.slow
def test_a_fallback_gives_way_to_the_challenger_s_rollout(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    from tests.conftest import train_and_register

    train_and_register(ws, alias=None, seed=7)  # version 2
    _log_labelled(ws, _changed_world(3000, seed=1))
    service.apply([parse_loop_policy(_policy(fallback={"version": 2}))])
    _alarm(ws)
    [attempt] = controller.tick()
    assert attempt.result == "promoted"
    steps = [(s["name"], s["outcome"]) for s in service.history("toy")[0]["steps"]]
    assert steps == [("fallback", "ok"), ("train", "ok"), ("gate", "ok"), ("rollout", "ok"), ("fallback_end", "ok")]  # ended as the rollout began
    assert Rollouts(ws.registry, ws.store, ws.bus).served_version("toy") == 4  # the refit challenger (3 was gated, 4 refit)
    assert [p.status for p in ws.store.rollouts.history("toy")] == ["cancelled", "promoted"]


def test_a_fallback_names_one_version() -> None:
    for bad, message in (({}, "exactly one of version or alias"), ({"version": 2, "alias": "stable"}, "exactly one"),
                         ({"version": 2, "on": ["schedule"]}, "on")):
        with pytest.raises(InvalidInput) as err:
            parse_loop_policy({"deployment": "toy", "fallback": bad})
        assert err.value.field is not None and err.value.field.startswith("policy.fallback") and message in err.value.message, err.value.message


@pytest.mark.slow
def test_a_fallback_switched_before_a_crash_is_found_not_switched_twice(loop: tuple[Workspace, Loop, LoopController]) -> None:
    from tests.conftest import train_and_register

    ws, service, controller = loop
    train_and_register(ws, alias=None, seed=7)  # version 2
    _log_labelled(ws, toy_frame(2000, seed=3))
    service.apply([parse_loop_policy(_policy(recipe={"callable": "tests.automation.recipes:shuffled", "params": {"max_iter": 30}},
                                             fallback={"version": 2}))])
    _alarm(ws)
    [opened] = controller.consume()
    rollouts = Rollouts(ws.registry, ws.store, ws.bus)
    with ws.store.transaction() as conn:  # the process died inside the fallback step, just after switching
        ws.store.loop.start_step(conn, opened, "fallback")
    rollouts.set("toy", {"policy": "blue-green", "active": "2", "standby": "1"}, actor=f"controller:attempt-{opened}", reason="before the crash")
    [attempt] = controller.tick()
    assert attempt.result == "rejected_by_gate"
    steps = [(s["name"], s["outcome"]) for s in service.history("toy")[0]["steps"]]
    assert steps == [("fallback", "interrupted"), ("fallback", "ok"), ("train", "ok"), ("gate", "rejected_by_gate"), ("fallback_end", "ok")]
    assert [p.status for p in ws.store.rollouts.history("toy")] == ["cancelled"]  # one switch, ended


@pytest.mark.slow
def test_a_recipe_runs_in_its_own_process_and_one_that_dies_fails_only_its_attempt(loop: tuple[Workspace, Loop, LoopController]) -> None:
    import os

    ws, service, controller = loop
    _log_labelled(ws, toy_frame(1000, seed=3))
    service.apply([parse_loop_policy(_policy(recipe={"callable": "tests.automation.recipes:dies"}))])
    service.retrain("toy")
    [attempt] = controller.tick()  # the controller (here: this test's process) lives on
    assert attempt.result == "failed" and "died before it finished" in attempt.state["reason"], attempt.state
    recipe = {"callable": "tests.automation.recipes:tells_pid", "params": {"max_iter": 20, "folder": str(ws.root)}}
    service.apply([parse_loop_policy(_policy(recipe=recipe))])
    service.retrain("toy")
    [again] = controller.tick()
    assert again.result in ("promoted", "rejected_by_gate"), again.state  # a fresh worker trained it
    assert int((ws.root / "pid").read_text()) != os.getpid()


def test_impact_aware_drift_counts_only_when_it_touches_what_the_champion_relies_on(loop: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = loop
    _log_labelled(ws, toy_frame(2000, seed=3))  # the champion's label depends on x1, x2 and color, never on x3
    service.apply([parse_loop_policy(_policy(triggers={"kinds": ["data_drift"], "impact": {"min_share": 0.05, "rows": 2000}}))])
    _alarm(ws)  # x3 drifted
    assert controller.consume() == []
    [skipped] = ws.store.audit.list(action="loop.trigger_skipped", target="toy")
    details = skipped.details or {}
    assert "hardly relies on" in details["reason"] and details["importance"]["x3"] < 0.05, details
    shares = ws.store.loop.cursor("loop-importance:toy")
    assert shares["champion"] == 1 and shares["share"]["x1"] > 0.3 and sum(shares["share"].values()) == pytest.approx(1.0)
    with ws.store.transaction() as conn:  # now x1 drifted: the champion's most important input
        ws.bus.publish(conn, DRIFT_DETECTED, {"status": "firing", "kind": "data_drift", "deployment": "toy", "monitor": "inputs",
                                              "drifted": ["x1", "x3"], "window": {}, "details": {}})
    [opened] = controller.consume()
    assert ws.store.loop.attempt(opened).trigger_detail["drifted"] == ["x1", "x3"]
