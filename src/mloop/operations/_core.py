"""What an operation is, who may run it, and the one function every face calls to run it.

An :class:`Operation` is declared once with its typed input (a pydantic model that refuses unknown fields), its typed
output, the least role that may run it, whether it changes state (and then how a dry run describes the change), and
where the HTTP API answers it. :func:`invoke` checks the role, validates the input naming the field at fault, and
runs it — or, for a dry run, only describes what it would do. The CLI, the HTTP routes, the dashboard and the MCP
server all go through :func:`invoke`, so they cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mloop.errors import Forbidden, InvalidInput, NotFound, invalid_from
from mloop.names import NAME_PATTERN, check_name
from mloop.roles import Role, role_allows

I = TypeVar("I", bound=BaseModel)  # noqa: E741 - the conventional name of an input type
O = TypeVar("O", bound=BaseModel)  # noqa: E741


def _name_rule(what: str) -> AfterValidator:
    """A check that a string follows the workspace's naming rule (``mloop.names``), refused naming ``what``."""

    def check(value: str) -> str:
        try:
            return check_name(value, what)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    return AfterValidator(check)


_SCHEMA = Field(json_schema_extra={"pattern": NAME_PATTERN, "minLength": 1, "maxLength": 128})  # clients see the rule
ModelName = Annotated[str, _name_rule("model name"), _SCHEMA]
DeploymentName = Annotated[str, _name_rule("deployment name"), _SCHEMA]
MonitorName = Annotated[str, _name_rule("monitor name"), _SCHEMA]
ExperimentName = Annotated[str, _name_rule("experiment name"), _SCHEMA]
KeyName = Annotated[str, _name_rule("key name"), _SCHEMA]
AliasName = Annotated[str, _name_rule("alias"), _SCHEMA]


def version_ref(value: str) -> str | int:
    """A model version given as text: a number (1 to 2**31 - 1) or an alias, checked by the naming rule."""
    if re.fullmatch(r"[0-9]+", value):
        number = int(value) if len(value) <= 10 else 0
        if not 1 <= number < 2**31:  # well formed, and no model has such a version
            raise NotFound(f"version: no model has a version {value} (versions run from 1 to {2**31 - 1}).")
        return number
    try:
        return check_name(value, "alias")
    except InvalidInput as exc:
        raise InvalidInput(f"version: a version number or an alias; {exc.message}", field="version") from None


class Input(BaseModel):
    """Base of every operation's input: unknown fields are refused, names follow the workspace's naming rule."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re", str_strip_whitespace=True)


class Output(BaseModel):
    """Base of every operation's output (what ``--json``, the HTTP body and the MCP structured result carry)."""

    model_config = ConfigDict(extra="forbid")


class Paged(Input):
    """A page of a long listing: ``offset`` rows skipped, at most ``limit`` returned."""

    offset: int = Field(default=0, ge=0, le=10_000_000, description="Rows to skip (for the next page: offset + limit).")
    limit: int = Field(default=50, ge=1, le=500, description="At most this many rows (1-500).")


class Plan(Output):
    """What a dry run answers: the operation that would run and the change it would make; nothing was changed."""

    dry_run: bool = True
    operation: str
    would: dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """Who runs an operation: the audit log names ``actor``; ``role`` decides what is allowed."""

    subject: str
    role: Role
    via: str = "local"

    @property
    def actor(self) -> str:
        return f"{self.via}:{self.subject}"


@dataclass
class Context:
    """What an operation may use: the workspace, the caller, and ``changed`` (called with an operation's ``refresh``
    after a change the server's memory must see at once: ``"routing"`` re-reads deployments and policies, ``"keys"``
    the API keys; the CLI passes nothing, the other processes hear the change through the event bus)."""

    workspace: Any
    caller: Caller
    changed: Callable[[str], None] | None = None

    @property
    def actor(self) -> str:
        return self.caller.actor


@dataclass(frozen=True)
class Http:
    """Where the HTTP API answers an operation. Path parameters fill the input fields of the same name; the query
    string fills the others for GET and DELETE; a body fills them for POST and PUT, or — with ``body_field`` — goes
    whole into that one field (a policy document, a monitor's configuration)."""

    method: str
    path: str
    status: int = 200
    body_field: str | None = None


@dataclass(frozen=True)
class Operation(Generic[I, O]):
    """One operation of mloop. ``run`` does it; ``plan`` (required when ``mutates``) checks the same input and says
    what ``run`` would change, without changing anything. ``destructive`` marks changes that remove or replace
    something (a revoked key, a rollback); ``refresh`` names what the server re-reads after the change (see
    :class:`Context`)."""

    name: str
    summary: str
    role: Role
    input: type[I]
    output: type[O]
    run: Callable[[Context, I], O]
    plan: Callable[[Context, I], dict[str, Any]] | None = None
    http: Http | None = None
    destructive: bool = False
    refresh: str | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def mutates(self) -> bool:
        return self.plan is not None

    def parse(self, data: Mapping[str, Any] | I) -> I:
        """The input as this operation's model; the first problem becomes ``InvalidInput`` naming the field."""
        if isinstance(data, self.input):
            return data
        try:
            return self.input.model_validate(dict(data))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise invalid_from(exc, default=None, label="input") from None


OPERATIONS: dict[str, Operation[Any, Any]] = {}


def operation(op: Operation[I, O]) -> Operation[I, O]:
    """Register ``op`` under its name (declared once: a second registration is a programming error)."""
    if op.name in OPERATIONS:
        raise InvalidInput(f"Operation {op.name!r} is declared twice.", field="name")
    if op.name != op.name.lower() or " " in op.name:
        raise InvalidInput(f"Operation names are lower case without spaces, got {op.name!r}.", field="name")
    OPERATIONS[op.name] = op
    return op


def get(name: str) -> Operation[Any, Any]:
    """The operation called ``name``."""
    _load()
    try:
        return OPERATIONS[name]
    except KeyError:
        raise NotFound(f"No operation {name!r}. Known: {', '.join(sorted(OPERATIONS))}.") from None


def catalogue() -> list[Operation[Any, Any]]:
    """Every operation, by name."""
    _load()
    return [OPERATIONS[n] for n in sorted(OPERATIONS)]


def invoke(op: Operation[Any, Any] | str, ctx: Context, data: Mapping[str, Any] | BaseModel | None = None, *,
           dry_run: bool = False) -> BaseModel:
    """Run ``op`` for ``ctx.caller`` on ``data``: refused (``Forbidden``) below the operation's role, refused
    (``InvalidInput``, naming the field) on bad input; a dry run of a change answers a :class:`Plan` and changes
    nothing (a dry run of a read simply reads)."""
    operation_ = get(op) if isinstance(op, str) else op
    if not role_allows(ctx.caller.role, operation_.role):
        raise Forbidden(f"Role {ctx.caller.role!r} may not run {operation_.name}; it needs {operation_.role!r} or above.")
    parsed = operation_.parse(data if data is not None else {})
    if operation_.plan is not None and dry_run:
        return Plan(operation=operation_.name, would=operation_.plan(ctx, parsed))
    result = operation_.run(ctx, parsed)
    if operation_.refresh is not None and ctx.changed is not None:
        ctx.changed(operation_.refresh)
    return result


def _load() -> None:
    """Import the modules that declare operations (each registers its own on import)."""
    from mloop.operations import deployments, features, keys, loop, models, monitors, predictions, rollouts, runs  # noqa: F401
