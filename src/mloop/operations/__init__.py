"""Every operation a person or a program performs on mloop, declared once: typed input and output, the least role,
whether it changes state (with a dry run that describes the change), and where the HTTP API answers it.

The faces — the CLI, the HTTP API, the dashboard and the MCP server — call :func:`invoke` and nothing else for what
they do, so they cannot disagree. One module per concept: ``keys``, ``models``, ``runs``, ``deployments``,
``rollouts``, ``monitors``, ``loop``, ``features``.
"""

from __future__ import annotations

from mloop.operations._core import OPERATIONS, Caller, Context, Http, Input, Operation, Output, Paged, Plan, catalogue, get, invoke, operation

__all__ = ["OPERATIONS", "Caller", "Context", "Http", "Input", "Operation", "Output", "Paged", "Plan", "catalogue", "get", "invoke", "operation"]
