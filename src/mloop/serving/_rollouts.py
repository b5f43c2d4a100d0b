"""Setting a deployment's traffic policy: validated as data, its versions checked against the registry, stored with
its history and announced on the bus, in one transaction. Recording the decisions taken under it, with their
statistics, goes through here too."""

from __future__ import annotations

import time
from typing import Any

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.events import DEPLOYMENT_CHANGED, ROLLOUT_DECIDED, EventBus
from mloop.registry import Registry
from mloop.rollout import BanditSpec, BlueGreenSpec, CanarySpec, ShadowSpec, parse_policy
from mloop.store import MetadataStore, PolicyRow


def _versions(spec: CanarySpec | BlueGreenSpec | BanditSpec | ShadowSpec) -> list[tuple[str, str]]:
    """(field, version) pairs a document names."""
    if isinstance(spec, CanarySpec):
        return [("baseline", spec.baseline), ("candidate", spec.candidate)]
    if isinstance(spec, BlueGreenSpec):
        return [("active", spec.active), ("standby", spec.standby)]
    if isinstance(spec, ShadowSpec):
        return [("primary", spec.primary), ("shadow", spec.shadow)]
    return [(f"arms.{i}", arm) for i, arm in enumerate(spec.arms)]


class Rollouts:
    """The use case over the registry (versions exist), the store (policies, history, decisions) and the bus."""

    def __init__(self, registry: Registry, store: MetadataStore, bus: EventBus) -> None:
        self.registry = registry
        self.store = store
        self.bus = bus

    def set(self, deployment: str, document: dict[str, Any], *, actor: str = "local", reason: str = "") -> PolicyRow:
        """Validate ``document`` (``{"policy": "canary", "baseline": "3", "candidate": "4", ...}``) and make it the
        deployment's live policy; every version it names must be a registered version of the deployment's model
        (else ``InvalidInput`` naming the field)."""
        spec = self.check(deployment, document)
        stored = {"policy": document["policy"], **spec.model_dump()}
        with self.store.transaction() as conn:
            row = self.store.rollouts.set(conn, deployment, str(document["policy"]), stored, actor=actor, reason=reason or "set by hand")
            self.bus.publish(conn, DEPLOYMENT_CHANGED, {"name": deployment, "policy": row.revision})
        return row

    def check(self, deployment: str, document: dict[str, Any]) -> CanarySpec | BlueGreenSpec | BanditSpec | ShadowSpec:
        """``document`` parsed, once every version it names is a registered version of the deployment's model."""
        spec = parse_policy(document)
        model = self.store.deployments.get(deployment).model_name
        for field, version in _versions(spec):
            if not version.isdigit() or not 1 <= int(version[:11]) < 2**31:
                raise InvalidInput(f"{field}: name a version number of {model!r} (1 to {2**31 - 1}), got {version!r}.", field=field)
            try:
                self.registry.resolve(model, int(version))
            except NotFound:
                raise InvalidInput(f"{field}: {model!r} has no version {version}; `mloop models show {model}` lists them.", field=field) from None
        return spec

    def record(self, row: PolicyRow, decision: dict[str, Any], *, state: dict[str, Any] | None = None, actor: str, status: str | None = None,
               active_only: bool = False) -> int:
        """Store a decision taken under ``row`` (its statistic inside), the policy's state after it (``None`` keeps the
        stored state: an operator's command must not rewind the driver's evidence), and the status it leads to;
        announced on the bus (``rollout.decided``, with the decision) so that every server swaps its routing."""
        with self.store.transaction() as conn:
            decision_id = self.store.rollouts.decide(conn, row.id, decision, state=state, actor=actor, status=status, active_only=active_only)
            self.bus.publish(conn, ROLLOUT_DECIDED, {"name": row.deployment, "policy": row.revision, "decision": decision_id, "actor": actor,
                                                     "status": status, **decision})
        return decision_id

    def move_alias(self, deployment: str, version: int) -> int:
        """Point the deployment's alias at ``version`` (a promotion's effect); returns the version it pointed at."""
        dep = self.store.deployments.get(deployment)
        before = self.served_version(deployment)
        self.registry.set_alias(dep.model_name, dep.alias, int(version))
        return before

    # -- operators' commands -------------------------------------------------------------------------

    def served_version(self, deployment: str) -> int:
        """The version the deployment's alias resolves to now: what answers when no policy is live."""
        dep = self.store.deployments.get(deployment)
        return self.registry.resolve(dep.model_name, dep.alias).version

    def start(self, deployment: str, version: int, strategy: str, *, steps: list[float] | None = None, actor: str = "local",
              reason: str = "") -> PolicyRow:
        """Roll ``version`` out beside what the deployment serves now: a ``canary`` (stages of share), ``blue-green``
        (all traffic at once, the current version kept loaded as standby) or a ``bandit`` over the two."""
        document = self.start_document(deployment, version, strategy, steps=steps)
        return self.set(deployment, document, actor=actor, reason=reason or f"{strategy} of version {version}")

    def start_document(self, deployment: str, version: int, strategy: str, *, steps: list[float] | None = None) -> dict[str, Any]:
        """The policy document ``start`` would set (checked like any other)."""
        current = str(self.served_version(deployment))
        if str(version) == current:
            raise InvalidInput(f"{deployment!r} already serves version {version}.", field="version")
        if strategy == "canary":
            document: dict[str, Any] = {"policy": "canary", "baseline": current, "candidate": str(version), **({"steps": steps} if steps else {})}
        elif strategy == "blue-green":
            document = {"policy": "blue-green", "active": str(version), "standby": current}
        elif strategy == "bandit":
            document = {"policy": "bandit", "arms": [current, str(version)]}
        elif strategy == "shadow":
            document = {"policy": "shadow", "primary": current, "shadow": str(version)}
        else:
            raise InvalidInput(f"strategy must be canary, blue-green, bandit or shadow, got {strategy!r}.", field="strategy")
        if steps and strategy != "canary":
            raise InvalidInput("steps apply to canary rollouts only.", field="steps")
        self.check(deployment, document)
        return document

    def status(self, deployment: str, *, last: int = 50) -> dict[str, Any]:
        """The deployment's served version, its live policy with the weights in force, the last ``last`` policy
        revisions (and how many there are) and decisions, and what the live policy's evidence says at this moment (``live.now``): what ``mloop rollout
        status`` and ``GET /api/deployments/NAME/rollout`` show."""
        from mloop.rollout import build_policy

        store = self.store.rollouts
        live = store.live(deployment)
        policy = None if live is None else build_policy(parse_policy(live.document), state=live.state)
        history = store.history(deployment, last=last)
        return {
            "deployment": deployment,
            "serves": self.served_version(deployment),
            "live": None if live is None or policy is None else {
                "kind": live.kind, "revision": live.revision, "status": live.status, "document": live.document,
                "weights": policy.weights(),
                # what the evidence gathered so far says now (the driver's pure decision, not carried out): each metric's
                # statistic beside its boundary, between the recorded decisions
                "now": {"at": time.time(), **policy.decide(time.time()).to_dict()},
            },
            "history": [{"revision": p.revision, "kind": p.kind, "status": p.status, "actor": p.actor, "reason": p.reason,
                         "created_at": p.created_at} for p in history],
            "revisions": history[-1].revision if history else 0,
            "decisions": [{"action": d.action, "actor": d.actor, "created_at": d.created_at, "decision": d.decision}
                          for d in store.decisions(deployment, last=last)],
        }

    def live_rollout(self, deployment: str) -> PolicyRow:
        """The live rollout of ``deployment`` (``NotFound`` when there is none)."""
        row = self.store.rollouts.live(deployment)
        if row is None:
            raise NotFound(f"{deployment!r} has no rollout in progress; `mloop rollout status {deployment}` shows its history.")
        return row

    def promote(self, deployment: str, *, actor: str = "local") -> int:
        """End the live rollout by making its new version the deployment's (the alias moves); returns that version."""
        row, winner = self.promotion(deployment)
        before = self.move_alias(deployment, int(winner))
        self.record(row, {"action": "promote", "reason": f"promoted by {actor}", "from": before, "to": int(winner)}, actor=actor, status="promoted")
        return int(winner)

    def promotion(self, deployment: str) -> tuple[PolicyRow, int]:
        """The live rollout and the version a promotion would make the deployment's (``NotFound`` when none is live)."""
        row = self.live_rollout(deployment)
        doc = row.document
        if row.kind == "canary":
            winner = doc["candidate"]
        elif row.kind == "blue-green":
            winner = doc["active"]
        elif row.kind == "shadow":
            winner = doc["shadow"]
        else:
            weights = (row.state or {}).get("applied") or {arm: 1.0 for arm in doc["arms"]}
            winner = max(doc["arms"], key=lambda arm: float(weights.get(arm, 0.0)))
        return row, int(winner)

    def rollback_target(self, deployment: str) -> tuple[PolicyRow | None, PolicyRow | None, int]:
        """What a rollback would do: (the live rollout it ends, or None; else the promotion it undoes; the version served after)."""
        row = self.store.rollouts.live(deployment)
        if row is not None:
            return row, None, self.served_version(deployment)
        promoted = [p for p in self.store.rollouts.history(deployment) if p.status == "promoted"]
        if not promoted:
            raise Conflict(f"{deployment!r} has no rollout in progress and no promotion to undo.")
        last = promoted[-1]
        previous = last.document.get("baseline") or last.document.get("standby") or None
        moves = [d for d in self.store.rollouts.decisions(deployment, last=1000) if d.policy_id == last.id and d.action == "promote"]
        previous = moves[-1].decision.get("from", previous) if moves else previous
        if previous is None:
            raise Conflict(f"The last promotion of {deployment!r} does not say which version it replaced.")
        return None, last, int(previous)

    def rollback(self, deployment: str, *, actor: str = "local") -> int:
        """Return to the version served before the last switch or promotion, and say which it is. A live rollout
        ends (all traffic back to the deployment's alias); with none live, the last promotion is undone."""
        row, last, previous = self.rollback_target(deployment)
        if row is not None:
            self.record(row, {"action": "rollback", "reason": f"rolled back by {actor}"}, actor=actor, status="rolled_back")
            return self.served_version(deployment)
        assert last is not None
        dep = self.store.deployments.get(deployment)
        current = self.served_version(deployment)
        self.registry.set_alias(dep.model_name, dep.alias, int(previous))
        with self.store.transaction() as conn:
            self.store.audit.record(conn, "rollout.rollback", deployment, {"from": current, "to": int(previous), "undoes": last.revision}, actor=actor)
        return int(previous)

    def pausable(self, deployment: str, *, pause: bool) -> PolicyRow:
        """The live rollout, if it may be paused (``pause``) or resumed; else ``Conflict`` saying why."""
        row = self.live_rollout(deployment)
        if (row.status == "paused") == pause:
            raise Conflict(f"The rollout of {deployment!r} is {'already' if pause else 'not'} paused.")
        return row

    def pause(self, deployment: str, *, actor: str = "local") -> PolicyRow:
        """Hold the rollout where it is: traffic keeps its shares, no automatic decision is taken."""
        row = self.pausable(deployment, pause=True)
        self.record(row, {"action": "pause", "reason": f"paused by {actor}"}, actor=actor, status="paused")
        return self.live_rollout(deployment)

    def resume(self, deployment: str, *, actor: str = "local") -> PolicyRow:
        row = self.pausable(deployment, pause=False)
        self.record(row, {"action": "resume", "reason": f"resumed by {actor}"}, actor=actor, status="active")
        return self.live_rollout(deployment)
