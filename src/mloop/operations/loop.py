"""The closed loop: retraining policies, each deployment's loop status, the history of attempts (trigger and
evidence, every step with the statistic that decided it), applying a policy, and asking for a retrain."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mloop.operations._core import Context, DeploymentName, Http, Input, Operation, Output, operation
from mloop.operations.keys import Nothing
from mloop.operations.rollouts import Name


def _loop(ctx: Context) -> Any:
    from mloop.automation import Loop

    return Loop(ctx.workspace.store, ctx.workspace.bus)


class Policies(Output):
    policies: list[dict[str, Any]]


POLICIES = operation(Operation(
    "loop.policies", "Every deployment's retraining policy.", "viewer", Nothing, Policies,
    lambda ctx, _: Policies(policies=[{"deployment": r.deployment, "revision": r.revision, "actor": r.actor, "document": r.document}
                                      for r in ctx.workspace.store.loop.policies()]),
    http=Http("GET", "/api/loop/policies"), tags=("loop",),
))


class ApplyPolicy(Input):
    policy: dict[str, Any] = Field(description="One retraining policy: a `mloop loop apply` file's entry (deployment, triggers, data, "
                                               "recipe, gate, rollout, guards).")


class PolicyApplied(Output):
    deployment: str
    revision: int


def _parse(body: ApplyPolicy) -> Any:
    from mloop.automation import parse_loop_policy

    return parse_loop_policy(body.policy, where="body")


def _apply(ctx: Context, body: ApplyPolicy) -> PolicyApplied:
    [row] = _loop(ctx).apply([_parse(body)], actor=ctx.actor, reason=f"applied by {ctx.actor}", where="policy")
    return PolicyApplied(deployment=row.deployment, revision=row.revision)


def _plan_apply(ctx: Context, body: ApplyPolicy) -> dict[str, Any]:
    policy = _parse(body)
    _loop(ctx).check([policy], where="policy")
    return {"apply_policy": policy.model_dump(mode="json")}


APPLY = operation(Operation(
    "loop.apply", "Apply one retraining policy (a `mloop loop apply` file's entry, as JSON).", "operator", ApplyPolicy, PolicyApplied, _apply,
    plan=_plan_apply, http=Http("PUT", "/api/loop/policies", status=201, body_field="policy"), tags=("loop",),
))


class HistoryQuery(Input):
    deployment: DeploymentName | None = Field(default=None, description="Only this deployment's attempts.")
    last: int = Field(default=20, ge=1, le=1000, description="How many of the latest attempts.")


class History(Output):
    attempts: list[dict[str, Any]] = Field(description="Newest first: trigger and evidence, each step with its outcome and statistic, the result.")


HISTORY = operation(Operation(
    "loop.history", "The latest retraining attempts: trigger and evidence, each step with the statistic that decided it, and the result.",
    "viewer", HistoryQuery, History, lambda ctx, q: History(attempts=_loop(ctx).history(q.deployment, last=q.last)),
    http=Http("GET", "/api/loop/history"), tags=("loop",),
))


class LoopStatus(Output):
    deployment: str
    policy: dict[str, Any] | None
    in_flight: dict[str, Any] | None
    controller: Any
    recent: list[dict[str, Any]]
    attempts: list[dict[str, Any]]


def _status(ctx: Context, body: Name) -> LoopStatus:
    loop = _loop(ctx)
    return LoopStatus(**loop.status(body.name), attempts=loop.history(body.name, last=50))


STATUS = operation(Operation(
    "loop.status", "A deployment's retraining policy, the attempt in flight, the controller's last pass and its attempts.", "viewer", Name,
    LoopStatus, _status, http=Http("GET", "/api/deployments/{name}/loop"), tags=("loop",),
))


class Retrain(Name):
    reason: str = Field(default="", max_length=500, description="Why, for the history.")


class RetrainOpened(Output):
    deployment: str
    attempt: int


def _plan_retrain(ctx: Context, body: Retrain) -> dict[str, Any]:
    row = _loop(ctx).admit_manual(body.name)
    return {"open_attempt": {"deployment": body.name, "policy_revision": row.revision, "first_step": "train"}}


RETRAIN = operation(Operation(
    "loop.retrain", "Open a retraining attempt now (the controller trains, gates and rolls it out).", "operator", Retrain, RetrainOpened,
    lambda ctx, b: RetrainOpened(deployment=b.name, attempt=_loop(ctx).retrain(b.name, actor=ctx.actor, reason=b.reason)),
    plan=_plan_retrain, http=Http("POST", "/api/deployments/{name}/retrain", status=201), tags=("loop",),
))


class PolicyRemoved(Output):
    deployment: str
    removed_revision: int


def _plan_remove(ctx: Context, body: Name) -> dict[str, Any]:
    from mloop.errors import NotFound

    row = ctx.workspace.store.loop.policy(body.name)
    if row is None:
        raise NotFound(f"{body.name!r} has no retraining policy; `mloop loop status` lists them.")
    return {"remove_policy": {"deployment": body.name, "revision": row.revision}, "history_kept": True}


def _remove(ctx: Context, body: Name) -> PolicyRemoved:
    revision = _plan_remove(ctx, body)["remove_policy"]["revision"]
    _loop(ctx).remove(body.name, actor=ctx.actor)
    return PolicyRemoved(deployment=body.name, removed_revision=revision)


REMOVE = operation(Operation(
    "loop.remove", "Stop retraining a deployment automatically (its attempts' history stays).", "operator", Name, PolicyRemoved, _remove,
    plan=_plan_remove, http=Http("DELETE", "/api/deployments/{name}/loop"), destructive=True, tags=("loop",),
))
