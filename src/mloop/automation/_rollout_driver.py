"""The rollout driver: background work (one process at a time, under a lease) that reads each live canary's and
bandit's outcomes from the prediction and feedback log, feeds them to the policy's pure logic, and carries out what
it decides — advance, promote, roll back, re-weight — as audited decisions with their statistics, on the bus (every
server swaps its routing) and in Prometheus.

The driver keeps a cursor in the policy's stored state: outcomes are read in windows ``[cursor, horizon)`` that
end ``grace`` seconds in the past, so every server has written its rows before they are read, and each outcome is
counted once, across restarts and hand-overs between processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import Conflict, MloopError
from mloop.monitoring import LogReader
from mloop.rollout import Action, BanditSpec, CanarySpec, PolicyDecision, TrafficPolicy, build_policy, parse_policy
from mloop.serving import Rollouts
from mloop.store import PolicyRow

log = logging.getLogger("mloop.automation")

LEASE = "rollout-driver"
DRIVEN = ("canary", "bandit")  # the kinds whose logic decides; blue-green and shadow change on command
REWEIGHT_STEP = 0.01  # a bandit's new weights are applied (and recorded) once some arm's moves by at least this


class RolloutMetrics:
    """Prometheus series of the driver, on the registry of the process that runs it."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.decisions = Counter("mloop_rollout_decisions", "Automatic rollout decisions", ["deployment", "action"], registry=registry)
        self.share = Gauge("mloop_rollout_share", "Each arm's share of traffic under the live policy", ["deployment", "arm", "version"],
                           registry=registry)
        self.log_ratio = Gauge("mloop_rollout_log_ratio", "A canary metric's sequential statistic log Λ (rolls back at log 1/α)",
                               ["deployment", "metric"], registry=registry)
        self.outcomes = Counter("mloop_rollout_outcomes", "Outcomes the driver fed to a policy", ["deployment", "metric"], registry=registry)


@dataclass(frozen=True)
class DriverStep:
    """What one tick did for one deployment: the decision, how many outcomes it was fed, and whether it was carried out."""

    deployment: str
    revision: int
    decision: PolicyDecision
    observed: dict[str, int] = field(default_factory=dict)
    applied: bool = False


def arm_versions(row: PolicyRow) -> dict[str, int]:
    """Each arm's label (as logged with a prediction) and the version that answers for it."""
    doc = row.document
    if row.kind == "canary":
        return {"baseline": int(doc["baseline"]), "candidate": int(doc["candidate"])}
    return {str(arm): int(arm) for arm in doc.get("arms", [])}


def _own(frame: pd.DataFrame, arms: dict[str, int]) -> pd.DataFrame:
    """The rows this policy routed: a known arm answered by that arm's version (rows of an earlier policy that used
    the same labels are left out)."""
    if frame.empty:
        return frame
    expected = frame["arm"].map(arms)
    return frame[expected.notna() & (expected == frame["version"])]


def feed_outcomes(policy: TrafficPolicy, frame: pd.DataFrame, metrics: set[str]) -> dict[str, int]:
    """Feed one window of requests (``LogReader.outcomes``) to ``policy`` in time order: ``errors`` 1 for a failed
    request and 0 for an answered one, ``latency`` the log of an answered request's milliseconds."""
    counts: dict[str, int] = {}
    for arm, ok, latency in zip(frame["arm"].to_numpy(), frame["ok"].to_numpy(), frame["latency_ms"].to_numpy(dtype=float), strict=True):
        if "errors" in metrics:
            policy.observe(arm, "errors", 0.0 if ok else 1.0)
            counts["errors"] = counts.get("errors", 0) + 1
        if "latency" in metrics and ok and latency > 0 and math.isfinite(latency):
            policy.observe(arm, "latency", math.log(latency))
            counts["latency"] = counts.get("latency", 0) + 1
    return counts


def feed_labels(policy: TrafficPolicy, frame: pd.DataFrame, metrics: set[str], *, reward: str = "reward") -> dict[str, int]:
    """Feed labelled predictions (in the order their labels arrived), one outcome per request: the mean over its rows
    of ``loss`` (the squared error of the score against the label) and of a bandit's ``reward`` (the label, clipped
    to [0, 1] by the bandit). Rows of one request share their moment and their circumstances, so they are not
    independent draws; counting them one by one made a canary sure of a difference that was a few requests' luck."""
    labelled = frame[np.isfinite(frame["label"].to_numpy(dtype=float))]
    if labelled.empty:
        return {}
    scored = labelled.assign(loss=(labelled["score"].astype(float) - labelled["label"].astype(float)) ** 2)
    per_request = scored.groupby(["request_id", "arm"], sort=False).agg(loss=("loss", "mean"), label=("label", "mean")).reset_index()
    counts: dict[str, int] = {}
    for arm, loss, label in zip(per_request["arm"].to_numpy(), per_request["loss"].to_numpy(), per_request["label"].to_numpy(), strict=True):
        if "loss" in metrics and math.isfinite(loss):
            policy.observe(arm, "loss", float(loss))
            counts["loss"] = counts.get("loss", 0) + 1
        if reward in metrics:
            policy.observe(arm, reward, float(label))
            counts[reward] = counts.get(reward, 0) + 1
    return counts


def feed_scores(policy: TrafficPolicy, frame: pd.DataFrame) -> dict[str, int]:
    """Feed the predictions' scores (the ``score`` metric: has their distribution moved?), one outcome per request:
    the mean of its rows' scores, for the reason :func:`feed_labels` gives."""
    scored = frame[np.isfinite(frame["score"].to_numpy(dtype=float))]
    if scored.empty:
        return {}
    per_request = scored.groupby(["request_id", "arm"], sort=False)["score"].mean().reset_index()
    for arm, score in zip(per_request["arm"].to_numpy(), per_request["score"].to_numpy(dtype=float), strict=True):
        policy.observe(arm, "score", float(score))
    return {"score": len(per_request)}


def _needs(row: PolicyRow) -> tuple[set[str], str]:
    spec = parse_policy(row.document)
    if isinstance(spec, CanarySpec):
        return set(spec.metrics), ""
    assert isinstance(spec, BanditSpec)
    return {spec.reward}, spec.reward


class RolloutDriver:
    """Drives every live canary and bandit of a workspace: ``tick()`` reads what is new in the log, decides and acts."""

    def __init__(self, rollouts: Rollouts, logs_dir: Path, *, grace: float = 2.0, metrics: RolloutMetrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.rollouts = rollouts
        self.reader = LogReader(logs_dir)
        self.grace = grace
        self.metrics = metrics
        self.clock = clock

    def tick(self, *, now: float | None = None, horizon: float | None = None) -> list[DriverStep]:
        """One pass over the live policies. ``horizon`` (default ``now - grace``) is where this pass stops reading
        outcomes; a policy that fails (say its version vanished) is logged and the others go on."""
        now = self.clock() if now is None else now
        horizon = now - self.grace if horizon is None else horizon
        steps = []
        for row in self.rollouts.store.rollouts.all_live():
            if row.status != "active" or row.kind not in DRIVEN:
                continue
            try:
                steps.append(self.drive(row, now=now, horizon=horizon))
            except Conflict as exc:  # an operator ended or paused it meanwhile: their command wins
                log.info("rollout of %s: %s", row.deployment, exc.message)
            except Exception as exc:
                if isinstance(exc, MloopError):
                    log.warning("rollout of %s: %s", row.deployment, exc.message)
                else:
                    log.exception("rollout of %s failed", row.deployment)
        return steps

    def drive(self, row: PolicyRow, *, now: float, horizon: float) -> DriverStep:
        """Catch one policy up with the log and carry out its decision."""
        policy = build_policy(parse_policy(row.document), started=row.created_at, state=row.state)
        cursor = dict((row.state or {}).get("cursor") or {})
        arms = arm_versions(row)
        metrics, reward = _needs(row)
        observed: dict[str, int] = {}
        since = float(cursor.get("outcomes", row.created_at))
        if horizon > since:
            if metrics & {"errors", "latency"}:
                observed |= feed_outcomes(policy, _own(self.reader.outcomes(row.deployment, since=since, until=horizon), arms), metrics)
            if "score" in metrics:
                frame = self.reader.predictions(row.deployment, since=since, until=horizon)
                observed |= feed_scores(policy, _own(frame, arms)) if not frame.empty else {}
            cursor["outcomes"] = horizon
        labels_after = float(cursor.get("labels", row.created_at))
        if metrics & {"loss", reward} and horizon > labels_after:
            frame = self.reader.labelled(row.deployment, since=row.created_at, labels_after=labels_after, labels_until=horizon,
                                         columns=("arm", "version", "score"))
            if not frame.empty:
                frame = _own(frame.sort_values(["label_ts", "ts"], kind="stable"), arms)
                observed |= feed_labels(policy, frame, metrics, reward=reward or "reward")
            cursor["labels"] = horizon
        before = policy.weights()
        decision = policy.decide(now)
        self._observe(row, arms, policy, decision, observed)
        moved = decision.action is not Action.WAIT and not (
            decision.action is Action.REWEIGHT and max(abs(decision.weights.get(a, 0.0) - w) for a, w in before.items()) < REWEIGHT_STEP
        )
        if not moved:
            if observed:  # nothing new: the next pass reads the same (empty) window again, so nothing to save
                self.rollouts.store.rollouts.save_state(row.id, {**policy.state(), "cursor": cursor})
            return DriverStep(row.deployment, row.revision, decision, observed)
        policy.apply(decision, now)
        self._carry_out(row, policy, decision, cursor, observed)
        return DriverStep(row.deployment, row.revision, decision, observed, applied=True)

    def _carry_out(self, row: PolicyRow, policy: TrafficPolicy, decision: PolicyDecision, cursor: dict[str, Any], observed: dict[str, int]) -> None:
        payload: dict[str, Any] = {**decision.to_dict(), "weights_after": policy.weights(), "observed": observed, "by": "driver"}
        status = {Action.PROMOTE: "promoted", Action.ROLLBACK: "rolled_back"}.get(decision.action)
        if decision.action is Action.PROMOTE:
            winner = int(row.document["candidate"])
            payload |= {"from": self.rollouts.move_alias(row.deployment, winner), "to": winner}
        self.rollouts.record(row, payload, state={**policy.state(), "cursor": cursor}, actor="driver", status=status, active_only=True)
        if self.metrics is not None:
            self.metrics.decisions.labels(row.deployment, decision.action.value).inc()
        log.info("rollout of %s (r%d): %s — %s", row.deployment, row.revision, decision.action.value, decision.reason)

    def _observe(self, row: PolicyRow, arms: dict[str, int], policy: TrafficPolicy, decision: PolicyDecision, observed: dict[str, int]) -> None:
        if self.metrics is None:
            return
        for arm, weight in policy.weights().items():
            self.metrics.share.labels(row.deployment, arm, str(arms.get(arm, arm))).set(weight)
        for e in decision.evidence:
            if math.isfinite(e.log_ratio):
                self.metrics.log_ratio.labels(row.deployment, e.metric).set(e.log_ratio)
        for metric, n in observed.items():
            self.metrics.outcomes.labels(row.deployment, metric).inc(n)
