"""``mloop mcp``: the MCP server over stdio, for an agent that starts it as a subprocess."""

from __future__ import annotations

from typing import Annotated

import typer

from mloop.cli._common import actor, app, open_workspace
from mloop.roles import ROLES


@app.command()
def mcp(
    role: Annotated[str, typer.Option(help=f"The role the agent acts with: {', '.join(ROLES)} (viewer only reads; operator may deploy, "
                                           "roll out, apply monitors and retrain).")] = "viewer",
) -> None:
    """Serve mloop's operations as MCP tools over stdin/stdout (the official MCP SDK). The agent acts as the local user
    with --role; `mloop serve` offers the same tools over streamable HTTP at /mcp, with the caller's API key deciding."""
    import anyio

    from mloop.mcp._server import check_role, run_stdio
    from mloop.operations import Caller

    caller = Caller(actor().removeprefix("cli:") or "cli", check_role(role), "mcp-stdio")  # type: ignore[arg-type]
    workspace = open_workspace()
    anyio.run(run_stdio, workspace, caller)
