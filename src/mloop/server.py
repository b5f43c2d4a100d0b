"""The whole server, composed at the top because it gathers every layer: serving's app (inference, explanations,
online features, health and metrics), the operations' API under ``/api``, the MCP endpoint at ``/mcp``, and the background decisions (the rollout
driver, the loop controller, the pipeline schedules). ``mloop serve`` runs :func:`create_server_app`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mloop.settings import Settings
from mloop.workspace import Workspace


def faces(workspace: Workspace, hooks: Any) -> list[Any]:
    """The routes of the faces a server carries besides inference: the operations' API under ``/api``, the dashboard
    under ``/ui``, and the MCP
    endpoint at ``/mcp`` (streamable HTTP, stateless: POST only, no server-initiated stream; viewer role and up, each tool then
    needing its operation's role)."""
    from mloop.mcp import HttpEndpoint
    from mloop.operations._http import operation_routes
    from mloop.serving._routes import Mounted
    from mloop.ui import dashboard_routes

    endpoint = HttpEndpoint(workspace, hooks.changed, loopback_only=not hooks.auth)
    mcp = Mounted("/mcp", endpoint, "viewer", ("POST",), endpoint.lifespan,
                  summary="The MCP server (streamable HTTP): mloop's operations as tools for agents.")
    return [*operation_routes(workspace, hooks.changed), mcp, *dashboard_routes(workspace, hooks)]


def create_app(workspace: Workspace, *, background: Sequence[Any] = (), **options: Any) -> Any:
    """``serving.create_app`` with the operations' API (keys, models, runs, deployments, rollouts, monitors, the loop,
    features); ``background`` adds leased work (``create_server_app`` adds the automation's)."""
    from mloop.serving import create_app as serving_app

    return serving_app(workspace, background=background, routes=(faces, *options.pop("routes", ())), **options)


def create_server_app(workspace: Workspace, **options: Any) -> Any:
    """What ``mloop serve`` runs: :func:`create_app` with the background decisions beside it (each under its lease)."""
    from mloop.automation import BACKGROUND

    return create_app(workspace, background=BACKGROUND, **options)


def app_from_env() -> Any:
    """Factory for uvicorn's worker processes: everything comes from ``Settings`` (``MLOOP_*``)."""
    return create_server_app(Workspace.open(settings=Settings()))
