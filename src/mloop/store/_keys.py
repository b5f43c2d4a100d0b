"""API keys, stored hashed: the secret half is shown once at creation and only its SHA-256 is kept."""

from __future__ import annotations

import builtins
import hashlib
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mloop.errors import InvalidInput, NotFound
from mloop.names import check_name
from mloop.roles import ROLES
from mloop.store._engine import read_connection
from mloop.store._records import AuditLog
from mloop.store._schema import api_keys

PREFIX = "mlk"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    created_at: float
    revoked_at: float | None


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """``mlk_<id>_<secret>`` → (id, secret), or None when it does not have that shape."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1], parts[2]


class ApiKeyRepository:
    """Create, list and revoke keys; ``active()`` is the snapshot a server checks requests against."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, name: str, role: str, *, actor: str = "local") -> tuple[str, ApiKey]:
        """A new key: (the full key, shown once, and its record). Audited."""
        check_name(name, "key name")
        if role not in ROLES:
            raise InvalidInput(f"Unknown role {role!r}. Valid: {', '.join(ROLES)}.", field="role")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = time.time()
        with self._engine.begin() as conn:
            conn.execute(sa.insert(api_keys).values(id=key_id, name=name, role=role, secret_sha256=secret_digest(secret), created_at=now))
            AuditLog.record(conn, "key.created", key_id, {"name": name, "role": role}, actor=actor)
        return f"{PREFIX}_{key_id}_{secret}", ApiKey(key_id, name, role, now, None)

    def list(self) -> builtins.list[ApiKey]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).all()
        return [ApiKey(r.id, r.name, r.role, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, key_id: str, *, actor: str = "local") -> None:
        with self._engine.begin() as conn:
            done = conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=time.time()))
            if done.rowcount == 0:
                raise NotFound(f"No active API key {key_id!r}; `mloop auth list-keys` shows them.")
            AuditLog.record(conn, "key.revoked", key_id, actor=actor)

    def find_active(self, key_id: str) -> tuple[str, str, str] | None:
        """(secret sha256, role, name) of one key if it exists and is not revoked."""
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))).first()
        return (r.secret_sha256, r.role, r.name) if r is not None else None

    def active(self) -> dict[str, tuple[str, str, str]]:
        """``{id: (secret sha256, role, name)}`` of every key not revoked."""
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(api_keys).where(api_keys.c.revoked_at.is_(None))).all()
        return {r.id: (r.secret_sha256, r.role, r.name) for r in rows}
