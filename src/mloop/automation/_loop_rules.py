"""The closed loop's decisions that need no I/O: which events are triggers, whether a trigger may start an attempt
(the guards), and how an attempt ends once its rollout has. Each returns the reason it decided, for the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mloop.automation._loop_policy import Guards, LoopPolicy
from mloop.events import DRIFT_DETECTED, Event
from mloop.store import AttemptRow

DAY = 86_400.0
ONLINE = "online"  # the trigger kind of an online update


@dataclass(frozen=True)
class Trigger:
    """Evidence that a deployment may need a new model: its kind (``monitor``, ``manual``), a key unique to it (so it
    is acted on once), what it says, and when it happened."""

    deployment: str
    kind: str
    key: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    reason: str


def trigger_for(event: Event, policies: Mapping[str, LoopPolicy]) -> Trigger | None:
    """The trigger an event is, under the deployments' policies: a monitor's alarm (``monitor.drift_detected``,
    firing) of a monitor and kind the policy listens to. Anything else is not a trigger."""
    if event.topic != DRIFT_DETECTED or event.payload.get("status") != "firing":
        return None
    deployment = str(event.payload.get("deployment", ""))
    policy = policies.get(deployment)
    if policy is None:
        return None
    monitor, kind = str(event.payload.get("monitor", "")), str(event.payload.get("kind", ""))
    listens = policy.triggers.monitors
    if (listens is not None and monitor not in listens) or kind not in policy.triggers.kinds:
        return None
    detail = {"monitor": monitor, "alarm": kind, "drifted": event.payload.get("drifted", []), "window": event.payload.get("window", {}),
              "evidence": event.payload.get("details", {}), "event": event.id}
    return Trigger(deployment, "monitor", f"event:{event.id}", event.created_at, detail)


def due(schedule: str, last: float, now: float) -> float | None:
    """The latest time in ``(last, now]`` that the cron ``schedule`` (UTC) names, or None: a controller that was
    down over several due times fires once, for the latest, not once for each."""
    from croniter import croniter

    latest = croniter(schedule, now).get_prev(float)
    if now == croniter(schedule, now - 1e-6).get_next(float):
        latest = now  # croniter's get_prev is strict; ``now`` itself may be due
    return float(latest) if latest > last else None


def admit(guards: Guards, attempts: Sequence[AttemptRow], now: float, *, manual: bool = False, online: bool = False) -> Admission:
    """May a trigger start an attempt, given the deployment's earlier ``attempts``? Never while one is in flight; a
    person's ``mloop retrain`` and an online update skip the cooldown and the daily cap, an automatic retrain does not
    (and online updates do not count against it)."""
    open_ = [a for a in attempts if a.open]
    if open_:
        return Admission(False, f"attempt {open_[-1].id} is in flight (step {open_[-1].step})")
    if manual:
        return Admission(True, "asked for by hand")
    if online:
        return Admission(True, "enough new labels for an online update (its pace is its rows, not the guards)")
    attempts = [a for a in attempts if a.trigger_kind != ONLINE]  # online updates count neither for the cooldown nor the cap
    if attempts:
        since = now - max(a.created_at for a in attempts)
        if since < guards.cooldown_seconds:
            return Admission(False, f"cooling down: {since:,.0f} s since the last attempt began, the cooldown is {guards.cooldown_seconds:,.0f} s")
    today = [a for a in attempts if now - a.created_at < DAY]
    if len(today) >= guards.max_per_day:
        return Admission(False, f"{len(today)} attempts in the last 24 h, the most allowed is {guards.max_per_day}")
    return Admission(True, "no guard holds it back")


#: A rollout policy's end → the attempt's result.
ROLLOUT_RESULTS = {"promoted": "promoted", "rolled_back": "rolled_back", "replaced": "abandoned", "cancelled": "abandoned"}
