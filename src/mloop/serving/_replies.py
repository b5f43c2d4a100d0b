"""What the server answers, framework-free: a ``Reply`` (status, body, headers), and the one function that
renders every error — from a handler, the access check, the framework or a crash — as the same JSON body."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from mloop.errors import MloopError, QueueFull, Unauthorized

log = logging.getLogger("mloop.serving")

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), {"content-type": JSON, **(headers or {})})


def error_reply(status: int, message: str, field_name: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """The error body every route shares: ``{"error": message, "field": name}`` (``field`` when one is to blame)."""
    body: dict[str, Any] = {"error": message}
    if field_name is not None:
        body["field"] = field_name
    return json_reply(body, status, headers)


def failure(exc: BaseException) -> Reply:
    """The reply for any exception: an ``MloopError`` becomes its status, message, field and headers (``Retry-After``
    for a full queue, ``WWW-Authenticate`` for a missing credential); anything else is a logged 500 that names
    only the exception's type."""
    if isinstance(exc, MloopError):
        headers: dict[str, str] = {}
        if isinstance(exc, QueueFull):
            headers["retry-after"] = str(exc.retry_after)
        elif isinstance(exc, Unauthorized):
            headers["www-authenticate"] = 'Bearer realm="mloop"'
        return error_reply(exc.status_code, exc.message, exc.field, headers)
    log.error("unexpected error", exc_info=exc)
    return error_reply(500, f"Internal error ({type(exc).__name__}); see the server log.")
