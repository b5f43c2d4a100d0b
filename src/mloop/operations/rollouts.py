"""Rollouts of a deployment: its status (policy, weights, history, each decision with the statistic that took it),
starting one, setting a whole policy document, and the operator's commands (promote, roll back, pause, resume)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mloop.operations._core import Context, DeploymentName, Http, Input, Operation, Output, operation
from mloop.operations.deployments import Strategy


def _rollouts(ctx: Context) -> Any:
    from mloop.serving import Rollouts

    ws = ctx.workspace
    return Rollouts(ws.registry, ws.store, ws.bus)


class Name(Input):
    name: DeploymentName = Field(description="The deployment.")


class StatusQuery(Name):
    last: int = Field(default=50, ge=1, le=1000, description="How many of the latest decisions, and of the latest policy revisions.")


class RolloutStatus(Output):
    deployment: str
    serves: int
    live: dict[str, Any] | None = Field(description="The live policy: kind, revision, status, document, weights in force.")
    history: list[dict[str, Any]] = Field(description="The latest policy revisions, oldest first (at most `last`).")
    revisions: int = Field(default=0, description="How many policy revisions the deployment has had.")
    decisions: list[dict[str, Any]] = Field(description="The latest decisions, newest last, each with the statistic that took it.")


STATUS = operation(Operation(
    "rollouts.status", "A deployment's served version, live traffic policy and weights, policy history and last decisions with their statistics.",
    "viewer", StatusQuery, RolloutStatus, lambda ctx, q: RolloutStatus(**_rollouts(ctx).status(q.name, last=q.last)),
    http=Http("GET", "/api/deployments/{name}/rollout"), tags=("rollouts",),
))


class Start(Name):
    version: int = Field(ge=1, le=2**31 - 1, description="The version to roll out beside the one served.")
    strategy: Strategy
    steps: list[float] | None = Field(default=None, min_length=2, max_length=20, description="Canary shares in percent, ending at 100.")
    reason: str = Field(default="", max_length=500, description="Why, for the history.")


class PolicySet(Output):
    deployment: str
    kind: str
    revision: int
    document: dict[str, Any]


def _start(ctx: Context, body: Start) -> PolicySet:
    row = _rollouts(ctx).start(body.name, body.version, body.strategy, steps=body.steps, actor=ctx.actor, reason=body.reason)
    return PolicySet(deployment=body.name, kind=row.kind, revision=row.revision, document=row.document)


START = operation(Operation(
    "rollouts.start", "Roll a version out beside the one served: canary, blue-green, bandit or shadow.", "operator", Start, PolicySet, _start,
    plan=lambda ctx, b: {"set_policy": _rollouts(ctx).start_document(b.name, b.version, b.strategy, steps=b.steps)},
    http=Http("POST", "/api/deployments/{name}/rollout", status=201), refresh="routing", tags=("rollouts",),
))


class SetPolicy(Name):
    document: dict[str, Any] = Field(description="A policy document: `policy` names its kind; the other fields are that kind's.")
    reason: str = Field(default="", max_length=500, description="Why, for the history.")


def _document(body: SetPolicy) -> tuple[dict[str, Any], str]:
    """The policy document without its ``reason``, and the reason (the document's, else the input's)."""
    document = dict(body.document)
    reason = document.pop("reason", body.reason)
    if not isinstance(reason, str) or len(reason) > 500:
        from mloop.errors import InvalidInput

        raise InvalidInput("reason: a string of at most 500 characters.", field="reason")
    return document, reason


def _set(ctx: Context, body: SetPolicy) -> PolicySet:
    document, reason = _document(body)
    row = _rollouts(ctx).set(body.name, document, actor=ctx.actor, reason=reason)
    return PolicySet(deployment=body.name, kind=row.kind, revision=row.revision, document=row.document)


def _plan_set(ctx: Context, body: SetPolicy) -> dict[str, Any]:
    document, _ = _document(body)
    spec = _rollouts(ctx).check(body.name, document)
    return {"set_policy": {"policy": document["policy"], **spec.model_dump()}}


SET = operation(Operation(
    "rollouts.set", "Set a whole policy document (kind, versions, steps, metrics, thresholds) as the live traffic policy.", "operator",
    SetPolicy, PolicySet, _set, plan=_plan_set, http=Http("PUT", "/api/deployments/{name}/rollout", status=201, body_field="document"),
    refresh="routing", destructive=True, tags=("rollouts",),
))

Action = Literal["promote", "rollback", "pause", "resume"]


class Change(Name):
    action: Action = Field(description="promote: its new version becomes the deployment's; rollback: back to the version served before "
                                       "the last switch or promotion; pause: hold the shares; resume: go on.")


class Changed(Output):
    deployment: str
    action: Action
    serves: int | None = Field(default=None, description="The version served after a promotion or rollback.")
    status: str | None = Field(default=None, description="The rollout's status after a pause or resume.")


def _change(ctx: Context, body: Change) -> Changed:
    rollouts, name = _rollouts(ctx), body.name
    if body.action in ("promote", "rollback"):
        version = rollouts.promote(name, actor=ctx.actor) if body.action == "promote" else rollouts.rollback(name, actor=ctx.actor)
        return Changed(deployment=name, action=body.action, serves=version)
    row = rollouts.pause(name, actor=ctx.actor) if body.action == "pause" else rollouts.resume(name, actor=ctx.actor)
    return Changed(deployment=name, action=body.action, status=row.status)


def _plan_change(ctx: Context, body: Change) -> dict[str, Any]:
    rollouts, name = _rollouts(ctx), body.name
    if body.action == "promote":
        row, winner = rollouts.promotion(name)
        return {"promote": {"rollout": row.revision, "kind": row.kind, "serve": winner, "instead_of": rollouts.served_version(name)}}
    if body.action == "rollback":
        live, undone, version = rollouts.rollback_target(name)
        return {"rollback": {"ends_rollout": live.revision if live else None, "undoes_promotion": undone.revision if undone else None,
                             "serve": version}}
    row = rollouts.pausable(name, pause=body.action == "pause")
    return {body.action: {"rollout": row.revision, "kind": row.kind}}


CHANGE = operation(Operation(
    "rollouts.change", "Promote, roll back, pause or resume a deployment's rollout.", "operator", Change, Changed, _change, plan=_plan_change,
    http=Http("POST", "/api/deployments/{name}/rollout/{action}"), refresh="routing", destructive=True, tags=("rollouts",),
))
