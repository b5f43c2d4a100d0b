"""Traffic policies as versioned rows: each deployment's policy documents in order (who set each, when and why), the
state its logic carries across restarts, and every decision taken under it with the statistic behind it."""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.names import check_name
from mloop.store._engine import read_connection
from mloop.store._records import AuditLog
from mloop.store._schema import rollout_decisions, rollout_policies

ACTIVE, PAUSED = "active", "paused"
ENDED = ("promoted", "rolled_back", "replaced", "cancelled")


@dataclass(frozen=True)
class PolicyRow:
    id: int
    deployment: str
    revision: int
    kind: str
    document: dict[str, Any]
    state: dict[str, Any] | None
    status: str
    actor: str
    reason: str
    created_at: float
    updated_at: float

    @property
    def live(self) -> bool:
        """Active or paused: the policy still holds the deployment's traffic."""
        return self.status in (ACTIVE, PAUSED)


@dataclass(frozen=True)
class DecisionRow:
    id: int
    policy_id: int
    deployment: str
    action: str
    decision: dict[str, Any]
    actor: str
    created_at: float


def _policy(r: Any) -> PolicyRow:
    return PolicyRow(r.id, r.deployment, r.revision, r.kind, json.loads(r.document), json.loads(r.state) if r.state else None,
                     r.status, r.actor, r.reason, r.created_at, r.updated_at)


class RolloutRepository:
    """One live policy per deployment at most; setting a new one ends the live one as ``replaced``. Rows are never
    deleted: the history is the audit trail."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def set(self, conn: Connection, deployment: str, kind: str, document: dict[str, Any], *, actor: str, reason: str) -> PolicyRow:
        """Store ``document`` (already validated) as the deployment's live policy, inside the caller's transaction."""
        check_name(deployment, "deployment name")
        now = time.time()
        last = conn.execute(sa.select(sa.func.max(rollout_policies.c.revision)).where(rollout_policies.c.deployment == deployment)).scalar()
        conn.execute(
            sa.update(rollout_policies)
            .where(rollout_policies.c.deployment == deployment, rollout_policies.c.status.in_((ACTIVE, PAUSED)))
            .values(status="replaced", updated_at=now)
        )
        policy_id = conn.execute(
            sa.insert(rollout_policies).values(
                deployment=deployment, revision=(last or 0) + 1, kind=kind, document=json.dumps(document, sort_keys=True), state=None,
                status=ACTIVE, actor=actor, reason=reason, created_at=now, updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        AuditLog.record(conn, "rollout.policy_set", deployment, {"kind": kind, "document": document, "reason": reason}, actor=actor)
        row = conn.execute(sa.select(rollout_policies).where(rollout_policies.c.id == policy_id)).one()
        return _policy(row)

    def live(self, deployment: str) -> PolicyRow | None:
        with read_connection(self._engine) as conn:
            r = conn.execute(
                sa.select(rollout_policies).where(rollout_policies.c.deployment == deployment, rollout_policies.c.status.in_((ACTIVE, PAUSED)))
            ).first()
        return _policy(r) if r is not None else None

    def all_live(self) -> builtins.list[PolicyRow]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(rollout_policies).where(rollout_policies.c.status.in_((ACTIVE, PAUSED))).order_by(rollout_policies.c.id)).all()
        return [_policy(r) for r in rows]

    def history(self, deployment: str, *, last: int | None = None) -> builtins.list[PolicyRow]:
        """The deployment's policy revisions, oldest first (only the latest ``last`` when given)."""
        query = sa.select(rollout_policies).where(rollout_policies.c.deployment == deployment).order_by(rollout_policies.c.revision.desc())
        with read_connection(self._engine) as conn:
            rows = conn.execute(query if last is None else query.limit(last)).all()
        return [_policy(r) for r in reversed(rows)]

    def _live_row(self, conn: Connection, policy_id: int, statuses: tuple[str, ...]) -> Any:
        row = conn.execute(sa.select(rollout_policies).where(rollout_policies.c.id == policy_id)).first()
        if row is None:
            raise NotFound(f"No rollout policy with id {policy_id}.")
        if row.status not in statuses:
            if row.status == PAUSED:
                raise Conflict(f"The rollout of {row.deployment!r} (revision {row.revision}) is paused; `mloop rollout resume` releases it.")
            raise Conflict(f"The rollout policy of {row.deployment!r} (revision {row.revision}) has ended ({row.status}); set a new one.")
        return row

    def decide(self, conn: Connection, policy_id: int, decision: dict[str, Any], *, state: dict[str, Any] | None, actor: str,
               status: str | None = None, active_only: bool = False) -> int:
        """Record one decision, the policy's state after it (``None`` keeps the stored one) and, when it ends or
        pauses the policy, its new status: one transaction, so a crash leaves all of it or none. ``active_only``
        refuses a paused policy too (the driver's decisions: an operator's pause wins)."""
        row = self._live_row(conn, policy_id, (ACTIVE,) if active_only else (ACTIVE, PAUSED))
        if status is not None and status not in (ACTIVE, PAUSED, *ENDED):
            raise InvalidInput(f"Unknown policy status {status!r}.", field="status")
        now = time.time()
        decision_id = conn.execute(
            sa.insert(rollout_decisions).values(
                policy_id=policy_id, deployment=row.deployment, action=str(decision.get("action", "")),
                decision=json.dumps(decision, sort_keys=True, default=str), actor=actor, created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        values: dict[str, Any] = {"updated_at": now}
        if state is not None:
            values["state"] = json.dumps(state, sort_keys=True)
        if status is not None:
            values["status"] = status
        conn.execute(sa.update(rollout_policies).where(rollout_policies.c.id == policy_id).values(**values))
        AuditLog.record(conn, f"rollout.{decision.get('action', 'decision')}", row.deployment, decision, actor=actor)
        return int(decision_id)

    def save_state(self, policy_id: int, state: dict[str, Any]) -> bool:
        """Store the policy's state (its evidence and the driver's cursor) between decisions; False, and nothing
        written, when the policy has ended or paused meanwhile (an operator's command wins over the driver)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(rollout_policies).where(rollout_policies.c.id == policy_id, rollout_policies.c.status == ACTIVE)
                .values(state=json.dumps(state, sort_keys=True), updated_at=time.time())
            )
        return done.rowcount == 1

    def decisions(self, deployment: str, *, last: int = 100) -> builtins.list[DecisionRow]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(
                sa.select(rollout_decisions).where(rollout_decisions.c.deployment == deployment).order_by(rollout_decisions.c.id.desc()).limit(last)
            ).all()
        return [DecisionRow(r.id, r.policy_id, r.deployment, r.action, json.loads(r.decision), r.actor, r.created_at) for r in reversed(rows)]
