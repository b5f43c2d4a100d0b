"""The server's one route table. Each route is declared once — method, path, least role, handler, whether the
fast path answers it — and the FastAPI routes (with their OpenAPI entries), the fast path and access control
are all derived from it, so they cannot disagree.

Handlers are framework-free: a :class:`Call` in, a :class:`~mloop.serving._replies.Reply` out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from mloop.errors import InvalidInput, PayloadTooLarge
from mloop.names import NAME_PATTERN
from mloop.security import ROLES, Principal, Role
from mloop.serving._replies import Reply

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BODY_BYTES = 16 * 1024 * 1024


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None) -> bytes:
    """The request body, refused with 413 before more than ``MAX_BODY_BYTES`` are buffered."""
    if content_length is not None and content_length.isdigit() and int(content_length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Body of {content_length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes.")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Body exceeds the limit of {MAX_BODY_BYTES} bytes.")
        parts.append(chunk)
    return b"".join(parts)


@dataclass(frozen=True)
class Call:
    """What a handler sees of a request: path parameters, lower-cased headers, the body, who is calling (``None``
    when the server runs without authentication) and the query string's parameters (the last of a repeated one)."""

    params: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""
    principal: Principal | None = None
    query: Mapping[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """Who to name in the audit log."""
        return f"{self.principal.via}:{self.principal.subject}" if self.principal else "anonymous"


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    """One operation of the server.

    ``role`` is the least role that may call it (``None``: public); ``handler`` answers it (``None``: the web
    framework answers it itself, as for the OpenAPI document); ``fast`` routes are answered by the outermost
    ASGI layer without the framework's middleware and routing. ``body`` is the JSON Schema of the request body
    for the OpenAPI document, ``binary`` adds ``application/octet-stream``, ``text`` marks a plain-text answer,
    ``query`` documents the query string's parameters (name, JSON Schema), ``responses`` answers beside ``status``
    (code, OpenAPI response object).
    """

    method: str
    path: str
    role: Role | None
    handler: Handler | None = None
    fast: bool = False
    summary: str = ""
    body: dict[str, Any] | None = None
    binary: bool = False
    text: bool = False
    status: int = 200
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    responses: tuple[tuple[str, dict[str, Any]], ...] = ()
    segments: tuple[str | None, ...] = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidInput(f"Route method must be one of {', '.join(METHODS)}, got {self.method!r}.", field="method")
        if self.role is not None and self.role not in ROLES:
            raise InvalidInput(f"Route role must be one of {', '.join(ROLES)} or None, got {self.role!r}.", field="role")
        if not self.path.startswith("/"):
            raise InvalidInput(f"Route path must start with '/', got {self.path!r}.", field="path")
        parts = tuple(None if p.startswith("{") and p.endswith("}") else p for p in self.path.split("/"))
        object.__setattr__(self, "segments", parts)
        object.__setattr__(self, "names", tuple(p[1:-1] for p in self.path.split("/") if p.startswith("{") and p.endswith("}")))

    def openapi(self) -> dict[str, Any]:
        """What the OpenAPI document says about this route beyond what the framework infers."""
        extra: dict[str, Any] = {}
        if self.names:
            extra["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME_PATTERN}} for p in self.names
            ]
        if self.query:
            extra.setdefault("parameters", []).extend(
                {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in self.query
            )
        if self.responses:
            extra["responses"] = dict(self.responses)
        if self.body is not None:
            content: dict[str, Any] = {"application/json": {"schema": self.body}}
            if self.binary:
                content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
            extra["requestBody"] = {"required": True, "content": content}
        return extra


@dataclass(frozen=True)
class Mounted:
    """An ASGI app the server answers at ``path`` for ``methods`` (the MCP endpoint): access control runs first, as for
    any route of least role ``role``; ``lifespan`` (if any) runs while the server does."""

    path: str
    app: Any
    role: Role
    methods: tuple[str, ...]
    lifespan: Callable[[], AbstractAsyncContextManager[None]] | None = None
    summary: str = ""


@dataclass(frozen=True)
class Hooks:
    """What a server hands the factories of its extra routes: ``changed(kind)`` after a change it must see at once
    (``"routing"``: deployments and policies; ``"keys"``: API keys), and whether authentication is on (its
    ``authenticator``; None when off)."""

    changed: Callable[[str], None]
    auth: bool
    authenticator: Any = None


class RouteTable:
    """Routes indexed for a lookup that costs a dict access and a few string comparisons (no regular
    expressions): the access check and the fast path run it on every request.

    >>> table = RouteTable([Route("GET", "/v2/models/{name}", "viewer"), Route("POST", "/v2/models/{name}/infer", "predictor")])
    >>> route, params = table.match("POST", "/v2/models/m/infer")
    >>> route.role, dict(params)
    ('predictor', {'name': 'm'})
    >>> table.match("GET", "/v2/models/m/infer") is None, table.allowed("/v2/models/m/infer")
    (True, ['POST'])
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._index: dict[tuple[str, int], list[Route]] = {}
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            key = (route.method, route.path)
            if key in seen:
                raise InvalidInput(f"Route {route.method} {route.path} is declared twice.", field="path")
            seen.add(key)
            self._index.setdefault((route.method, len(route.segments)), []).append(route)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for (method, path) and its path parameters; ``{x}`` matches one non-empty segment."""
        parts = path.split("/")
        candidates = self._index.get((method, len(parts)))
        if not candidates:
            return None
        for route in candidates:
            values: list[str] = []
            for want, got in zip(route.segments, parts, strict=True):
                if want is None:
                    if not got:
                        break
                    values.append(got)
                elif want != got:
                    break
            else:
                return route, dict(zip(route.names, values, strict=True))
        return None

    def allowed(self, path: str) -> list[str]:
        """Every method some route answers at ``path`` (for a 405's ``Allow``)."""
        return [m for m in METHODS if self.match(m, path) is not None]
