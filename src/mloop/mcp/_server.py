"""The MCP server on the official SDK's low-level ``Server``: tools listed from :mod:`mloop.mcp._tools`, each call
run through :func:`mloop.operations.invoke` for the caller the transport names (stdio: the role ``mloop mcp`` was
started with; HTTP: the bearer credential the server's gateway checked), so MCP answers exactly what the CLI and the
HTTP API answer, and refuses what they refuse."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

from mloop import __version__
from mloop.errors import InvalidInput, MloopError, NotFound
from mloop.mcp._tools import BY_NAME, TOOLS
from mloop.operations import Caller, Context, invoke

log = logging.getLogger("mloop.mcp")

INSTRUCTIONS = (
    "mloop closes the machine-learning loop: registered models, deployments and their rollouts, drift monitors, and the "
    "retraining loop. Read with the list_/show_/status tools; every change (deploy, change_rollout, apply_monitor, retrain) "
    "takes dry_run=true to check and describe it first. A tool your role may not use answers an error naming the role it needs."
)


def tool_list() -> list[types.Tool]:
    """The tools as MCP describes them."""
    out = []
    for tool in TOOLS:
        op = tool.op
        annotations = types.ToolAnnotations(read_only_hint=not op.mutates, destructive_hint=op.destructive if op.mutates else None,
                                            idempotent_hint=True if not op.mutates else None, open_world_hint=False)
        output = op.output.model_json_schema() if not op.mutates else None
        if output is not None:
            output.pop("title", None)
        out.append(types.Tool(name=tool.name, description=f"{tool.description} (role: {op.role})", input_schema=tool.input_schema(),
                              output_schema=output, annotations=annotations))
    return out


def compact(value: Any) -> Any:
    """``value`` with every float to 4 significant digits: what an agent reads of a statistic, at about half the tokens
    (the CLI and the HTTP API keep full precision)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def _error(exc: BaseException) -> types.CallToolResult:
    if isinstance(exc, MloopError):
        body = {"error": exc.message, "status": exc.status_code, **({"field": exc.field} if exc.field else {})}
    else:
        log.error("tool failed", exc_info=exc)
        body = {"error": f"Internal error ({type(exc).__name__}); see the server log.", "status": 500}
    return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(body))], is_error=True)


def build_server(workspace: Any, caller_of: Callable[[Any], Caller], changed: Callable[[str], None] | None = None) -> Server[Any]:
    """An MCP server over ``workspace``; ``caller_of`` names who sent a request from its context (the transport's)."""

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tool_list())

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            tool = BY_NAME.get(params.name)
            if tool is None:
                raise NotFound(f"No tool {params.name!r}. Tools: {', '.join(BY_NAME)}.")
            data, dry_run = tool.arguments(params.arguments)
            context = Context(workspace, caller_of(ctx), changed=changed)
            result = await anyio.to_thread.run_sync(lambda: invoke(tool.op, context, data, dry_run=dry_run))
        except Exception as exc:  # noqa: BLE001 - every failure is a tool error the agent can read
            return _error(exc)
        body = compact(result.model_dump(mode="json"))
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(body, separators=(",", ":")))],
                                    structured_content=body)

    return Server("mloop", version=__version__, instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool)


def caller_from_request(auth: bool) -> Callable[[Any], Caller]:
    """The caller of an HTTP request: the principal the gateway put in its scope; without authentication (loopback
    only) the local user, as admin. With authentication on, a request without a principal is refused."""

    def caller(ctx: Any) -> Caller:
        request = getattr(ctx, "request", None)
        principal = request.scope.get("principal") if request is not None else None
        if principal is not None:
            return Caller(principal.subject, principal.role, f"mcp-{principal.via}")
        if auth:
            from mloop.errors import Unauthorized

            raise Unauthorized("Authentication required: send 'Authorization: Bearer <API key or token>'.")
        return Caller("anonymous", "admin", "no-auth")

    return caller


async def run_stdio(workspace: Any, caller: Caller) -> None:
    """Serve MCP over this process's stdin and stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    server = build_server(workspace, lambda _ctx: caller)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def check_role(role: str) -> str:
    """``--role`` of ``mloop mcp``: one of the roles."""
    from mloop.roles import ROLES

    if role not in ROLES:
        raise InvalidInput(f"--role must be one of {', '.join(ROLES)}, got {role!r}.", field="--role")
    return role
