"""The closed loop for people and programs: apply retraining policies, ask for a retrain by hand, and read what the
loop did — each attempt from its trigger and evidence through training, the gate and the rollout to its result."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from mloop.automation._loop_policy import LoopPolicy, load_loop_policies, parse_loop_policy
from mloop.automation._loop_rules import Trigger, admit
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.events import EventBus
from mloop.store import AttemptRow, LoopPolicyRow, MetadataStore


class Loop:
    """The use case over the store (policies, attempts) and the bus; the controller does the work in the background."""

    def __init__(self, store: MetadataStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus

    def check(self, policies: list[LoopPolicy], *, where: str = "policies[{i}]") -> None:
        """``InvalidInput`` unless every policy's deployment exists, naming the entry (``where`` formatted with its
        index: ``policies[1].deployment``, or ``policy.deployment`` for one): what ``apply`` and its dry run check."""
        known = {d.name for d in self.store.deployments.list()}
        for i, policy in enumerate(policies):
            if policy.deployment not in known:
                field = f"{where.format(i=i)}.deployment"
                raise InvalidInput(f"{field}: no deployment {policy.deployment!r}; `mloop deployments list` shows them.", field=field)

    def apply(self, policies: list[LoopPolicy], *, actor: str = "local", reason: str = "", where: str = "policies[{i}]") -> list[LoopPolicyRow]:
        """Make each policy its deployment's (every deployment must exist); alarms raised from now on are listened to."""
        from mloop.automation._controller import CURSOR

        self.check(policies, where=where)
        rows = []
        with self.store.transaction() as conn:
            if self.store.loop.cursor(CURSOR) is None:  # the first policy: alarms count from now, not from the beginning of time
                self.store.loop.move_cursor(conn, CURSOR, self.bus.last_id())
            for policy in policies:
                rows.append(self.store.loop.set_policy(conn, policy.deployment, policy.model_dump(mode="json"), actor=actor,
                                                       reason=reason or "applied"))
        return rows

    def apply_file(self, path: Path, *, actor: str = "local") -> list[LoopPolicyRow]:
        return self.apply(load_loop_policies(path), actor=actor, reason=f"applied from {path.name}")

    def remove(self, deployment: str, *, actor: str = "local") -> None:
        with self.store.transaction() as conn:
            if not self.store.loop.remove_policy(conn, deployment, actor=actor):
                raise NotFound(f"{deployment!r} has no retraining policy; `mloop loop status` lists them.")

    def admit_manual(self, deployment: str) -> LoopPolicyRow:
        """The policy a person's retrain would run under, once its guards admit it (``NotFound`` without a policy,
        ``Conflict`` naming the guard that refuses): what ``retrain`` and its dry run both check."""
        row = self.store.loop.policy(deployment)
        if row is None:
            raise NotFound(f"{deployment!r} has no retraining policy: apply one with `mloop loop apply policy.yaml`.")
        policy = parse_loop_policy(row.document, check_recipe=False)
        admission = admit(policy.guards, self.store.loop.attempts(deployment, last=1000), time.time(), manual=True)
        if not admission.admitted:
            raise Conflict(f"{deployment!r}: {admission.reason}; `mloop loop status {deployment}` follows it.")
        return row

    def retrain(self, deployment: str, *, actor: str = "local", reason: str = "") -> int:
        """Open an attempt now (``mloop retrain NAME``): the cooldown and the daily cap do not apply to a person, but an
        attempt already in flight does."""
        row = self.admit_manual(deployment)
        trigger = Trigger(deployment, "manual", f"manual:{uuid.uuid4().hex}", time.time(), {"by": actor, "reason": reason or "by hand"})
        with self.store.transaction() as conn:
            attempt = self.store.loop.open_attempt(conn, row, kind=trigger.kind, key=trigger.key, detail=trigger.detail, at=trigger.at,
                                                   step="train", actor=actor)
        assert attempt is not None  # a fresh key
        return attempt

    # -- reading -------------------------------------------------------------------------------

    def describe(self, attempt: AttemptRow) -> dict[str, Any]:
        """One attempt as ``mloop loop history --json`` prints it."""
        return {
            "id": attempt.id, "deployment": attempt.deployment,
            "trigger": {"kind": attempt.trigger_kind, "detail": attempt.trigger_detail, "at": attempt.trigger_at},
            "step": attempt.step,
            "steps": [{"name": s.name, "started_at": s.started_at, "finished_at": s.finished_at, "outcome": s.outcome, "detail": s.detail}
                      for s in self.store.loop.steps(attempt.id)],
            "result": attempt.result, "human": attempt.human,
            "champion": attempt.state.get("champion"), "challenger": attempt.state.get("challenger"),
        }

    def history(self, deployment: str | None = None, *, last: int = 100) -> list[dict[str, Any]]:
        return [self.describe(a) for a in self.store.loop.attempts(deployment, last=last)]

    def status(self, deployment: str) -> dict[str, Any]:
        """The deployment's policy, the attempt in flight, the last attempts' results, and the controller's last pass
        (``started``/``finished``; None before its first)."""
        from mloop.automation._controller import HEARTBEAT

        self.store.deployments.get(deployment)  # NotFound names it
        row = self.store.loop.policy(deployment)
        attempts = self.store.loop.attempts(deployment, last=20)
        return {
            "deployment": deployment,
            "policy": None if row is None else {"revision": row.revision, "actor": row.actor, "created_at": row.created_at, "document": row.document},
            "in_flight": next((self.describe(a) for a in attempts if a.open), None),
            "controller": self.store.loop.cursor(HEARTBEAT),
            "recent": [{"id": a.id, "trigger": a.trigger_kind, "result": a.result, "step": a.step, "created_at": a.created_at} for a in attempts],
        }
