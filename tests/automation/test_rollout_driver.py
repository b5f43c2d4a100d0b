"""The rollout driver's decisions, checked against the evidence it recorded: it reads outcomes the way servers write
them (the prediction, failure and feedback log), advances, promotes, rolls back and re-weights, counts each outcome
once across restarts, and yields to an operator's pause."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from mloop._background import LeasedLoop
from mloop.automation import LEASE, RolloutDriver, RolloutMetrics
from mloop.events import ROLLOUT_DECIDED
from mloop.monitoring import PredictionLog
from mloop.rollout import build_policy, parse_policy
from mloop.serving import Rollouts
from mloop.workspace import Workspace
from tests.conftest import train_and_register

pytestmark = pytest.mark.slow  # each test trains two versions and drives a rollout over logged traffic

ROW = pd.DataFrame({"x1": [0.1], "x2": [0.2], "x3": [0.3], "color": ["red"]})


class Traffic:
    """Requests routed the way a server routes them (by the live policy and its stored state), their outcomes
    written to the log the way a server writes them; ``ts`` is a clock the test moves."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.log = PredictionLog(ws.logs_dir, flush_interval=60)
        self.ts = 1_000.0
        self.sent = 0
        self.rng = np.random.default_rng(0)

    def send(self, n: int, *, errors: dict[str, float], score: dict[str, float] | None = None,
             labels: dict[str, float] | None = None) -> dict[str, int]:
        """``n`` requests; ``errors[arm]`` the chance that arm fails one, ``score`` its prediction, ``labels[arm]`` the
        chance the label is 1 (sent back as feedback right away)."""
        row = self.ws.store.rollouts.live("toy")
        assert row is not None
        policy = build_policy(parse_policy(row.document), state=row.state)
        versions = {"baseline": row.document.get("baseline"), "candidate": row.document.get("candidate")}
        routed: dict[str, int] = {}
        for _ in range(n):
            self.sent += 1
            self.ts += 0.001
            rid = f"r{self.sent}"
            arm, probability = policy.route(rid)
            version = int(versions.get(arm) or arm)
            routed[arm] = routed.get(arm, 0) + 1
            if self.rng.random() < errors.get(arm, 0.0):
                self.log.log_failure("toy", version, rid, self.ts, arm=arm, probability=probability, status=500, error="RuntimeError")
                continue
            s = (score or {}).get(arm, 0.5)
            self.log.log_predictions("toy", version, rid, self.ts, ROW, np.array([s]), 2.0, arm=arm, probability=probability)
            if labels is not None:
                self.log.log_feedback("toy", rid, [float(self.rng.random() < labels[arm])], self.ts + 0.0005)
        self.log.flush()
        return routed


@pytest.fixture
def setup(deployed: Workspace) -> Iterator[tuple[Rollouts, Traffic, RolloutDriver]]:
    train_and_register(deployed, alias="challenger", seed=5)  # version 2 beside version 1
    rollouts = Rollouts(deployed.registry, deployed.store, deployed.bus)
    traffic = Traffic(deployed)
    yield rollouts, traffic, RolloutDriver(rollouts, deployed.logs_dir, grace=0.0)
    traffic.log.close()


def canary(rollouts: Rollouts, traffic: Traffic, **fields: object) -> None:
    document = {"policy": "canary", "baseline": "1", "candidate": "2", "steps": [10, 50, 100], "min_samples": 200, "min_seconds": 0, **fields}
    row = rollouts.set("toy", document)
    traffic.ts = row.created_at + 1.0  # the requests come after the policy was set


def tick(driver: RolloutDriver, traffic: Traffic) -> list[str]:
    """One pass a second after the last request; later requests come after it, as they would in time."""
    traffic.ts += 1.0
    return [s.decision.action.value for s in driver.tick(now=traffic.ts)]


def test_a_good_candidate_advances_stage_by_stage_and_is_promoted_with_its_evidence(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic)
    seen = rollouts.bus.last_id()
    actions = []
    for _ in range(40):
        traffic.send(1000, errors={"baseline": 0.02, "candidate": 0.02})
        actions += [a for a in tick(driver, traffic) if a != "wait"]
        if actions and actions[-1] in ("promote", "rollback"):
            break
    assert actions == ["advance", "promote"]
    assert rollouts.served_version("toy") == 2  # the alias moved
    assert rollouts.store.rollouts.live("toy") is None and rollouts.store.rollouts.history("toy")[-1].status == "promoted"
    advance, promote = [d for d in rollouts.store.rollouts.decisions("toy") if d.actor == "driver"]
    assert advance.decision["share"] == 10 and advance.decision["weights_after"]["candidate"] == 0.5
    [errors] = advance.decision["evidence"]
    assert errors["n_candidate"] >= 200 and not errors["worse"]  # the stage's minimum, and no metric worse
    [errors] = promote.decision["evidence"]
    assert errors["no_worse"] and errors["upper"] < errors["tolerance"]  # promotion waited until shown within tolerance
    assert promote.decision["from"] == 1 and promote.decision["to"] == 2
    events = [e for e in rollouts.bus.poll(seen) if e.topic == ROLLOUT_DECIDED]
    assert [e.payload["action"] for e in events] == ["advance", "promote"]
    assert events[-1].payload["evidence"][0]["upper"] == errors["upper"]


@pytest.mark.slow
def test_a_worse_candidate_is_rolled_back_on_its_statistic_and_the_alias_stays(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic, steps=[50, 100])
    actions: list[str] = []
    while "rollback" not in actions and traffic.sent < 20_000:
        traffic.send(500, errors={"baseline": 0.02, "candidate": 0.12})
        actions += tick(driver, traffic)
    assert actions[-1] == "rollback" and set(actions[:-1]) <= {"wait"}
    [decision] = rollouts.store.rollouts.decisions("toy")
    [errors] = decision.decision["evidence"]
    assert errors["log_ratio"] >= errors["threshold"] and errors["candidate"] > errors["baseline"]
    assert rollouts.served_version("toy") == 1 and rollouts.store.rollouts.history("toy")[-1].status == "rolled_back"


def test_one_failure_at_one_percent_does_not_roll_back_but_a_dead_candidate_does_quickly(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic, steps=[1, 100], min_samples=100)
    routed = traffic.send(1000, errors={"candidate": 0.0})
    assert routed["candidate"] >= 1
    traffic.log.log_failure("toy", 2, "one-bad", traffic.ts, arm="candidate", probability=0.01, status=500, error="RuntimeError")
    traffic.log.flush()
    assert tick(driver, traffic) == ["wait"]
    traffic.send(3000, errors={"candidate": 1.0})  # the candidate stops answering
    assert tick(driver, traffic) == ["rollback"]
    [decision] = rollouts.store.rollouts.decisions("toy")
    assert "were all errors" in decision.decision["reason"]


@pytest.mark.slow
def test_each_outcome_is_counted_once_across_ticks_and_restarts(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic, min_samples=100_000)  # never enough: the driver only accumulates
    routed = traffic.send(700, errors={"baseline": 0.1, "candidate": 0.1})
    tick(driver, traffic)
    tick(driver, traffic)  # nothing new: nothing counted twice
    again = RolloutDriver(rollouts, traffic.ws.logs_dir, grace=0.0)  # a restart, or another process taking the lease
    more = traffic.send(300, errors={"baseline": 0.1, "candidate": 0.1})
    tick(again, traffic)
    state = rollouts.store.rollouts.live("toy").state
    counted = {arm: n for arm, (n, _, _) in state["tests"]["errors"].items()}
    assert counted == {arm: routed.get(arm, 0) + more.get(arm, 0) for arm in ("baseline", "candidate")}


@pytest.mark.slow
def test_an_operators_pause_wins_and_resume_carries_on_with_the_evidence(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic)
    traffic.send(3000, errors={})
    rollouts.pause("toy", actor="alice")
    assert driver.tick(now=traffic.ts + 1.0) == []  # paused: nothing decided
    rollouts.resume("toy", actor="alice")
    assert tick(driver, traffic) == ["advance"]  # the outcomes sent while paused still count


@pytest.mark.slow
def test_the_label_loss_rolls_back_a_candidate_whose_predictions_are_worse(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic, steps=[50, 100], metrics={"errors": {}, "loss": {"tau": 0.05}})
    actions: list[str] = []
    while "rollback" not in actions and traffic.sent < 20_000:
        traffic.send(500, errors={}, score={"baseline": 0.8, "candidate": 0.5}, labels={"baseline": 0.9, "candidate": 0.9})
        actions += tick(driver, traffic)
    assert actions[-1] == "rollback"
    [decision] = rollouts.store.rollouts.decisions("toy")
    loss = next(e for e in decision.decision["evidence"] if e["metric"] == "loss")
    assert loss["worse"] and loss["candidate"] > loss["baseline"]
    errors = next(e for e in decision.decision["evidence"] if e["metric"] == "errors")
    assert not errors["worse"]


@pytest.mark.slow
def test_a_bandit_moves_traffic_to_the_arm_with_better_rewards_and_keeps_its_state(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    from prometheus_client import CollectorRegistry

    rollouts, traffic, _ = setup
    registry = CollectorRegistry()
    driver = RolloutDriver(rollouts, traffic.ws.logs_dir, grace=0.0, metrics=RolloutMetrics(registry))
    row = rollouts.set("toy", {"policy": "bandit", "arms": ["1", "2"], "floor": 0.05})
    traffic.ts = row.created_at + 1.0
    for _ in range(3):
        traffic.send(400, errors={}, labels={"1": 0.2, "2": 0.6})
        tick(driver, traffic)
    live = rollouts.store.rollouts.live("toy")
    assert live is not None and live.state is not None
    assert live.state["applied"]["2"] > 0.9 and live.state["applied"]["1"] >= 0.05  # exploited, with the floor kept
    reweights = [d for d in rollouts.store.rollouts.decisions("toy") if d.action == "reweight"]
    assert reweights and "thompson over" in reweights[0].decision["reason"]
    assert registry.get_sample_value("mloop_rollout_share", {"deployment": "toy", "arm": "2", "version": "2"}) == live.state["applied"]["2"]
    assert registry.get_sample_value("mloop_rollout_decisions_total", {"deployment": "toy", "action": "reweight"}) == len(reweights)
    restored = build_policy(parse_policy(live.document), state=live.state)  # what a restarted server routes by
    assert restored.weights() == live.state["applied"]


@pytest.mark.slow
def test_only_the_lease_holder_drives(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    rollouts, traffic, driver = setup
    canary(rollouts, traffic)
    traffic.send(3000, errors={})
    first = LeasedLoop(LEASE, rollouts.store.monitors, lambda: driver.tick(now=traffic.ts + 1.0), interval=1.0, holder="a")
    second = LeasedLoop(LEASE, rollouts.store.monitors, lambda: driver.tick(now=traffic.ts + 1.0), interval=1.0, holder="b")
    assert [s.decision.action.value for s in first.run_once()] == ["advance"]
    assert second.run_once() is None  # stands down while the first holds the lease
    first.stop()
    assert second.run_once() is not None  # and takes over once it is released


@pytest.mark.slow
def test_a_long_tick_keeps_its_lease(setup: tuple[Rollouts, Traffic, RolloutDriver]) -> None:
    import threading
    import time

    rollouts = setup[0]
    store = rollouts.store.monitors
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "done"

    first = LeasedLoop("slow-work", store, slow, interval=0.1, holder="a")
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(first.run_once()))
    worker.start()
    started.wait(5)
    time.sleep(0.5)  # five intervals: the lease's TTL (three) would have run out without the heartbeat
    assert LeasedLoop("slow-work", store, lambda: "stolen", interval=0.1, holder="b").run_once() is None
    release.set()
    worker.join()
    assert result == ["done"]


def test_rows_of_one_request_are_one_outcome_the_mean_of_its_rows() -> None:
    """Rows answered together share their circumstances: the canary judges one outcome per request (its rows' mean
    loss), else fifty rows of one lucky request would count as fifty independent pieces of evidence."""
    from mloop.automation._rollout_driver import feed_labels

    seen: list[tuple[str, str, float]] = []

    class Recorder:
        def observe(self, arm: str, metric: str, value: float) -> None:
            seen.append((arm, metric, value))

    rows = 50
    frame = pd.DataFrame({
        "request_id": ["a"] * rows + ["b"] * rows + ["c"] * 2,
        "arm": ["candidate"] * rows + ["baseline"] * rows + ["baseline"] * 2,
        "score": [0.3] * rows + [0.3] * rows + [0.2, 0.6],
        "label": [1.0] * rows + [0.0] * rows + [1.0, np.nan],  # c's second label has not arrived
    })
    counts = feed_labels(Recorder(), frame, {"loss"})  # type: ignore[arg-type]
    assert counts == {"loss": 3}
    assert seen == [("candidate", "loss", pytest.approx(0.49)), ("baseline", "loss", pytest.approx(0.09)), ("baseline", "loss", pytest.approx(0.64))]
