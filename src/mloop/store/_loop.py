"""The closed loop's rows: each deployment's retraining policy with its history, attempts (at most one per trigger:
the unique ``trigger_key``) with their steps, and named cursors over the event bus."""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.errors import Conflict, NotFound
from mloop.names import check_name
from mloop.store._engine import read_connection
from mloop.store._records import AuditLog
from mloop.store._schema import cursors, loop_attempts, loop_policies, loop_steps

#: How an attempt ends.
RESULTS = ("promoted", "rolled_back", "rejected_by_gate", "failed", "abandoned")


@dataclass(frozen=True)
class LoopPolicyRow:
    id: int
    deployment: str
    revision: int
    document: dict[str, Any]
    status: str
    actor: str
    reason: str
    created_at: float


@dataclass(frozen=True)
class AttemptRow:
    id: int
    deployment: str
    policy_id: int
    trigger_kind: str
    trigger_key: str
    trigger_detail: dict[str, Any]
    trigger_at: float
    step: str
    state: dict[str, Any]
    result: str | None
    human: bool
    created_at: float
    updated_at: float

    @property
    def open(self) -> bool:
        return self.result is None


@dataclass(frozen=True)
class StepRow:
    id: int
    attempt_id: int
    name: str
    started_at: float
    finished_at: float | None
    outcome: str | None
    detail: dict[str, Any]


def _policy(r: Any) -> LoopPolicyRow:
    return LoopPolicyRow(r.id, r.deployment, r.revision, json.loads(r.document), r.status, r.actor, r.reason, r.created_at)


def _attempt(r: Any) -> AttemptRow:
    return AttemptRow(r.id, r.deployment, r.policy_id, r.trigger_kind, r.trigger_key, json.loads(r.trigger_detail), r.trigger_at, r.step,
                      json.loads(r.state), r.result, bool(r.human), r.created_at, r.updated_at)


class LoopRepository:
    """Policies are versioned (setting one replaces the active one; rows are never deleted); attempts and steps are
    appended and moved forward, never rewritten backwards."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- policies --------------------------------------------------------------------------------

    def set_policy(self, conn: Connection, deployment: str, document: dict[str, Any], *, actor: str, reason: str) -> LoopPolicyRow:
        """Store ``document`` (already validated) as the deployment's active retraining policy."""
        check_name(deployment, "deployment name")
        now = time.time()
        last = conn.execute(sa.select(sa.func.max(loop_policies.c.revision)).where(loop_policies.c.deployment == deployment)).scalar()
        conn.execute(sa.update(loop_policies).where(loop_policies.c.deployment == deployment, loop_policies.c.status == "active")
                     .values(status="replaced"))
        policy_id = conn.execute(sa.insert(loop_policies).values(
            deployment=deployment, revision=(last or 0) + 1, document=json.dumps(document, sort_keys=True), status="active", actor=actor,
            reason=reason, created_at=now,
        )).inserted_primary_key[0]  # type: ignore[index]
        AuditLog.record(conn, "loop.policy_set", deployment, {"document": document, "reason": reason}, actor=actor)
        return _policy(conn.execute(sa.select(loop_policies).where(loop_policies.c.id == policy_id)).one())

    def remove_policy(self, conn: Connection, deployment: str, *, actor: str) -> bool:
        """Stop retraining ``deployment`` automatically; False when it had no policy."""
        done = conn.execute(sa.update(loop_policies).where(loop_policies.c.deployment == deployment, loop_policies.c.status == "active")
                            .values(status="removed"))
        if done.rowcount:
            AuditLog.record(conn, "loop.policy_removed", deployment, {}, actor=actor)
        return bool(done.rowcount)

    def policy(self, deployment: str) -> LoopPolicyRow | None:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(loop_policies).where(loop_policies.c.deployment == deployment, loop_policies.c.status == "active")).first()
        return _policy(r) if r is not None else None

    def policy_by_id(self, policy_id: int) -> LoopPolicyRow:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(loop_policies).where(loop_policies.c.id == policy_id)).first()
        if r is None:
            raise NotFound(f"No retraining policy with id {policy_id}.")
        return _policy(r)

    def policies(self) -> builtins.list[LoopPolicyRow]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(loop_policies).where(loop_policies.c.status == "active").order_by(loop_policies.c.deployment)).all()
        return [_policy(r) for r in rows]

    # -- attempts and their steps ------------------------------------------------------------------

    def open_attempt(self, conn: Connection, policy: LoopPolicyRow, *, kind: str, key: str, detail: dict[str, Any], at: float,
                     step: str, actor: str) -> int | None:
        """Open the attempt a trigger starts, inside the caller's transaction (with the cursor that consumed the
        trigger); None when this trigger already has one: a trigger is acted on once."""
        exists = conn.execute(sa.select(loop_attempts.c.id).where(loop_attempts.c.deployment == policy.deployment,
                                                                  loop_attempts.c.trigger_key == key)).first()
        if exists is not None:
            return None
        now = time.time()
        attempt_id = conn.execute(sa.insert(loop_attempts).values(
            deployment=policy.deployment, policy_id=policy.id, trigger_kind=kind, trigger_key=key[:256],
            trigger_detail=json.dumps(detail, sort_keys=True, default=str), trigger_at=at, step=step, state="{}", result=None, human=False,
            created_at=now, updated_at=now,
        )).inserted_primary_key[0]  # type: ignore[index]
        AuditLog.record(conn, "loop.attempt_opened", policy.deployment, {"attempt": attempt_id, "trigger": kind, "key": key, "detail": detail},
                        actor=actor)
        return int(attempt_id)

    def attempt(self, attempt_id: int) -> AttemptRow:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(loop_attempts).where(loop_attempts.c.id == attempt_id)).first()
        if r is None:
            raise NotFound(f"No loop attempt {attempt_id}; `mloop loop history` lists them.")
        return _attempt(r)

    def attempts(self, deployment: str | None = None, *, open_only: bool = False, last: int = 100,
                 exclude_kind: str | None = None) -> builtins.list[AttemptRow]:
        """Attempts oldest first (the newest ``last``), of one deployment or all; ``exclude_kind`` leaves out those of
        one trigger kind (the guards count retrains, not the online updates between them)."""
        query = sa.select(loop_attempts)
        if deployment is not None:
            query = query.where(loop_attempts.c.deployment == deployment)
        if exclude_kind is not None:
            query = query.where(loop_attempts.c.trigger_kind != exclude_kind)
        if open_only:
            query = query.where(loop_attempts.c.result.is_(None))
        with read_connection(self._engine) as conn:
            rows = conn.execute(query.order_by(loop_attempts.c.id.desc()).limit(last)).all()
        return [_attempt(r) for r in reversed(rows)]

    def advance(self, conn: Connection, attempt_id: int, *, step: str, state: dict[str, Any], result: str | None = None,
                human: bool | None = None) -> None:
        """Move an open attempt to ``step`` with its new ``state`` (and, when it ends, its ``result``)."""
        row = conn.execute(sa.select(loop_attempts).where(loop_attempts.c.id == attempt_id)).first()
        if row is None:
            raise NotFound(f"No loop attempt {attempt_id}.")
        if row.result is not None:
            raise Conflict(f"Loop attempt {attempt_id} has ended ({row.result}).")
        values: dict[str, Any] = {"step": step, "state": json.dumps(state, sort_keys=True, default=str), "updated_at": time.time()}
        if result is not None:
            if result not in RESULTS:
                raise ValueError(f"unknown attempt result {result!r}")
            values["result"] = result
        if human is not None:
            values["human"] = human
        conn.execute(sa.update(loop_attempts).where(loop_attempts.c.id == attempt_id).values(**values))

    def start_step(self, conn: Connection, attempt_id: int, name: str, detail: dict[str, Any] | None = None) -> int:
        step_id = conn.execute(sa.insert(loop_steps).values(
            attempt_id=attempt_id, name=name, started_at=time.time(), finished_at=None, outcome=None,
            detail=json.dumps(detail or {}, sort_keys=True, default=str),
        )).inserted_primary_key[0]  # type: ignore[index]
        return int(step_id)

    def finish_step(self, conn: Connection, step_id: int, outcome: str, detail: dict[str, Any]) -> None:
        conn.execute(sa.update(loop_steps).where(loop_steps.c.id == step_id).values(
            finished_at=time.time(), outcome=outcome, detail=json.dumps(detail, sort_keys=True, default=str)))

    def steps(self, attempt_id: int) -> builtins.list[StepRow]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(loop_steps).where(loop_steps.c.attempt_id == attempt_id).order_by(loop_steps.c.id)).all()
        return [StepRow(r.id, r.attempt_id, r.name, r.started_at, r.finished_at, r.outcome, json.loads(r.detail)) for r in rows]

    # -- cursors -------------------------------------------------------------------------------------

    def cursor(self, name: str, default: Any = None) -> Any:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).first()
        return json.loads(r.value) if r is not None else default

    def move_cursor(self, conn: Connection, name: str, value: Any) -> None:
        """Set cursor ``name`` inside the caller's transaction (so what it consumed and where it stands commit together)."""
        text, now = json.dumps(value), time.time()
        if conn.execute(sa.update(cursors).where(cursors.c.name == name).values(value=text, updated_at=now)).rowcount == 0:
            conn.execute(sa.insert(cursors).values(name=name, value=text, updated_at=now))
