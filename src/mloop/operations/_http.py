"""The HTTP face of the operations: one route per operation that declares one, derived from its declaration (path,
least role, input schema, status), so the API cannot drift from the CLI and the MCP server. ``?dry_run=true`` on a
change answers what it would do and changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from mloop.errors import InvalidInput
from mloop.operations._core import Caller, Context, Operation, catalogue, invoke
from mloop.serving._replies import Reply, json_reply
from mloop.serving._routes import Call, Mounted, Route

log = logging.getLogger("mloop.operations")
_TRUE, _FALSE = ("true",), ("false",)


def caller_of(call: Call) -> Caller:
    """Who sent ``call``: its principal, or the loopback user of a server without authentication (admin)."""
    p = call.principal
    return Caller("anonymous", "admin", "no-auth") if p is None else Caller(p.subject, p.role, p.via)  # type: ignore[arg-type]


def _body(call: Call) -> dict[str, Any]:
    if not call.body.strip():
        return {}
    if not call.headers.get("content-type", "").startswith("application/json"):  # a cross-site form cannot send one without a preflight
        raise InvalidInput("The body must be JSON, sent with content-type application/json.", field="content-type")
    try:
        data = orjson.loads(call.body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.", field="body") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be one JSON object.", field="body")
    return data


def input_of(op: Operation[Any, Any], call: Call) -> tuple[dict[str, Any], bool]:
    """The operation's input from the path, the query string and the body, and whether a dry run was asked for."""
    assert op.http is not None
    query = dict(call.query)
    flag = query.pop("dry_run", "false").lower()
    if flag not in _TRUE + _FALSE:
        raise InvalidInput(f"dry_run: true or false, got {flag!r}.", field="dry_run")
    data: dict[str, Any] = {}
    if op.http.method in ("POST", "PUT", "PATCH"):
        body = _body(call)
        if op.http.body_field is not None:
            if not body:
                raise InvalidInput(f"The body must be one JSON object: the {op.http.body_field}.", field="body")
            data[op.http.body_field] = body
        else:
            data.update(body)
    for key, value in query.items():
        if key in data:
            raise InvalidInput(f"{key}: given twice (query string and body).", field=key)
        data[key] = value
    for key, value in call.params.items():
        if key in data:
            raise InvalidInput(f"{key}: already given by the path; leave it out of the body.", field=key)
        data[key] = value
    return data, flag in _TRUE


def _handler(op: Operation[Any, Any], workspace: Any, changed: Callable[[str], None]) -> Callable[[Call], Any]:
    assert op.http is not None
    status = op.http.status

    async def handle(call: Call) -> Reply:
        data, dry_run = input_of(op, call)
        ctx = Context(workspace, caller_of(call), changed=changed)
        result = await asyncio.to_thread(invoke, op, ctx, data, dry_run=dry_run)
        return json_reply(result.model_dump(mode="json"), 200 if dry_run else status)

    return handle


def _openapi_body(op: Operation[Any, Any]) -> dict[str, Any] | None:
    assert op.http is not None
    if op.http.method not in ("POST", "PUT", "PATCH"):
        return None
    schema = op.input.model_json_schema()
    if op.http.body_field is not None:
        inner: dict[str, Any] = schema["properties"][op.http.body_field]
        return inner
    path_names = {p[1:-1] for p in op.http.path.split("/") if p.startswith("{")}
    return {**schema, "properties": {k: v for k, v in schema.get("properties", {}).items() if k not in path_names},
            "required": [r for r in schema.get("required", []) if r not in path_names]}


def _query(op: Operation[Any, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The query parameters of ``op``'s route: its input fields outside the path (GET, DELETE), and ``dry_run`` for a change."""
    assert op.http is not None
    path_names = {p[1:-1] for p in op.http.path.split("/") if p.startswith("{")}
    out: list[tuple[str, dict[str, Any]]] = []
    if op.http.method in ("GET", "DELETE"):
        schema = op.input.model_json_schema()
        out += [(name, {k: v for k, v in prop.items() if k != "title"}) for name, prop in schema.get("properties", {}).items()
                if name not in path_names]
    if op.mutates:
        out.append(("dry_run", {"type": "boolean", "description": "Check everything and answer what would change, changing nothing."}))
    return tuple(out)


_DRY_RUN = (("200", {"description": "A dry run: what the change would do (nothing was changed)."}),)


def operation_routes(workspace: Any, changed: Callable[[str], None]) -> list[Route | Mounted]:
    """A route for every operation with an HTTP address, for a server of ``workspace``; ``changed`` is called after a
    change the server must see at once (``"routing"``, ``"keys"``), and its failure is only logged (the change is
    stored and announced: the server hears it at its next look at the bus)."""

    def safe(kind: str) -> None:
        try:
            changed(kind)
        except Exception:  # noqa: BLE001
            log.exception("applying the change (%s) at once failed", kind)

    return [
        Route(op.http.method, op.http.path, op.role, _handler(op, workspace, safe), status=op.http.status, summary=op.summary,
              body=_openapi_body(op), query=_query(op), responses=_DRY_RUN if op.mutates and op.http.status != 200 else ())
        for op in catalogue() if op.http is not None
    ]
