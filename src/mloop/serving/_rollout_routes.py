"""The rollout API under ``/api/deployments``: viewers read a deployment's policy, history and decisions; operators
start, promote, roll back, pause and resume rollouts. Each handler runs its database work off the event loop and
names the caller in the audit log, like the CLI's commands (the same ``Rollouts`` use case)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mloop.errors import InvalidInput
from mloop.serving._management import body_model, json_object
from mloop.serving._replies import Reply, json_reply
from mloop.serving._rollouts import Rollouts
from mloop.serving._routes import Call, Route


class StartRollout(BaseModel):
    """The body of ``POST /api/deployments/{name}/rollout``."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)
    strategy: Literal["canary", "blue-green", "bandit", "shadow"]
    steps: list[float] | None = Field(default=None, min_length=2, max_length=20)
    reason: str = Field(default="", max_length=500)


T = TypeVar("T")
log = logging.getLogger("mloop.serving")

#: The documented body of ``PUT .../rollout``: one of the registered policy kinds (``mloop.rollout.POLICIES``).
POLICY_SCHEMA = {
    "type": "object", "required": ["policy"],
    "properties": {"policy": {"type": "string", "enum": ["canary", "blue-green", "bandit", "shadow"]},
                   "reason": {"type": "string", "maxLength": 500}},
    "additionalProperties": True,
    "description": "A traffic policy document: `policy` names its kind; the other fields are that kind's (checked when set).",
}


class RolloutRoutes:
    """The HTTP face of :class:`Rollouts`. ``changed`` runs (off the event loop) after every command that changed a
    policy: the server passes its hub's refresh, so the worker that took the command routes by it at once instead of
    at its next look at the bus (the other workers hear the event within their poll interval)."""

    def __init__(self, rollouts: Rollouts, changed: Callable[[], None] | None = None) -> None:
        self.rollouts = rollouts
        self.changed = changed

    async def _then_refresh(self, work: Callable[[], T]) -> T:
        result = await asyncio.to_thread(work)
        if self.changed is not None:
            try:
                await asyncio.to_thread(self.changed)
            except Exception:  # the change is stored and announced: the hub's watcher applies it at its next look
                log.exception("applying the rollout change at once failed")
        return result

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/deployments/{name}/rollout", "viewer", self.status,
                  summary="The deployment's served version, live traffic policy and weights, policy history and last decisions."),
            Route("POST", "/api/deployments/{name}/rollout", "operator", self.start, status=201, body=StartRollout.model_json_schema(),
                  summary="Roll a version out beside the one served: canary, blue-green, bandit or shadow."),
            Route("PUT", "/api/deployments/{name}/rollout", "operator", self.set, status=201, body=POLICY_SCHEMA,
                  summary="Set a whole policy document (kind, versions, steps, metrics, thresholds) as the live traffic policy."),
            *(Route("POST", f"/api/deployments/{{name}}/rollout/{action}", "operator", getattr(self, action), summary=summary)
              for action, summary in (
                  ("promote", "End the rollout: its new version becomes the deployment's."),
                  ("rollback", "Back to the version served before the last switch or promotion."),
                  ("pause", "Hold the rollout's shares; no automatic decision is taken."),
                  ("resume", "Let a paused rollout go on."),
              )),
        ]

    async def status(self, call: Call) -> Reply:
        name = call.params["name"]
        return json_reply(await asyncio.to_thread(lambda: self.rollouts.status(name, last=50)))

    async def start(self, call: Call) -> Reply:
        body, name = body_model(call.body, StartRollout, "the version, the strategy and optionally steps"), call.params["name"]
        row = await self._then_refresh(lambda: self.rollouts.start(name, body.version, body.strategy, steps=body.steps, actor=call.actor,
                                                                  reason=body.reason))
        return json_reply({"deployment": name, "kind": row.kind, "revision": row.revision, "document": row.document}, 201)

    async def set(self, call: Call) -> Reply:
        document, name = json_object(call.body, "a policy document with a 'policy' field"), call.params["name"]
        reason = document.pop("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            raise InvalidInput("reason: a string of at most 500 characters.", field="reason")
        row = await self._then_refresh(lambda: self.rollouts.set(name, document, actor=call.actor, reason=reason))
        return json_reply({"deployment": name, "kind": row.kind, "revision": row.revision, "document": row.document}, 201)

    async def promote(self, call: Call) -> Reply:
        name = call.params["name"]
        version = await self._then_refresh(lambda: self.rollouts.promote(name, actor=call.actor))
        return json_reply({"deployment": name, "serves": version})

    async def rollback(self, call: Call) -> Reply:
        name = call.params["name"]
        version = await self._then_refresh(lambda: self.rollouts.rollback(name, actor=call.actor))
        return json_reply({"deployment": name, "serves": version})

    async def pause(self, call: Call) -> Reply:
        name = call.params["name"]
        row = await self._then_refresh(lambda: self.rollouts.pause(name, actor=call.actor))
        return json_reply({"deployment": name, "status": row.status})

    async def resume(self, call: Call) -> Reply:
        name = call.params["name"]
        row = await self._then_refresh(lambda: self.rollouts.resume(name, actor=call.actor))
        return json_reply({"deployment": name, "status": row.status})
