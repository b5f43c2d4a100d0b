"""The loop's HTTP face: viewers read policies, a deployment's loop status and the attempts' history; operators
apply a policy and ask for a retrain. The same ``Loop`` use case as the CLI, its database work off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from mloop.automation._loop import Loop
from mloop.automation._loop_policy import parse_loop_policy
from mloop.errors import InvalidInput
from mloop.serving._management import json_object
from mloop.serving._replies import Reply, json_reply
from mloop.serving._routes import Call, Route
from mloop.workspace import Workspace

_SECTION = {"type": "object"}
#: The documented body of ``PUT /api/loop/policies``: one policy, the YAML entry's fields as JSON (checked when applied).
POLICY_BODY: dict[str, Any] = {
    "type": "object", "required": ["deployment"], "additionalProperties": False,
    "properties": {"deployment": {"type": "string", "minLength": 1, "maxLength": 128}, "triggers": _SECTION, "data": _SECTION,
                   "recipe": _SECTION, "gate": _SECTION, "rollout": _SECTION, "guards": _SECTION,
                   "fallback": {"type": ["object", "null"]}, "online": {"type": ["object", "null"]}},
}
RETRAIN_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {"reason": {"type": "string", "maxLength": 500}}}


class LoopRoutes:
    def __init__(self, loop: Loop) -> None:
        self.loop = loop

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/loop/policies", "viewer", self.policies, summary="Every deployment's retraining policy."),
            Route("PUT", "/api/loop/policies", "operator", self.apply, status=201, body=POLICY_BODY,
                  summary="Apply one retraining policy (a `mloop loop apply` file's entry, as JSON)."),
            Route("GET", "/api/loop/history", "viewer", self.history,
                  summary="The last 100 attempts: trigger and evidence, each step with its statistic, and the result."),
            Route("GET", "/api/deployments/{name}/loop", "viewer", self.status,
                  summary="A deployment's retraining policy, the attempt in flight and its attempts."),
            Route("POST", "/api/deployments/{name}/retrain", "operator", self.retrain, status=201, body=RETRAIN_BODY,
                  summary="Open a retraining attempt now (the controller trains, gates and rolls it out)."),
        ]

    async def policies(self, call: Call) -> Reply:
        rows = await asyncio.to_thread(self.loop.store.loop.policies)
        return json_reply({"policies": [{"deployment": r.deployment, "revision": r.revision, "actor": r.actor, "document": r.document}
                                        for r in rows]})

    async def apply(self, call: Call) -> Reply:
        policy = parse_loop_policy(json_object(call.body, "one retraining policy with at least a deployment"), where="body")
        [row] = await asyncio.to_thread(lambda: self.loop.apply([policy], actor=call.actor, reason="applied over HTTP"))
        return json_reply({"deployment": row.deployment, "revision": row.revision}, 201)

    async def history(self, call: Call) -> Reply:
        return json_reply({"attempts": await asyncio.to_thread(lambda: self.loop.history(None, last=100))})

    async def status(self, call: Call) -> Reply:
        name = call.params["name"]
        status = await asyncio.to_thread(lambda: self.loop.status(name))
        return json_reply({**status, "attempts": await asyncio.to_thread(lambda: self.loop.history(name, last=50))})

    async def retrain(self, call: Call) -> Reply:
        name = call.params["name"]
        body = json_object(call.body, "optionally a reason") if call.body.strip() else {}
        reason = body.pop("reason", "")
        if body or not isinstance(reason, str) or len(reason) > 500:
            raise InvalidInput("The body may only hold a reason: a string of at most 500 characters.", field=next(iter(body), "reason"))
        attempt = await asyncio.to_thread(lambda: self.loop.retrain(name, actor=call.actor, reason=reason))
        return json_reply({"deployment": name, "attempt": attempt}, 201)


def loop_routes(workspace: Workspace) -> list[Route]:
    """The loop's routes for a server of ``workspace``."""
    return LoopRoutes(Loop(workspace.store, workspace.bus)).routes()
