"""Who is calling, and the server's API keys (admin): list, create (the secret shown once), revoke."""

from __future__ import annotations

from pydantic import Field

from mloop.operations._core import Context, Http, Input, KeyName, Operation, Output, operation
from mloop.roles import Role


class Nothing(Input):
    """No input."""


class WhoAmI(Output):
    subject: str
    role: Role
    via: str


def _whoami(ctx: Context, _: Nothing) -> WhoAmI:
    return WhoAmI(subject=ctx.caller.subject, role=ctx.caller.role, via=ctx.caller.via)


WHOAMI = operation(Operation(
    "whoami", "The caller's subject, role and how it authenticated.", "viewer", Nothing, WhoAmI, _whoami,
    http=Http("GET", "/api/whoami"), tags=("access",),
))


class KeyRow(Output):
    id: str
    name: str
    role: Role
    created_at: float
    revoked_at: float | None


class Keys(Output):
    keys: list[KeyRow]


def _list(ctx: Context, _: Nothing) -> Keys:
    return Keys(keys=[KeyRow(id=k.id, name=k.name, role=k.role, created_at=k.created_at, revoked_at=k.revoked_at)
                      for k in ctx.workspace.store.api_keys.list()])


LIST = operation(Operation(
    "keys.list", "API keys: id, name, role, created, revoked (never the secret).", "admin", Nothing, Keys, _list,
    http=Http("GET", "/api/keys"), tags=("access",),
))


class NewKey(Input):
    name: KeyName = Field(description="What the key is for (shown in lists and the audit log).")
    role: Role = Field(description="The role the key carries.")


class CreatedKey(Output):
    id: str
    name: str
    role: Role
    key: str = Field(description="The secret, shown only now (only its hash is stored).")


def _create(ctx: Context, body: NewKey) -> CreatedKey:
    key, row = ctx.workspace.store.api_keys.create(body.name, body.role, actor=ctx.actor)
    return CreatedKey(id=row.id, name=row.name, role=row.role, key=key)


CREATE = operation(Operation(
    "keys.create", "A new API key, shown once. Only name and role may be given.", "admin", NewKey, CreatedKey, _create,
    plan=lambda ctx, body: {"create_key": {"name": body.name, "role": body.role}},
    http=Http("POST", "/api/keys", status=201), tags=("access",),
))


class KeyId(Input):
    key_id: str = Field(min_length=1, max_length=64, description="The key's id (`keys.list`).")


class Revoked(Output):
    revoked: str


def _find_active(ctx: Context, key_id: str) -> None:
    from mloop.errors import NotFound

    if ctx.workspace.store.api_keys.find_active(key_id) is None:
        raise NotFound(f"No active API key {key_id!r}; `mloop auth list-keys` shows them.")


def _revoke(ctx: Context, body: KeyId) -> Revoked:
    ctx.workspace.store.api_keys.revoke(body.key_id, actor=ctx.actor)
    return Revoked(revoked=body.key_id)


def _plan_revoke(ctx: Context, body: KeyId) -> dict[str, object]:
    _find_active(ctx, body.key_id)
    return {"revoke_key": body.key_id}


REVOKE = operation(Operation(
    "keys.revoke", "Revoke an API key (refused by every server within 2 s).", "admin", KeyId, Revoked, _revoke, plan=_plan_revoke,
    http=Http("DELETE", "/api/keys/{key_id}"), destructive=True, refresh="keys", tags=("access",),
))
