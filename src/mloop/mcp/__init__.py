"""The MCP face: an MCP server (the official Python SDK) whose tools are a curated dozen of mloop's operations, over
stdio (``mloop mcp``) and the streamable-HTTP transport under ``/mcp`` of ``mloop serve`` (bearer auth, the same roles).
The SDK loads only when a name that needs it is used."""

from __future__ import annotations

from mloop._lazy import lazy_names
from mloop.mcp._http import HttpEndpoint
from mloop.mcp._tools import TOOLS, Tool

__all__ = ["TOOLS", "HttpEndpoint", "Tool", "build_server", "run_stdio", "tool_list"]
__getattr__ = lazy_names(__name__, {"build_server": "_server", "run_stdio": "_server", "tool_list": "_server"}, globals())
