"""Deployments: a name that maps to a registered model alias, plus its rollout state."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.store._engine import read_connection
from mloop.errors import Conflict, NotFound
from mloop.store._schema import deployments
from mloop.names import check_name


@dataclass(frozen=True)
class Deployment:
    """``name`` serves ``models:/<model_name>@<alias>``; ``rollout`` holds a traffic policy's state, if any."""

    name: str
    model_name: str
    alias: str
    rollout: dict[str, Any] | None = None
    revision: int = 0
    created_at: float = 0.0
    updated_at: float = field(default=0.0, compare=False)


def _row_to_deployment(row: Any) -> Deployment:
    return Deployment(
        name=row.name,
        model_name=row.model_name,
        alias=row.alias,
        rollout=json.loads(row.rollout) if row.rollout else None,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class DeploymentRepository:
    """CRUD over the ``deployments`` table; each write bumps ``revision`` for optimistic concurrency."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, name: str) -> Deployment:
        with read_connection(self._engine) as conn:
            row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).first()
        if row is None:
            raise NotFound(f"Deployment {name!r} does not exist. Create it with Workspace.deploy(...).")
        return _row_to_deployment(row)

    def list(self) -> list[Deployment]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(deployments).order_by(deployments.c.name)).all()
        return [_row_to_deployment(r) for r in rows]

    def upsert(
        self,
        conn: Connection,
        name: str,
        *,
        model_name: str,
        alias: str,
        rollout: dict[str, Any] | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Create or replace deployment ``name`` inside the caller's transaction."""
        check_name(name, "deployment name")
        check_name(model_name, "model name")
        check_name(alias, "alias")
        now = time.time()
        row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).first()
        payload = json.dumps(rollout, sort_keys=True) if rollout else None
        if row is None:
            if expected_revision not in (None, 0):
                raise Conflict(f"Deployment {name!r} does not exist (expected revision {expected_revision}).")
            values = dict(name=name, model_name=model_name, alias=alias, rollout=payload, revision=1, created_at=now, updated_at=now)
            conn.execute(sa.insert(deployments).values(**values))
            return _row_to_deployment(_Obj(values))
        if expected_revision is not None and row.revision != expected_revision:
            raise Conflict(
                f"Deployment {name!r} changed meanwhile (revision {row.revision}, expected {expected_revision}); reload and retry."
            )
        values = dict(model_name=model_name, alias=alias, rollout=payload, revision=row.revision + 1, updated_at=now)
        conn.execute(sa.update(deployments).where(deployments.c.name == name).values(**values))
        return _row_to_deployment(_Obj({**row._asdict(), **values}))

    def delete(self, conn: Connection, name: str) -> None:
        result = conn.execute(sa.delete(deployments).where(deployments.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"Deployment {name!r} does not exist.")


class _Obj:
    """Attribute access over a dict, so rows and fresh values share one converter."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
