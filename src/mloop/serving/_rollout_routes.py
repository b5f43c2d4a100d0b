"""The rollout API under ``/api/deployments``: viewers read a deployment's policy, history and decisions; operators
start, promote, roll back, pause and resume rollouts. Each handler runs its database work off the event loop and
names the caller in the audit log, like the CLI's commands (the same ``Rollouts`` use case)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mloop.errors import InvalidInput
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


def _start(body: bytes) -> StartRollout:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be one JSON object: the version, the strategy and optionally steps.", field="body")
    try:
        return StartRollout.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise InvalidInput(f"{where}: {first.get('msg', 'invalid')}.", field=where) from None


class RolloutRoutes:
    """The HTTP face of :class:`Rollouts`."""

    def __init__(self, rollouts: Rollouts) -> None:
        self.rollouts = rollouts

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/deployments/{name}/rollout", "viewer", self.status,
                  summary="The deployment's served version, live traffic policy and weights, policy history and last decisions."),
            Route("POST", "/api/deployments/{name}/rollout", "operator", self.start, status=201, body=StartRollout.model_json_schema(),
                  summary="Roll a version out beside the one served: canary, blue-green, bandit or shadow."),
            *(Route("POST", f"/api/deployments/{{name}}/rollout/{action}", "operator", getattr(self, action), summary=summary)
              for action, summary in (
                  ("promote", "End the rollout: its new version becomes the deployment's."),
                  ("rollback", "Back to the version served before the last switch or promotion."),
                  ("pause", "Hold the rollout's shares; no automatic decision is taken."),
                  ("resume", "Let a paused rollout go on."),
              )),
        ]

    def _status(self, name: str) -> dict[str, Any]:
        from mloop.rollout import build_policy, parse_policy

        store = self.rollouts.store.rollouts
        live = store.live(name)
        return {
            "deployment": name,
            "serves": self.rollouts.served_version(name),
            "live": None if live is None else {
                "kind": live.kind, "revision": live.revision, "status": live.status, "document": live.document,
                "weights": build_policy(parse_policy(live.document), state=live.state).weights(),
            },
            "history": [{"revision": p.revision, "kind": p.kind, "status": p.status, "actor": p.actor, "reason": p.reason,
                         "created_at": p.created_at} for p in store.history(name)],
            "decisions": [{"action": d.action, "actor": d.actor, "created_at": d.created_at, "decision": d.decision}
                          for d in store.decisions(name, last=50)],
        }

    async def status(self, call: Call) -> Reply:
        return json_reply(await asyncio.to_thread(self._status, call.params["name"]))

    async def start(self, call: Call) -> Reply:
        body, name = _start(call.body), call.params["name"]
        row = await asyncio.to_thread(lambda: self.rollouts.start(name, body.version, body.strategy, steps=body.steps, actor=call.actor,
                                                                  reason=body.reason))
        return json_reply({"deployment": name, "kind": row.kind, "revision": row.revision, "document": row.document}, 201)

    async def promote(self, call: Call) -> Reply:
        name = call.params["name"]
        version = await asyncio.to_thread(lambda: self.rollouts.promote(name, actor=call.actor))
        return json_reply({"deployment": name, "serves": version})

    async def rollback(self, call: Call) -> Reply:
        name = call.params["name"]
        version = await asyncio.to_thread(lambda: self.rollouts.rollback(name, actor=call.actor))
        return json_reply({"deployment": name, "serves": version})

    async def pause(self, call: Call) -> Reply:
        name = call.params["name"]
        row = await asyncio.to_thread(lambda: self.rollouts.pause(name, actor=call.actor))
        return json_reply({"deployment": name, "status": row.status})

    async def resume(self, call: Call) -> Reply:
        name = call.params["name"]
        row = await asyncio.to_thread(lambda: self.rollouts.resume(name, actor=call.actor))
        return json_reply({"deployment": name, "status": row.status})
