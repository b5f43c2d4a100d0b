"""Deployments: a name that maps to a registered model alias, plus its rollout state."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.names import check_name
from mloop.store._engine import read_connection
from mloop.store._schema import deployments


@dataclass(frozen=True)
class ServingConfig:
    """How a deployment is served: ``max_batch_size`` rows per model call; ``max_delay_ms`` the longest a
    request waits for batch-mates (0: batch only what is already queued); ``queue_size`` requests waiting at
    most before 429; ``timeout_ms`` the default deadline; ``allow_missing`` whether ``null`` inputs are accepted;
    ``runtime_timeout_ms`` how long the fast (ONNX) runtime may take on a batch before the native model answers it;
    ``inline_below_ms``: an idle version whose calls take less than this (a moving average) scores a request on the
    event loop instead of handing it to its worker thread (0 turns that off); ``feature_service``: a feature service whose
    online values the server fills into each request from its join keys before scoring (None: requests carry every input)."""

    max_batch_size: int = 64
    max_delay_ms: float = 0.0
    queue_size: int = 256
    timeout_ms: float = 30_000.0
    allow_missing: bool = True
    runtime_timeout_ms: float = 1_000.0
    inline_below_ms: float = 1.0
    feature_service: str | None = None

    def __post_init__(self) -> None:
        checks = (
            ("max_batch_size", 1 <= self.max_batch_size <= 100_000, "[1, 100000]"),
            ("max_delay_ms", 0 <= self.max_delay_ms <= 10_000, "[0, 10000]"),
            ("queue_size", 1 <= self.queue_size <= 1_000_000, "[1, 1000000]"),
            ("timeout_ms", 0 < self.timeout_ms <= 3_600_000, "(0, 3600000]"),
            ("runtime_timeout_ms", 0 < self.runtime_timeout_ms <= 3_600_000, "(0, 3600000]"),
            ("inline_below_ms", 0 <= self.inline_below_ms <= 100, "[0, 100]"),
        )
        for name, ok, bounds in checks:
            if not ok:
                raise InvalidInput(f"{name} must be within {bounds}, got {getattr(self, name)}.", field=name)
        if self.feature_service is not None:
            check_name(self.feature_service, "feature_service")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ServingConfig:
        data = dict(data or {})
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise InvalidInput(f"Unknown serving setting {unknown[0]!r}. Valid: {', '.join(sorted(valid))}.", field=unknown[0])
        return cls(**data)


@dataclass(frozen=True)
class Deployment:
    """``name`` serves ``models:/<model_name>@<alias>``; ``rollout`` holds a traffic policy's state, if any."""

    name: str
    model_name: str
    alias: str
    rollout: dict[str, Any] | None = None
    serving: ServingConfig = field(default_factory=ServingConfig)
    revision: int = 0
    created_at: float = 0.0
    updated_at: float = field(default=0.0, compare=False)


def _to_deployment(row: Mapping[Any, Any]) -> Deployment:
    """A row of ``deployments`` (or the values just written to one) as a ``Deployment``."""
    return Deployment(
        name=row["name"],
        model_name=row["model_name"],
        alias=row["alias"],
        rollout=json.loads(row["rollout"]) if row["rollout"] else None,
        serving=ServingConfig.from_dict(json.loads(row["serving"]) if row["serving"] else None),
        revision=row["revision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class DeploymentRepository:
    """CRUD over the ``deployments`` table; each write bumps ``revision`` for optimistic concurrency."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, name: str) -> Deployment:
        with read_connection(self._engine) as conn:
            row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).first()
        if row is None:
            raise NotFound(f"Deployment {name!r} does not exist. Create it with mloop.serving.Deployments(...).deploy(...).")
        return _to_deployment(row._mapping)

    def list(self) -> list[Deployment]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(deployments).order_by(deployments.c.name)).all()
        return [_to_deployment(r._mapping) for r in rows]

    def upsert(
        self,
        conn: Connection,
        name: str,
        *,
        model_name: str,
        alias: str,
        rollout: dict[str, Any] | None = None,
        serving: ServingConfig | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Create or replace deployment ``name`` inside the caller's transaction; ``serving=None`` keeps the current settings."""
        check_name(name, "deployment name")
        check_name(model_name, "model name")
        check_name(alias, "alias")
        now = time.time()
        row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).first()
        payload = json.dumps(rollout, sort_keys=True) if rollout else None
        if serving is None and row is not None and row.serving:
            serving_json = row.serving  # a rollout step keeps the deployment's serving settings
        else:
            serving_json = json.dumps((serving or ServingConfig()).to_dict(), sort_keys=True)
        if row is None:
            if expected_revision not in (None, 0):
                raise Conflict(f"Deployment {name!r} does not exist (expected revision {expected_revision}).")
            values = dict(name=name, model_name=model_name, alias=alias, rollout=payload, serving=serving_json, revision=1, created_at=now, updated_at=now)
            conn.execute(sa.insert(deployments).values(**values))
            return _to_deployment(values)
        if expected_revision is not None and row.revision != expected_revision:
            raise Conflict(
                f"Deployment {name!r} changed meanwhile (revision {row.revision}, expected {expected_revision}); reload and retry."
            )
        values = dict(model_name=model_name, alias=alias, rollout=payload, serving=serving_json, revision=row.revision + 1, updated_at=now)
        conn.execute(sa.update(deployments).where(deployments.c.name == name).values(**values))
        return _to_deployment({**row._mapping, **values})

    def delete(self, conn: Connection, name: str) -> None:
        result = conn.execute(sa.delete(deployments).where(deployments.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"Deployment {name!r} does not exist.")
