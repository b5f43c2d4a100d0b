"""The deploy step: a registered version put in front of traffic through mloop's own deployments and rollouts — a new
deployment created on the model's alias, or the version rolled out beside what an existing one serves (a canary the
rollout driver judges, blue-green, shadow or a bandit), never a second rollout of what is already served."""

from __future__ import annotations

from typing import Any

from mloop.errors import InvalidInput
from mloop.pipelines._spec import Deploy
from mloop.workspace import Workspace


def deploy(ws: Workspace, section: Deploy, version: dict[str, Any], where: str) -> dict[str, Any]:
    """Do it; returns what happened (``created``, ``rollout`` with the policy's revision, or ``unchanged``)."""
    from mloop.serving import Deployments, Rollouts

    model, number = str(version["name"]), int(version["version"])
    deployments = Deployments(ws.registry, ws.store, ws.bus)
    current = next((d for d in deployments.list() if d.name == section.deployment), None)
    if current is None:
        sharing = [d.name for d in deployments.list() if d.model_name == model and d.alias == section.alias]
        if sharing:  # moving the alias would change what they serve, with no rollout
            raise InvalidInput(f"{where}.alias: {', '.join(sharing)} already serve(s) {model}@{section.alias}; moving that alias for "
                               f"{section.deployment!r} would switch them to version {number} at once. Name another alias.", field=f"{where}.alias")
        from mloop.optimize import verify_twin
        from mloop.store import ServingConfig

        serving = None
        if section.feature_service is not None:
            try:
                deployments.check_feature_service(section.feature_service)
            except InvalidInput as exc:
                raise InvalidInput(f"{where}.feature_service: {exc.message}", field=f"{where}.feature_service") from None
            serving = ServingConfig(feature_service=section.feature_service)
        verify_twin(ws.registry.load(model, number))  # checked before the alias moves, not after
        ws.registry.set_alias(model, section.alias, number)
        deployments.deploy(section.deployment, model, section.alias, serving=serving)
        return {"deployment": section.deployment, "model": model, "version": number, "action": "created", "alias": section.alias}
    if current.model_name != model:
        raise InvalidInput(f"{where}.deployment: {section.deployment!r} serves model {current.model_name!r}, not {model!r}; "
                           "deploy under another name.", field=f"{where}.deployment")
    rollouts = Rollouts(ws.registry, ws.store, ws.bus)
    if rollouts.served_version(section.deployment) == number:
        return {"deployment": section.deployment, "model": model, "version": number, "action": "unchanged"}
    row = rollouts.start(section.deployment, number, section.strategy, steps=section.steps, actor="pipeline",
                         reason=f"{section.strategy} of version {number} by a pipeline's {where}")
    return {"deployment": section.deployment, "model": model, "version": number, "action": "rollout", "strategy": section.strategy,
            "policy": row.revision}
