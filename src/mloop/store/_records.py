"""Append-only records: the audit log, alerts and signed model manifests."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.errors import Conflict, NotFound
from mloop.store._engine import read_connection
from mloop.store._schema import alerts, audit_log, model_manifests


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    target: str
    details: dict[str, Any] | None
    created_at: float


class AuditLog:
    """Who did what to which thing, and when; written in the same transaction as the change."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def record(conn: Connection, action: str, target: str, details: dict[str, Any] | None = None, actor: str = "local") -> None:
        conn.execute(
            sa.insert(audit_log).values(
                actor=actor,
                action=action,
                target=target,
                details=json.dumps(details, sort_keys=True, default=str) if details else None,
                created_at=time.time(),
            )
        )

    def list(self, *, action: str | None = None, target: str | None = None, limit: int = 1000) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id).limit(limit)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if target is not None:
            query = query.where(audit_log.c.target == target)
        with read_connection(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(r.id, r.actor, r.action, r.target, json.loads(r.details) if r.details else None, r.created_at)
            for r in rows
        ]


class AlertLog:
    """Alerts raised by monitors, newest last."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def record(conn: Connection, deployment: str, kind: str, message: str, *, severity: str = "warning", details: dict[str, Any] | None = None) -> None:
        conn.execute(
            sa.insert(alerts).values(
                deployment=deployment,
                kind=kind,
                severity=severity,
                message=message,
                details=json.dumps(details, sort_keys=True, default=str) if details else None,
                created_at=time.time(),
            )
        )

    def list(self, deployment: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(alerts).order_by(alerts.c.id)
        if deployment is not None:
            query = query.where(alerts.c.deployment == deployment)
        with read_connection(self._engine) as conn:
            return [
                {**r._asdict(), "details": json.loads(r.details) if r.details else None}
                for r in conn.execute(query).all()
            ]


def manifest_digest(manifest: dict[str, str]) -> str:
    """SHA-256 over the canonical JSON of a manifest (path -> sha256)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class SignedManifest:
    model_name: str
    version: int
    manifest: dict[str, str]
    signature: str | None
    key_id: str | None


class ManifestRepository:
    """The SHA-256 of every artifact file of every registered version, kept outside the artifact store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def put(conn: Connection, model_name: str, version: int, manifest: dict[str, str], *, signature: str | None = None, key_id: str | None = None) -> str:
        existing = conn.execute(
            sa.select(model_manifests.c.manifest_sha256).where(
                (model_manifests.c.model_name == model_name) & (model_manifests.c.version == version)
            )
        ).first()
        digest = manifest_digest(manifest)
        if existing is not None:
            if existing.manifest_sha256 != digest:
                raise Conflict(f"Model {model_name!r} version {version} already has a different manifest; versions are immutable.")
            return digest
        conn.execute(
            sa.insert(model_manifests).values(
                model_name=model_name,
                version=version,
                manifest=json.dumps(manifest, sort_keys=True),
                manifest_sha256=digest,
                created_at=time.time(),
                signature=signature,
                key_id=key_id,
            )
        )
        return digest

    @staticmethod
    def sign(conn: Connection, model_name: str, version: int, signature: str, key_id: str) -> None:
        """Replace the signature of a stored manifest (key rotation, adopting an unsigned one)."""
        conn.execute(
            sa.update(model_manifests)
            .where((model_manifests.c.model_name == model_name) & (model_manifests.c.version == version))
            .values(signature=signature, key_id=key_id)
        )

    def all(self) -> list[SignedManifest]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(model_manifests).order_by(model_manifests.c.model_name, model_manifests.c.version)).all()
        return [SignedManifest(r.model_name, r.version, json.loads(r.manifest), r.signature, r.key_id) for r in rows]

    def get_signed(self, model_name: str, version: int) -> SignedManifest:
        """The manifest with its signature and key id (not yet verified: the caller holds the keys)."""
        manifest = self.get(model_name, version)
        with read_connection(self._engine) as conn:
            row = conn.execute(
                sa.select(model_manifests.c.signature, model_manifests.c.key_id).where(
                    (model_manifests.c.model_name == model_name) & (model_manifests.c.version == version)
                )
            ).first()
        assert row is not None
        return SignedManifest(model_name, version, manifest, row.signature, row.key_id)

    def get(self, model_name: str, version: int) -> dict[str, str]:
        with read_connection(self._engine) as conn:
            row = conn.execute(
                sa.select(model_manifests).where(
                    (model_manifests.c.model_name == model_name) & (model_manifests.c.version == version)
                )
            ).first()
        if row is None:
            raise NotFound(
                f"No manifest for model {model_name!r} version {version}: it was not registered through mloop, so its bytes cannot be trusted. "
                "Register it with Workspace.registry.register(...)."
            )
        manifest: dict[str, str] = json.loads(row.manifest)
        if manifest_digest(manifest) != row.manifest_sha256:
            raise Conflict(f"The stored manifest of {model_name!r} version {version} is corrupt.")
        return manifest
