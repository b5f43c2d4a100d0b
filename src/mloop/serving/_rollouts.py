"""Setting a deployment's traffic policy: validated as data, its versions checked against the registry, stored with
its history and announced on the bus, in one transaction. Recording the decisions taken under it, with their
statistics, goes through here too."""

from __future__ import annotations

from typing import Any

from mloop.errors import InvalidInput, NotFound
from mloop.events import DEPLOYMENT_CHANGED, EventBus
from mloop.registry import Registry
from mloop.rollout import BanditSpec, BlueGreenSpec, CanarySpec, parse_policy
from mloop.store import MetadataStore, PolicyRow


def _versions(spec: CanarySpec | BlueGreenSpec | BanditSpec) -> list[tuple[str, str]]:
    """(field, version) pairs a document names."""
    if isinstance(spec, CanarySpec):
        return [("baseline", spec.baseline), ("candidate", spec.candidate)]
    if isinstance(spec, BlueGreenSpec):
        return [("active", spec.active), ("standby", spec.standby)]
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
        spec = parse_policy(document)
        model = self.store.deployments.get(deployment).model_name
        for field, version in _versions(spec):
            if not version.isdigit():
                raise InvalidInput(f"{field}: name a version number of {model!r}, got {version!r}.", field=field)
            try:
                self.registry.resolve(model, int(version))
            except NotFound:
                raise InvalidInput(f"{field}: {model!r} has no version {version}; `mloop models show {model}` lists them.", field=field) from None
        stored = {"policy": document["policy"], **spec.model_dump()}
        with self.store.transaction() as conn:
            row = self.store.rollouts.set(conn, deployment, str(document["policy"]), stored, actor=actor, reason=reason or "set by hand")
            self.bus.publish(conn, DEPLOYMENT_CHANGED, {"name": deployment, "policy": row.revision})
        return row

    def record(self, row: PolicyRow, decision: dict[str, Any], *, state: dict[str, Any] | None, actor: str, status: str | None = None) -> int:
        """Store a decision taken under ``row`` (its statistic inside), the policy's state after it, and the status it
        leads to; announced on the bus so that every server swaps its routing."""
        with self.store.transaction() as conn:
            decision_id = self.store.rollouts.decide(conn, row.id, decision, state=state, actor=actor, status=status)
            self.bus.publish(conn, DEPLOYMENT_CHANGED, {"name": row.deployment, "policy": row.revision, "decision": decision_id})
        return decision_id
