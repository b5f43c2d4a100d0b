"""Crash safety with real processes: `mloop controller` killed with SIGKILL in the middle of training, while its
canary waits, while it retrains behind a fallback, and in the middle of an online update; each restart resumes the
attempt (the interrupted step redone), the champion alias never moves without a committed promotion, a fallback is
switched once and ended once, and the trigger is acted on exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mloop.automation import Loop, parse_loop_policy
from mloop.serving import Rollouts
from mloop.workspace import Workspace
from tests.automation.test_loop import _changed_world, _log_labelled

pytestmark = pytest.mark.slow


def _controller(ws: Workspace, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MLOOP_LOOP_INTERVAL": "0.2", "MLOOP_ROLLOUT_INTERVAL": "0", "MLOOP_MONITOR_INTERVAL": "0", "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mloop", "--workspace", str(ws.root), "controller"], stdout=out, stderr=subprocess.STDOUT,
                                env=env)


def _until(what: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {why}")
        time.sleep(0.05)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_a_controller_killed_while_training_and_while_its_canary_waits_resumes_the_attempt(deployed: Workspace, tmp_path: Path) -> None:
    ws = deployed
    _log_labelled(ws, _changed_world(3000, seed=1))
    marks = tmp_path / "marks"
    marks.mkdir()
    policy = {"deployment": "toy", "data": {"rows": 5000, "min_rows": 300, "holdout": 0.3},
              "recipe": {"callable": "tests.automation.recipes:waits", "params": {"folder": str(marks), "max_iter": 30}},
              "rollout": {"strategy": "canary", "steps": [50, 100], "min_seconds": 0}}
    loop = Loop(ws.store, ws.bus)
    loop.apply([parse_loop_policy(policy)])
    attempt = loop.retrain("toy", reason="crash test")
    rollouts = Rollouts(ws.registry, ws.store, ws.bus)
    log = tmp_path / "controller.log"

    first = _controller(ws, log)
    _until(lambda: (marks / "started").exists(), 60, "the first controller began training")
    _kill(first)  # SIGKILL in the middle of the train step
    [row] = ws.store.loop.attempts("toy")
    assert row.open and row.step == "train" and [s.finished_at for s in ws.store.loop.steps(attempt)] == [None]
    assert rollouts.served_version("toy") == 1 and [v.version for v in ws.registry.versions("toy")] == [1]  # nothing half-registered

    (marks / "go").touch()
    second = _controller(ws, log)
    try:
        _until(lambda: ws.store.loop.attempt(attempt).step == "wait", 90, "the second controller trained, gated and set the canary")
    finally:
        _kill(second)  # SIGKILL while the canary waits for its verdict
    steps = ws.store.loop.steps(attempt)
    assert [(s.name, s.outcome) for s in steps] == [("train", "interrupted"), ("train", "ok"), ("gate", "ok"), ("rollout", "ok")]
    live = ws.store.rollouts.live("toy")
    assert live is not None and live.document["candidate"] == "3" and live.actor == f"controller:attempt-{attempt}"  # the refit of 2
    assert rollouts.served_version("toy") == 1  # a canary is not a promotion

    rollouts.rollback("toy", actor="carol")  # the verdict arrives while no controller runs
    third = _controller(ws, log)
    try:
        _until(lambda: ws.store.loop.attempt(attempt).result is not None, 60, "the third controller saw the rollout end")
    finally:
        _kill(third)
    done = ws.store.loop.attempt(attempt)
    assert done.result == "rolled_back" and done.human
    assert rollouts.served_version("toy") == 1
    assert [a.id for a in ws.store.loop.attempts("toy")] == [attempt]  # one trigger, one attempt
    assert len([p for p in ws.store.rollouts.history("toy") if p.actor == f"controller:attempt-{attempt}"]) == 1  # one canary, not two


def test_a_controller_killed_during_an_online_update_redoes_it_once(tmp_path: Path) -> None:
    from mloop.automation import LoopController
    from tests.automation.recipes import WaitsOnline
    from tests.automation.test_online import _feedback, _moved_world, _register
    from tests.conftest import deploy, toy_frame

    marks = tmp_path / "marks"
    marks.mkdir()
    ws = Workspace.init(tmp_path / "ws")
    frame = toy_frame(2000, seed=0)
    _register(ws, WaitsOnline(folder=str(marks)).fit(frame[[c for c in frame.columns if c != "y"]], frame["y"]), frame)
    deploy(ws, "toy", "toy", "champion")
    Loop(ws.store, ws.bus).apply([parse_loop_policy({"deployment": "toy", "online": {"rows": 1000}})])
    LoopController(ws.store, ws.bus, ws.registry, ws.tracker, ws.logs_dir, ws.root / "loop").tick()  # the first look starts the clock
    _feedback(ws, _moved_world(1200, seed=3))
    (marks / "armed").touch()
    rollouts, log = Rollouts(ws.registry, ws.store, ws.bus), tmp_path / "controller.log"

    first = _controller(ws, log)
    _until(lambda: (marks / "started").exists(), 60, "the first controller began the update")
    _kill(first)  # SIGKILL while the copy learns
    [row] = ws.store.loop.attempts("toy")
    assert row.open and row.trigger_kind == "online" and [s.finished_at for s in ws.store.loop.steps(row.id)] == [None]
    assert rollouts.served_version("toy") == 1 and [v.version for v in ws.registry.versions("toy")] == [1]

    (marks / "go").touch()
    second = _controller(ws, log)
    try:
        _until(lambda: ws.store.loop.attempt(row.id).result is not None, 90, "the second controller redid the update")
    finally:
        _kill(second)
    done = ws.store.loop.attempt(row.id)
    assert done.result == "promoted", ws.store.loop.steps(row.id)
    assert [(s.name, s.outcome) for s in ws.store.loop.steps(row.id)] == [("train", "interrupted"), ("train", "ok"), ("gate", "ok"), ("rollout", "ok")]
    assert rollouts.served_version("toy") == 3 and [v.version for v in ws.registry.versions("toy")] == [1, 2, 3]
    assert [a.id for a in ws.store.loop.attempts("toy")] == [row.id]  # those labels made one update, not two
    ws.close()


def test_a_controller_killed_while_retraining_behind_a_fallback_leaves_the_fallback_serving_until_it_is_over(
        deployed: Workspace, tmp_path: Path) -> None:
    from tests.automation.test_loop import _alarm
    from tests.conftest import train_and_register

    ws = deployed
    _log_labelled(ws, _changed_world(3000, seed=2))
    stable = train_and_register(ws, alias="stable", seed=7)  # version 2, the designated fallback; the champion is version 1
    marks = tmp_path / "marks"
    marks.mkdir()
    policy = {"deployment": "toy", "data": {"rows": 5000, "min_rows": 300, "holdout": 0.3}, "fallback": {"alias": "stable"},
              "recipe": {"callable": "tests.automation.recipes:waits", "params": {"folder": str(marks), "max_iter": 30}},
              "rollout": {"strategy": "blue-green"}}
    Loop(ws.store, ws.bus).apply([parse_loop_policy(policy)])
    _alarm(ws)
    rollouts, log = Rollouts(ws.registry, ws.store, ws.bus), tmp_path / "controller.log"

    first = _controller(ws, log)
    _until(lambda: (marks / "started").exists(), 60, "the first controller switched to the fallback and began training")
    _kill(first)
    [row] = ws.store.loop.attempts("toy")
    assert [(s.name, s.outcome) for s in ws.store.loop.steps(row.id)] == [("fallback", "ok"), ("train", None)]
    live = ws.store.rollouts.live("toy")  # the dead controller's fallback keeps answering: traffic is not left in between
    assert live is not None and live.document == {"policy": "blue-green", "active": str(stable), "standby": "1"}
    assert rollouts.served_version("toy") == 1  # and the champion alias never moved for it

    (marks / "go").touch()
    second = _controller(ws, log)
    try:
        _until(lambda: ws.store.loop.attempt(row.id).result is not None and ws.store.rollouts.live("toy") is None, 90,
               "the second controller finished the attempt and ended the fallback")
    finally:
        _kill(second)
    steps = [(s.name, s.outcome) for s in ws.store.loop.steps(row.id)]
    assert steps == [("fallback", "ok"), ("train", "interrupted"), ("train", "ok"), ("gate", "ok"), ("rollout", "ok"), ("fallback_end", "ok")]
    assert ws.store.loop.attempt(row.id).result == "promoted" and rollouts.served_version("toy") == 4  # the refit of version 3
    fallbacks = [p for p in ws.store.rollouts.history("toy") if p.actor == f"controller:attempt-{row.id}" and p.document.get("active") == str(stable)]
    assert len(fallbacks) == 1  # switched once, not again after the restart
