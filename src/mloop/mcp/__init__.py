"""The MCP face: an MCP server (the official Python SDK) whose tools are a curated dozen of mloop's operations, over
stdio (``mloop mcp``) and the streamable-HTTP transport under ``/mcp`` of ``mloop serve`` (bearer auth, the same roles)."""

from __future__ import annotations

from mloop.mcp._server import HttpEndpoint, build_server, run_stdio, tool_list
from mloop.mcp._tools import TOOLS, Tool

__all__ = ["TOOLS", "HttpEndpoint", "Tool", "build_server", "run_stdio", "tool_list"]
