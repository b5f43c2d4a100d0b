"""The outermost ASGI layer: look the request up in the route table once, check who is calling against the
route's least role, then answer fast routes directly and hand everything else (and the lifespan) to FastAPI.

A credential is a bearer API key or token, or the dashboard's session cookie (HttpOnly, SameSite=Strict); a change
made with the cookie must also echo the session's CSRF token in ``X-CSRF-Token``, which a page of another origin
cannot read. Only public routes (the health probes, the dashboard's sign-in page) answer without a credential. Everything else — unknown paths and
methods included — first needs a valid key or token (401), then a role at least the route's (403); only then
does an unknown path get its 404 or a wrong method its 405, so nothing is revealed to a stranger.

Without an authenticator (``--no-auth``) the server answers only requests that arrived on a loopback address:
the rule holds however the app was started, even under an ASGI server bound to every interface.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mloop.errors import Forbidden, MloopError, NotFound
from mloop.security import Authenticator, Principal, cookie_value, role_allows
from mloop.serving._replies import Reply, error_reply, failure
from mloop.serving._routes import Call, RouteTable, read_body
from mloop.store import split_key

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.5", "example.org", None)]
    [True, True, True, False, False, False, False]
    """
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _route_path(scope: Scope) -> str:
    """The path the routes see: without the ``root_path`` a proxy mounts the server under (as Starlette routes)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def _host_name(value: str) -> str:
    """The host of a ``Host`` header or an origin's authority, without its port (``[::1]:8080`` → ``::1``)."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _loopback_request(headers: list[tuple[bytes, bytes]]) -> None:
    """Without authentication, refuse a request addressed to another name (DNS rebinding: a web page whose name now
    points at 127.0.0.1) or sent by a page of another origin (a cross-site form or fetch): only loopback pages and tools."""
    host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
    origin = next((v.decode("latin-1") for k, v in headers if k == b"origin"), None)
    if not is_loopback(_host_name(host)):
        raise Forbidden(f"This server runs without authentication and answers only requests addressed to a loopback name, not {host!r}.")
    if origin is not None and (origin == "null" or not is_loopback(_host_name(origin.split("://", 1)[-1]))):
        raise Forbidden(f"This server runs without authentication and answers only pages of a loopback origin, not {origin!r}.")


class Gateway:
    """Access control and the fast path over ``app``, both driven by ``table``.

    ``authenticator`` None serves without authentication, to loopback connections only. ``fast`` False sends
    every route through the framework (same handlers; a test checks both answer alike)."""

    def __init__(self, app: Any, table: RouteTable, authenticator: Authenticator | None, *, fast: bool = True) -> None:
        self.app = app
        self.table = table
        self.authenticator = authenticator
        self.fast = fast
        self._refreshing = False

    @property
    def state(self) -> Any:
        """The wrapped app's state (hub, prediction log), as on the FastAPI app itself."""
        return self.app.state

    # -- who is calling ---------------------------------------------------------------------------

    async def _refresh(self) -> None:
        assert self.authenticator is not None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.authenticator.refresh)
        finally:
            self._refreshing = False

    async def _principal(self, headers: list[tuple[bytes, bytes]], method: str) -> Principal:
        auth = self.authenticator
        assert auth is not None
        value = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), None)
        session = cookie_value(next((v.decode("latin-1") for k, v in headers if k == b"cookie"), None)) if value is None else None
        if auth.age > auth.refresh_s and not self._refreshing:  # one refresh in flight at a time, off this request's path
            self._refreshing = True
            asyncio.ensure_future(self._refresh())
        if session is not None:  # the dashboard: a session cookie, and for a change the CSRF token it was given
            principal = auth.session(session)
            if method not in SAFE_METHODS:
                echoed = next((v.decode("latin-1") for k, v in headers if k == b"x-csrf-token"), "")
                if not hmac.compare_digest(echoed.encode("latin-1"), principal.csrf.encode()):
                    raise Forbidden("A change made with a session cookie needs the session's X-CSRF-Token header; reload the dashboard.")
            return principal
        credential = auth.bearer(value)
        parts = split_key(credential)
        if parts is not None and not auth.knows(parts[0]):  # perhaps a key created since the last refresh
            await asyncio.get_running_loop().run_in_executor(None, auth.lookup, parts[0])
        return auth.check(credential)

    # -- dispatch ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no route is a websocket: refuse before anything else sees it
            await send({"type": "websocket.close", "code": 1008})
            return
        method, path = scope["method"], _route_path(scope)
        found = self.table.match(method, path)
        route = found[0] if found is not None else None
        try:
            if route is None or route.role is not None:
                if self.authenticator is None:
                    server = scope.get("server")
                    if not is_loopback(server[0] if server else None):
                        raise Forbidden(
                            "This server runs without authentication, which is only allowed on a loopback address; "
                            "restart it with authentication on and send 'Authorization: Bearer <API key or token>'."
                        )
                    _loopback_request(scope["headers"])
                else:
                    principal = await self._principal(scope["headers"], method)
                    if route is not None and route.role is not None and not role_allows(principal.role, route.role):
                        raise Forbidden(f"Role {principal.role!r} may not {method} {path}; it needs {route.role!r} or above.")
                    scope["principal"] = principal
            if route is None:
                allowed = self.table.allowed(path)
                if not allowed:
                    raise NotFound(f"No route {path}.")
                await send_reply(send, error_reply(405, f"Method {method} is not allowed on {path}.", None, {"allow": ", ".join(allowed)}))
                return
        except MloopError as exc:
            await send_reply(send, failure(exc))
            return
        if not (self.fast and route.fast and route.handler is not None):
            await self.app(scope, receive, send)
            return
        assert found is not None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await read_body(_chunks(receive), headers.get("content-length"))
        except MloopError as exc:
            await send_reply(send, failure(exc))
            return
        reply = await route.handler(Call(found[1], headers, body, scope.get("principal")))
        await send_reply(send, reply)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
