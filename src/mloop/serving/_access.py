"""Who may call what: every route and method of the server, with the least role that may call it, in one
table; an outermost ASGI layer enforces it before any other code sees the request.

Only the liveness and readiness probes answer without a credential. Everything else — unknown paths and
methods included — first needs a valid key or token (401), then a role at least the route's (403); a
request for a path or method the table does not list then gets the app's own 404 or 405.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from mloop.errors import Forbidden, MloopError
from mloop.security import Authenticator, Principal, role_allows
from mloop.store import split_key

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {("GET", "/health/live"), ("GET", "/v2/health/live"), ("GET", "/health/ready"), ("GET", "/v2/health/ready")}
)

#: (method, path template, least role). ``{x}`` matches one non-empty path segment.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/v2", "viewer"),
    ("GET", "/metrics", "viewer"),
    ("GET", "/openapi.json", "viewer"),
    ("GET", "/docs", "viewer"),
    ("GET", "/docs/oauth2-redirect", "viewer"),
    ("GET", "/redoc", "viewer"),
    ("GET", "/v2/models/{name}", "viewer"),
    ("GET", "/v2/models/{name}/ready", "viewer"),
    ("GET", "/v2/models/{name}/stats", "viewer"),
    ("GET", "/api/whoami", "viewer"),
    ("GET", "/api/monitors", "viewer"),
    ("POST", "/v2/models/{name}/infer", "predictor"),
    ("POST", "/invocations", "predictor"),
    ("POST", "/models/{name}/invocations", "predictor"),
    ("POST", "/v2/models/{name}/feedback", "predictor"),
    ("PUT", "/api/monitors", "operator"),
    ("GET", "/api/keys", "admin"),
    ("POST", "/api/keys", "admin"),
    ("DELETE", "/api/keys/{key_id}", "admin"),
    ("DELETE", "/api/monitors/{deployment}/{name}", "admin"),
)


def _pattern(template: str) -> re.Pattern[str]:
    segments = ["[^/]+" if part.startswith("{") else re.escape(part) for part in template.split("/")]
    return re.compile("^" + "/".join(segments) + "$")


_COMPILED = [(method, _pattern(template), role) for method, template, role in ROUTES]


def required_role(method: str, path: str) -> str | None:
    """The least role for (method, path), or None when the table does not list it."""
    for m, pattern, role in _COMPILED:
        if m == method and pattern.match(path):
            return role
    return None


async def _deny(send: Send, exc: MloopError) -> None:
    body = orjson.dumps({"error": exc.message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="mloop"'))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AccessControl:
    """The outermost ASGI layer: authenticate, authorise by the table, then hand on (with ``scope["principal"]``)."""

    def __init__(self, app: Any, authenticator: Authenticator | None) -> None:
        self.app = app
        self.authenticator = authenticator  # None: --no-auth (loopback only)
        self._refreshing = False

    @property
    def state(self) -> Any:
        return self.app.state

    async def _refresh(self) -> None:
        assert self.authenticator is not None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.authenticator.refresh)
        finally:
            self._refreshing = False

    async def _principal(self, headers: list[tuple[bytes, bytes]]) -> Principal:
        auth = self.authenticator
        assert auth is not None
        value = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), None)
        credential = auth.bearer(value)
        if auth.age > auth.refresh_s and not self._refreshing:  # one refresh in flight at a time, off this request's path
            self._refreshing = True
            asyncio.ensure_future(self._refresh())
        parts = split_key(credential)
        if parts is not None and not auth.knows(parts[0]):  # perhaps a key created since the last refresh
            await asyncio.get_running_loop().run_in_executor(None, auth.lookup, parts[0])
        return auth.check(credential)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.authenticator is None:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if (method, path) in PUBLIC:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._principal(scope["headers"])
            role = required_role(method, path)
            if role is not None and not role_allows(principal.role, role):
                raise Forbidden(f"Role {principal.role!r} may not {method} {path}; it needs {role!r} or above.")
        except MloopError as exc:
            await _deny(send, exc)
            return
        scope["principal"] = principal
        await self.app(scope, receive, send)
