"""The MCP endpoint of ``mloop serve`` (``/mcp``): the streamable-HTTP transport as an ASGI app, stateless with JSON
answers so any worker of a multi-process server can answer any request. The SDK is loaded on the first MCP request,
not at start-up (half a second of every server's and every worker's start for an endpoint many never use)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus


class HttpEndpoint:
    """``/mcp`` for a server of ``workspace``. Each run of the server (:meth:`lifespan`) holds a task group; the first
    request starts the SDK's session manager in it, and it lives until that run ends."""

    def __init__(self, workspace: Any, changed: Callable[[str], None] | None, *, loopback_only: bool) -> None:
        self.workspace, self.changed, self.loopback_only = workspace, changed, loopback_only
        self.manager: Any = None
        self._group: TaskGroup | None = None
        self._lock: anyio.Lock | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        manager = self.manager or await self._start()
        if manager is None:
            from mloop.errors import Unavailable
            from mloop.serving._gateway import send_reply
            from mloop.serving._replies import failure

            await send_reply(send, failure(Unavailable("The MCP endpoint is not running (the server is starting or stopping).")))
            return
        await manager.handle_request(scope, receive, send)

    async def _start(self) -> Any:
        """The session manager, started by the first request of this run (None outside a run)."""
        if self._group is None or self._lock is None:
            return None
        async with self._lock:
            if self.manager is None and self._group is not None:
                await anyio.to_thread.run_sync(importlib.import_module, "mloop.mcp._server")  # the SDK, off the event loop
                await self._group.start(self._run)
        return self.manager

    async def _run(self, *, task_status: TaskStatus[None]) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        from mloop.mcp._server import build_server, caller_from_request

        # Without authentication (loopback only) a web page could reach the server through DNS rebinding: check Host and Origin.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        ) if self.loopback_only else None
        server = build_server(self.workspace, caller_from_request(not self.loopback_only), self.changed)
        manager = StreamableHTTPSessionManager(app=server, json_response=True, stateless=True, security_settings=security)
        async with manager.run():
            self.manager = manager
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self.manager = None

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        self._lock = anyio.Lock()
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()
