"""The role ladder, declared once: ``viewer`` < ``predictor`` < ``operator`` < ``admin``, each including the
ones below it. Every layer reads it from here (API keys in the store, tokens, the route table, the CLI)."""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["viewer", "predictor", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)


def role_allows(role: str, required: str) -> bool:
    """Whether ``role`` may do what ``required`` may.

    >>> role_allows("operator", "predictor"), role_allows("predictor", "operator"), role_allows("root", "viewer")
    (True, False, False)
    """
    return role in ROLES and required in ROLES and ROLES.index(role) >= ROLES.index(required)  # type: ignore[arg-type]
