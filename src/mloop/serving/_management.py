"""The management API: who am I, API keys (admin), monitors (viewer reads, operator writes, admin deletes).

Each handler runs its database work off the event loop and names the caller in the audit log."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mloop.errors import InvalidInput, invalid_from
from mloop.monitoring import register_monitor
from mloop.names import NAME_PATTERN
from mloop.security import Authenticator, Role
from mloop.serving._openapi import MONITOR_BODY
from mloop.serving._replies import Reply, json_reply
from mloop.serving._routes import Call, Route
from mloop.store import MetadataStore

M = TypeVar("M", bound=BaseModel)


class NewKey(BaseModel):
    """The body of ``POST /api/keys``: nothing else is accepted (no id, hash or timestamps by mass assignment)."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")  # the name rule has a lookahead
    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    role: Role


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """A request body that must be one JSON object (``what`` says what it should hold, for the error)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"The body must be one JSON object: {what}.", field="body")
    return data


def body_model(body: bytes, model: type[M], what: str) -> M:
    """A request body validated as ``model``; the first problem becomes ``InvalidInput`` naming the field."""
    data = json_object(body, what)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_from(exc) from None


class Management:
    """Keys and monitors of the workspace behind ``store``; a revocation refreshes ``authenticator`` at once."""

    def __init__(self, store: MetadataStore, authenticator: Authenticator | None) -> None:
        self.store = store
        self.authenticator = authenticator

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/whoami", "viewer", self.whoami, summary="The caller's subject, role and how it authenticated."),
            Route("GET", "/api/keys", "admin", self.list_keys, summary="API keys: id, name, role, created, revoked (never the secret)."),
            Route("POST", "/api/keys", "admin", self.create_key, status=201, body=NewKey.model_json_schema(),
                  summary="A new API key, shown once. Only name and role may be given."),
            Route("DELETE", "/api/keys/{key_id}", "admin", self.revoke_key, summary="Revoke an API key (refused by every server within 2 s)."),
            Route("GET", "/api/monitors", "viewer", self.list_monitors, summary="Every monitor and its configuration."),
            Route("PUT", "/api/monitors", "operator", self.put_monitor, body=MONITOR_BODY,
                  summary="Create or replace a monitor (the YAML entry's fields, as JSON)."),
            Route("DELETE", "/api/monitors/{deployment}/{name}", "admin", self.delete_monitor, summary="Delete a monitor and its windows."),
        ]

    async def whoami(self, call: Call) -> Reply:
        p = call.principal
        if p is None:
            return json_reply({"subject": "anonymous", "role": "admin", "via": "no-auth"})
        return json_reply({"subject": p.subject, "role": p.role, "via": p.via})

    async def list_keys(self, call: Call) -> Reply:
        keys = await asyncio.to_thread(self.store.api_keys.list)
        return json_reply({"keys": [{"id": k.id, "name": k.name, "role": k.role, "created_at": k.created_at, "revoked_at": k.revoked_at} for k in keys]})

    async def create_key(self, call: Call) -> Reply:
        body = body_model(call.body, NewKey, "a key's name and role")
        key, row = await asyncio.to_thread(self.store.api_keys.create, body.name, body.role, actor=call.actor)
        return json_reply({"id": row.id, "name": row.name, "role": row.role, "key": key}, 201)

    async def revoke_key(self, call: Call) -> Reply:
        key_id = call.params["key_id"]
        await asyncio.to_thread(self.store.api_keys.revoke, key_id, actor=call.actor)
        if self.authenticator is not None:
            await asyncio.to_thread(self.authenticator.refresh)
        return json_reply({"revoked": key_id})

    async def list_monitors(self, call: Call) -> Reply:
        rows = await asyncio.to_thread(self.store.monitors.list)
        return json_reply({"monitors": [{"deployment": m.deployment, "name": m.name, "config": m.config} for m in rows]})

    async def put_monitor(self, call: Call) -> Reply:
        data = json_object(call.body, "a monitor's fields")
        row = await asyncio.to_thread(lambda: register_monitor(self.store, data, actor=call.actor))
        return json_reply({"deployment": row.deployment, "name": row.name, "config": row.config})

    async def delete_monitor(self, call: Call) -> Reply:
        deployment, name = call.params["deployment"], call.params["name"]
        await asyncio.to_thread(lambda: self.store.monitors.remove(deployment, name, actor=call.actor))
        return json_reply({"removed": f"{deployment}/{name}"})
