"""Deploying: a deployment is a name that serves a model alias (and, during a rollout, a candidate beside it).

``Deployments`` is the use case over the three stores it touches — the registry (to resolve and check the
versions), the deployments table and the event bus (every server swaps its models when it hears the event).
"""

from __future__ import annotations

import logging
from typing import Any

from mloop.errors import InvalidInput, NotFound
from mloop.events import DEPLOYMENT_CHANGED, EventBus
from mloop.registry import Registry
from mloop.store import Deployment, MetadataStore, ServingConfig

log = logging.getLogger("mloop.serving")


class Deployments:
    """Create, change and list deployments. Safe to use from several processes: each write is one transaction
    that also audits it and publishes the change."""

    def __init__(self, registry: Registry, store: MetadataStore, bus: EventBus) -> None:
        self.registry = registry
        self.store = store
        self.bus = bus

    def list(self) -> list[Deployment]:
        return self.store.deployments.list()

    def get(self, name: str) -> Deployment:
        return self.store.deployments.get(name)

    def check_feature_service(self, name: str) -> None:
        """``InvalidInput`` unless feature service ``name`` has been applied."""
        from mloop.features import FeatureRegistry

        services = FeatureRegistry(self.store).services()
        if name not in services:
            raise InvalidInput(f"feature_service: no feature service {name!r}; services: {', '.join(sorted(services)) or 'none applied'} "
                               "(`mloop features apply FILE`).", field="feature_service")

    def _served_versions(self, name: str) -> set[tuple[str, int]]:
        """(model, version) pairs the deployment serves now, as its aliases resolve today."""
        try:
            current = self.store.deployments.get(name)
        except NotFound:  # a new deployment serves nothing yet
            return set()
        refs = [current.alias] + ([str(current.rollout["candidate_alias"])] if current.rollout and current.rollout.get("candidate_alias") else [])
        out = set()
        for ref in refs:
            try:
                out.add((current.model_name, self.registry.resolve(current.model_name, ref).version))
            except NotFound:  # an alias that no longer resolves is not served
                continue
        return out

    def check_version(self, name: str, model_name: str, version: int) -> Any | None:
        """Whether deployment ``name`` may newly serve ``version``: it loads, its files match their signed hashes, and
        its ONNX twin agrees on its parity sample (else the error naming why). Returns the loaded version, or None
        when the deployment serves it already (checked when it arrived)."""
        from mloop.optimize import verify_twin

        if (model_name, version) in self._served_versions(name):
            return None
        loaded = self.registry.load(model_name, version)
        verify_twin(loaded)
        return loaded

    def deploy(
        self,
        name: str,
        model_name: str,
        alias: str = "champion",
        *,
        rollout: dict[str, Any] | None = None,
        serving: ServingConfig | None = None,
        actor: str = "local",
        checked: Any | None = None,
    ) -> Deployment:
        """Serve ``models:/<model_name>@<alias>`` as deployment ``name`` (created or replaced).

        ``serving`` sets batching, queue, deadline and missing-value rules and the feature service filled into requests (which
        must exist); ``None`` keeps the current ones.
        Every version the deployment will newly serve must exist and, if it has an ONNX twin, agree with it on
        its parity sample (else ``Conflict`` naming the largest difference); versions it already serves were
        checked when they arrived, so a rollout step re-checks nothing; ``checked`` is a version the caller has
        just had :meth:`check_version` return.
        """
        from mloop.rollout import parse_split

        rollout = parse_split(rollout) if rollout is not None else None
        if serving is not None and serving.feature_service is not None:
            self.check_feature_service(serving.feature_service)
        refs = [alias] + ([str(rollout["candidate_alias"])] if rollout and rollout.get("candidate_alias") else [])
        new: list[tuple[int, str, Any]] = []
        for ref in refs:
            version = self.registry.resolve(model_name, ref).version
            # a version the caller already passed through check_version is not loaded and verified a second time
            fresh = checked is not None and (checked.name, checked.version) == (model_name, version)
            loaded = checked if fresh else self.check_version(name, model_name, version)
            if loaded is not None:
                new.append((version, ref, loaded))
        with self.store.transaction() as conn:
            dep = self.store.deployments.upsert(conn, name, model_name=model_name, alias=alias, rollout=rollout, serving=serving)
            self.store.audit.record(
                conn, "deployment.updated", name,
                {"model": model_name, "alias": alias, "rollout": rollout, "serving": dep.serving.to_dict()}, actor=actor,
            )
            self.bus.publish(conn, DEPLOYMENT_CHANGED, {"name": name, "revision": dep.revision})
        for version, ref, loaded in new:  # each newly served version's card says where it is served, and it gets a guide
            try:
                self.registry.card_deployed(model_name, version, deployment=name, alias=ref)
                self._guide(dep, version, ref, loaded)
            except Exception as exc:  # noqa: BLE001 - the deployment stands; its card and guide are documentation
                log.error("could not document deployment %s of %s v%s: %s", name, model_name, version, exc)
        return dep

    def _guide(self, dep: Deployment, version: int, alias: str, loaded: Any) -> None:
        """The deployment guide: endpoints, request and response examples for its columns, monitors, rollback."""
        if self.registry.docs_dir is None:
            return
        from mloop.documents import DocumentStore, deployment_guide

        example: dict[str, Any] = {}
        if getattr(loaded, "background", None) is not None and len(loaded.background):
            example = loaded.background.iloc[0].to_dict()
        monitors = [m.config for m in self.store.monitors.list() if m.deployment == dep.name]
        DocumentStore(self.registry.docs_dir).write(deployment_guide({
            "name": dep.name, "model": dep.model_name, "version": version, "alias": alias,
            "columns": [(c.name, c.type) for c in loaded.inputs], "example": example, "monitors": monitors,
            "serving": dep.serving.to_dict(), "feature_service": dep.serving.feature_service,
        }))
