"""One exception tree for mloop: mapped to HTTP status codes at the server edge and exit code 2 at the CLI edge."""

from __future__ import annotations

import re
from typing import Any


class MloopError(Exception):
    """Base of every error mloop raises on purpose; its message tells the user what to do next."""

    status_code: int = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(MloopError):
    """The input broke a rule; the message names the field, the rule and the value received."""

    status_code = 422


class NotFound(MloopError):
    """A named thing (workspace, model, version, deployment) does not exist."""

    status_code = 404


class Conflict(MloopError):
    """The request clashes with the current state (a name taken twice, a stale revision)."""

    status_code = 409


class IntegrityError(MloopError):
    """An artifact's bytes do not match the digests recorded when it was registered."""

    status_code = 409


class PayloadTooLarge(MloopError):
    """A request body is over the size limit."""

    status_code = 413


class Unavailable(MloopError):
    """The service is not ready (starting, stopping, or a model not loaded)."""

    status_code = 503


class QueueFull(MloopError):
    """A deployment's request queue is full: retry after ``retry_after`` seconds (sent as ``Retry-After``)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(MloopError):
    """A request's deadline passed before its turn came; it was never computed."""

    status_code = 504


class NotFittedError(MloopError, ValueError):
    """An estimator was used before ``fit``."""

    status_code = 400


class Unauthorized(MloopError):
    """No valid credential: a missing, malformed, expired, revoked or wrongly signed key or token."""

    status_code = 401


class Forbidden(MloopError):
    """A valid credential whose role does not allow this action."""

    status_code = 403


def invalid_from(exc: Any, where: str = "", *, default: str | None = "body", label: str | None = None) -> InvalidInput:
    """The first problem of a pydantic ``ValidationError`` as ``InvalidInput`` naming its field under ``where``
    (``steps.2``, ``policies[0].gate.alpha``; ``default`` when nothing names one, and the message then says ``label``).
    A model-level check whose message starts with ``name: `` names a field of its own (``rollout: steps: …`` becomes
    ``rollout.steps``); pydantic's ``Value error, `` prefix is dropped."""
    first = exc.errors()[0]
    parts = [str(p) for p in first.get("loc", ()) if not str(p).startswith("function-")]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    inner = re.match(r"^([A-Za-z_][\w.]*): (.*)$", message)
    if inner:
        parts, message = [*parts, inner.group(1)], inner.group(2)
    field = ".".join([where, *parts] if where else parts) or where or default
    return InvalidInput(f"{field or label}: {message.rstrip('.')}.", field=field)
