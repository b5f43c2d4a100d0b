"""Performance estimated without labels (CBPE): the estimator is the expected AUC of calibrated scores, a fall is
judged by a z-test against the champion's reference, and the controller opens an attempt on a block whose estimate
fell — or admits a data-drift alarm only when the champion's estimated AUC fell on the drifted window."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mloop.automation import Loop, LoopController, parse_loop_policy
from mloop.automation._cbpe import Calibration, estimate, estimated_drop, expected_auc
from mloop.errors import InvalidInput
from mloop.events import DRIFT_DETECTED
from mloop.monitoring import PredictionLog
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame

pytestmark = pytest.mark.slow  # each test trains and serves a champion over a replayed stream

FEATURES = TOY_SPEC.features


def test_the_expected_auc_is_the_auc_when_the_labels_are_known_and_its_mean_when_drawn() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=4000), 1)  # many ties
    p = 1 / (1 + np.exp(-2 * scores))
    labels = (rng.random(4000) < p).astype(float)
    assert expected_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    drawn = [roc_auc_score(rng.random(4000) < p, scores) for _ in range(200)]
    assert expected_auc(p, scores) == pytest.approx(np.mean(drawn), abs=0.002)
    with pytest.raises(InvalidInput, match="both classes"):
        Calibration.fit(np.zeros(50), scores[:50])


def test_a_narrower_spread_of_inputs_is_an_estimated_fall_and_the_same_spread_is_not() -> None:
    rng = np.random.default_rng(1)

    def block(spread: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(scale=spread, size=3000)
        return (rng.random(3000) < 1 / (1 + np.exp(-2 * x))).astype(float), x

    ref_labels, ref_scores = block(1.0)
    calibration = Calibration.fit(ref_labels, ref_scores)
    reference = estimate(calibration, ref_scores)
    same = estimated_drop(reference, estimate(calibration, block(1.0)[1], seed=1), 3000)
    narrower_labels, narrower = block(0.5)
    fell = estimated_drop(reference, estimate(calibration, narrower, seed=2), 3000)
    assert not same.dropped and same.z < 1.645
    assert fell.dropped and fell.z > 5 and fell.current < fell.reference - 0.05
    assert fell.current == pytest.approx(roc_auc_score(narrower_labels, narrower), abs=0.03)  # and it is about the AUC that came


def _log(ws: Workspace, frame: pd.DataFrame, start: float, *, labelled: bool, per_request: int = 100) -> None:
    """Predictions of ``toy`` v1 with its own scores, at ``start`` + i seconds; their labels too if ``labelled``."""
    model = ws.registry.load("toy", 1)
    scores = model.score(frame[FEATURES])
    log = PredictionLog(ws.logs_dir, flush_interval=60)
    for i in range(0, len(frame), per_request):
        part = frame.iloc[i : i + per_request]
        rid = f"r{start:.0f}-{i}"
        log.log_predictions("toy", 1, rid, start + i, part[FEATURES], scores[i : i + per_request], 1.0)
        if labelled:
            log.log_feedback("toy", rid, part["y"].astype(float).tolist(), start + i + 0.5)
    log.close()


def _narrow(n: int, seed: int) -> pd.DataFrame:
    """The same concept, but x1 (what the champion leans on most) spreads half as wide: the scores bunch up."""
    frame = toy_frame(n, seed=seed)
    return frame.assign(x1=frame["x1"] * 0.3)


@pytest.fixture
def estimating(deployed: Workspace) -> Iterator[tuple[Workspace, Loop, LoopController]]:
    controller = LoopController(deployed.store, deployed.bus, deployed.registry, deployed.tracker, deployed.logs_dir, deployed.root / "loop")
    yield deployed, Loop(deployed.store, deployed.bus), controller
    controller.trainer.close()


def test_a_block_whose_estimated_auc_fell_opens_an_attempt_before_any_label(estimating: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = estimating
    service.apply([parse_loop_policy({"deployment": "toy", "triggers": {"monitors": [], "estimated": {"rows": 1500}}})])
    assert controller.estimated() == []  # no labelled reference yet
    _log(ws, toy_frame(1500, seed=11), 10_000, labelled=True)
    _log(ws, toy_frame(1500, seed=12), 20_000, labelled=False)  # the same world, no labels yet
    assert controller.estimated() == []
    cursor = ws.store.loop.cursor("loop-estimated:toy")
    assert cursor["champion"] == 1 and cursor["block"] == 1 and cursor["reference"]["until"] == 10_000 + 1400
    # The estimate on the labelled reference is close to the AUC its labels showed.
    assert cursor["reference"]["auc"] == pytest.approx(cursor["reference"]["realized"], abs=0.02)
    _log(ws, _narrow(1500, seed=13), 30_000, labelled=False)
    [opened] = controller.estimated()
    attempt = ws.store.loop.attempt(opened)
    detail = attempt.trigger_detail
    assert attempt.trigger_kind == "estimated" and detail["dropped"] and detail["z"] > 1.645 and detail["block"] == 2
    assert detail["current"] < detail["reference"] and detail["since"] == 30_000 and detail["until"] == 30_000 + 1400
    assert controller.estimated() == []  # judged once
    restarted = LoopController(ws.store, ws.bus, ws.registry, ws.tracker, ws.logs_dir, ws.root / "loop")  # by the cursor, not memory
    assert restarted.estimated() == [] and len(ws.store.loop.attempts("toy")) == 1


def test_a_champion_whose_scores_cannot_be_calibrated_is_said_so_once_and_decides_nothing(
        estimating: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = estimating
    service.apply([parse_loop_policy({"deployment": "toy", "triggers": {"monitors": [], "estimated": {"rows": 1500}}})])
    _log(ws, toy_frame(1500, seed=21).assign(y=0), 10_000, labelled=True)  # one class only: nothing to calibrate on
    _log(ws, _narrow(1500, seed=22), 20_000, labelled=False)
    assert controller.tick() == [] and controller.estimated() == []
    [skip] = [e for e in ws.store.audit.list(target="toy") if e.action == "loop.trigger_skipped"]
    assert "cannot be estimated without labels" in (skip.details or {})["reason"] and "both classes" in (skip.details or {})["reason"]
    assert ws.store.loop.cursor("loop-controller.tick") is not None  # the pass went on to its end
    nan = estimated_drop((0.8, 1e-4), (float("nan"), float("nan")), 100)
    assert not nan.dropped  # an estimate that could not be made decides nothing


def _alarm(ws: Workspace, start: float, end: float) -> None:
    with ws.store.transaction() as conn:
        ws.bus.publish(conn, DRIFT_DETECTED, {"status": "firing", "kind": "data_drift", "deployment": "toy", "monitor": "inputs",
                                              "drifted": ["x1"], "window": {"start": start, "end": end, "rows": 1500}, "details": {}})


def test_impact_by_estimate_admits_a_drift_alarm_only_when_the_estimated_auc_fell(estimating: tuple[Workspace, Loop, LoopController]) -> None:
    ws, service, controller = estimating
    policy = {"deployment": "toy", "triggers": {"kinds": ["data_drift"], "estimated": {"rows": 1500}, "impact": {"by": "estimated"}}}
    service.apply([parse_loop_policy(policy)])
    _log(ws, toy_frame(1500, seed=14), 10_000, labelled=True)
    wider = toy_frame(1500, seed=15)
    _log(ws, wider.assign(x3=wider["x3"] * 3), 20_000, labelled=False)  # drift in x3, which the champion barely uses
    _log(ws, _narrow(1500, seed=16), 30_000, labelled=False)
    _alarm(ws, 20_000, 21_500)
    assert controller.consume() == []
    [skip] = [e for e in ws.store.audit.list(target="toy") if e.action == "loop.trigger_skipped"]
    assert "did not fall significantly" in (skip.details or {})["reason"] and not (skip.details or {})["estimated"]["dropped"]
    _alarm(ws, 30_000, 31_500)
    [opened] = controller.consume()
    assert ws.store.loop.attempt(opened).trigger_kind == "monitor"
    with pytest.raises(InvalidInput, match="impact by estimated needs triggers.estimated"):
        parse_loop_policy({"deployment": "toy", "triggers": {"impact": {"by": "estimated"}}})
