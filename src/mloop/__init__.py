"""mloop closes the machine-learning loop: track, register, serve, monitor, retrain and roll out.

Importing ``mloop`` is cheap: the heavy parts (MLflow, scikit-learn, the server) load when used.
"""

from __future__ import annotations

from mloop.errors import (
    Conflict,
    DeadlineExceeded,
    Forbidden,
    IntegrityError,
    InvalidInput,
    MloopError,
    NotFittedError,
    NotFound,
    PayloadTooLarge,
    QueueFull,
    Unauthorized,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "DeadlineExceeded",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "MloopError",
    "NotFittedError",
    "NotFound",
    "PayloadTooLarge",
    "QueueFull",
    "Unauthorized",
    "Unavailable",
    "Workspace",
    "__version__",
]


def __getattr__(name: str) -> object:
    if name == "Workspace":
        from mloop.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'mloop' has no attribute {name!r}")
