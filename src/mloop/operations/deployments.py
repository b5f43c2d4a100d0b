"""Deployments: what each serves and under which traffic policy, and deploying a version (at once, or as a rollout
beside the one served)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field, model_validator

from mloop.errors import InvalidInput
from mloop.operations._core import AliasName, Context, DeploymentName, Http, Input, ModelName, Operation, Output, operation
from mloop.operations.keys import Nothing

Strategy = Literal["canary", "blue-green", "bandit", "shadow"]


class DeploymentRow(Output):
    name: str
    model: str
    alias: str
    serves: int | None = Field(description="The version the alias resolves to now (None when it resolves to nothing).")
    revision: int
    rollout: dict[str, Any] | None = Field(description="The live traffic policy: kind, revision, status, versions, weights.")
    feature_service: str | None


class DeploymentList(Output):
    deployments: list[DeploymentRow]


def _serves(ctx: Context, model: str, alias: str) -> int | None:
    from mloop.errors import NotFound

    try:
        return int(ctx.workspace.registry.resolve(model, alias).version)
    except NotFound:
        return None


def _live(policy: Any) -> dict[str, Any]:
    from mloop.rollout import build_policy, parse_policy

    document = policy.document
    return {"kind": policy.kind, "revision": policy.revision, "status": policy.status,
            "versions": {k: v for k, v in document.items() if k in ("baseline", "candidate", "arms", "versions")},
            "weights": build_policy(parse_policy(document), state=policy.state).weights()}


def _list(ctx: Context, _: Nothing) -> DeploymentList:
    store = ctx.workspace.store
    live = {p.deployment: p for p in store.rollouts.all_live()}
    return DeploymentList(deployments=[
        DeploymentRow(name=d.name, model=d.model_name, alias=d.alias, serves=_serves(ctx, d.model_name, d.alias), revision=d.revision,
                      rollout=_live(live[d.name]) if d.name in live else None, feature_service=d.serving.feature_service)
        for d in store.deployments.list()
    ])


LIST = operation(Operation(
    "deployments.list", "Deployments: the model and alias each serves, the version that is now, and any live rollout with its traffic split.",
    "viewer", Nothing, DeploymentList, _list, http=Http("GET", "/api/deployments"), tags=("deployments",),
))


class Deploy(Input):
    name: DeploymentName = Field(description="The deployment.")
    model: ModelName = Field(description="The registered model.")
    version: int = Field(ge=1, le=2**31 - 1, description="The version to serve or roll out.")
    strategy: Strategy | None = Field(default=None, description="Roll out beside what is served now; none serves the version at once.")
    steps: list[float] | None = Field(default=None, min_length=2, max_length=20, description="Canary shares in percent, ending at 100.")
    alias: AliasName = Field(default="champion", description="The alias a new deployment serves.")
    feature_service: str | None = Field(default=None, max_length=128, description="A feature service filled into requests ('' stops filling).")

    @model_validator(mode="after")
    def _combination(self) -> Deploy:
        if self.steps is not None and self.strategy != "canary":
            raise ValueError("steps: steps need strategy canary")
        if self.strategy is not None and self.feature_service is not None:
            raise ValueError("feature_service: a feature service changes what a deployment serves at once: set it without a strategy")
        return self


class Deployed(Output):
    deployment: str
    model: str
    version: int
    alias: str
    rollout: dict[str, Any] | None = Field(default=None, description="The rollout started (kind, revision), when a strategy was given.")
    feature_service: str | None = None


def _check(ctx: Context, body: Deploy) -> tuple[Any, Any, Any]:
    """Everything ``deploy`` needs to hold before it changes anything: (the current deployment or None, the serving
    config to set or None, the version loaded and verified when the deployment does not serve it yet, else None)."""
    from mloop.serving import Deployments
    from mloop.store import ServingConfig

    ws = ctx.workspace
    current = next((d for d in ws.store.deployments.list() if d.name == body.name), None)
    ws.registry.resolve(body.model, body.version)  # NotFound names the model or version
    if current is not None and current.model_name != body.model:
        raise InvalidInput(f"model: {body.name!r} serves {current.model_name!r}, not {body.model!r}; deploy {body.model!r} under another "
                           "name.", field="model")
    if body.strategy is not None:
        if current is None:
            raise InvalidInput(f"name: {body.name!r} does not exist yet: deploy a first version without a strategy.", field="name")
        from mloop.serving import Rollouts

        Rollouts(ws.registry, ws.store, ws.bus).start_document(body.name, body.version, body.strategy, steps=body.steps)
        return current, None, None
    loaded = Deployments(ws.registry, ws.store, ws.bus).check_version(body.name, body.model, body.version)  # verified, twin agrees
    serving = None
    if body.feature_service is not None:
        serving = dataclasses.replace(current.serving if current is not None else ServingConfig(), feature_service=body.feature_service or None)
        if serving.feature_service is not None:
            Deployments(ws.registry, ws.store, ws.bus).check_feature_service(serving.feature_service)
    return current, serving, loaded


def _deploy(ctx: Context, body: Deploy) -> Deployed:
    from mloop.serving import Deployments, Rollouts

    ws = ctx.workspace
    current, serving, loaded = _check(ctx, body)  # before anything changes: the alias moves only to a version that passed
    if body.strategy is not None:
        row = Rollouts(ws.registry, ws.store, ws.bus).start(body.name, body.version, body.strategy, steps=body.steps, actor=ctx.actor)
        return Deployed(deployment=body.name, model=body.model, version=body.version, alias=current.alias,
                        rollout={"kind": row.kind, "revision": row.revision})
    alias = current.alias if current is not None else body.alias
    ws.registry.set_alias(body.model, alias, body.version)
    if current is None or serving is not None:
        Deployments(ws.registry, ws.store, ws.bus).deploy(body.name, body.model, alias, serving=serving, actor=ctx.actor, checked=loaded)
    return Deployed(deployment=body.name, model=body.model, version=body.version, alias=alias,
                    feature_service=serving.feature_service if serving is not None else None)


def _plan(ctx: Context, body: Deploy) -> dict[str, Any]:
    current, serving, _ = _check(ctx, body)
    if body.strategy is not None:
        return {"start_rollout": {"deployment": body.name, "strategy": body.strategy, "version": body.version, "steps": body.steps}}
    alias = current.alias if current is not None else body.alias
    return {"serve": {"deployment": body.name, "model": body.model, "version": body.version, "alias": alias, "new": current is None,
                      "feature_service": serving.feature_service if serving is not None else None}}


DEPLOY = operation(Operation(
    "deploy", "Serve a model version at once, or roll it out beside the version served now (canary, blue-green, bandit, shadow).",
    "operator", Deploy, Deployed, _deploy, plan=_plan, http=Http("POST", "/api/deployments", status=201), refresh="routing",
    destructive=True, tags=("deployments",),
))
