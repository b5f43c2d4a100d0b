"""Feature definitions as versioned rows: each entity, feature view and feature service's documents in order, who
applied each and when, and a view's schema (what a model depends on) beside its document."""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.store._engine import read_connection
from mloop.store._schema import feature_definitions

KINDS = ("entity", "view", "service")


@dataclass(frozen=True)
class DefinitionRow:
    kind: str
    name: str
    version: int
    document: dict[str, Any]
    schema: dict[str, Any] | None
    actor: str
    created_at: float


def _row(r: Any) -> DefinitionRow:
    return DefinitionRow(r.kind, r.name, r.version, json.loads(r.document), json.loads(r.schema) if r.schema else None, r.actor, r.created_at)


class FeatureRepository:
    """The definitions' versions; ``put`` appends one in the caller's transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def latest(self, kind: str, name: str) -> DefinitionRow | None:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(feature_definitions).where(feature_definitions.c.kind == kind, feature_definitions.c.name == name)
                             .order_by(feature_definitions.c.version.desc()).limit(1)).first()
        return _row(r) if r is not None else None

    def all_latest(self, kind: str) -> builtins.list[DefinitionRow]:
        """The newest version of every definition of ``kind``, by name."""
        newest = sa.select(feature_definitions.c.name, sa.func.max(feature_definitions.c.version).label("version")) \
            .where(feature_definitions.c.kind == kind).group_by(feature_definitions.c.name).subquery()
        query = sa.select(feature_definitions).join(newest, sa.and_(feature_definitions.c.name == newest.c.name,
                                                                    feature_definitions.c.version == newest.c.version)) \
            .where(feature_definitions.c.kind == kind).order_by(feature_definitions.c.name)
        with read_connection(self._engine) as conn:
            return [_row(r) for r in conn.execute(query).all()]

    def history(self, kind: str, name: str) -> builtins.list[DefinitionRow]:
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(feature_definitions).where(feature_definitions.c.kind == kind, feature_definitions.c.name == name)
                                .order_by(feature_definitions.c.version)).all()
        return [_row(r) for r in rows]

    def put(self, conn: Connection, kind: str, name: str, document: dict[str, Any], schema: dict[str, Any] | None, *, actor: str) -> int:
        """Append the next version of ``kind``/``name``; returns its number."""
        current = conn.execute(sa.select(sa.func.max(feature_definitions.c.version)).where(
            feature_definitions.c.kind == kind, feature_definitions.c.name == name)).scalar()
        version = int(current or 0) + 1
        conn.execute(feature_definitions.insert().values(kind=kind, name=name, version=version, document=json.dumps(document, sort_keys=True),
                                                         schema=json.dumps(schema, sort_keys=True) if schema is not None else None,
                                                         actor=actor, created_at=time.time()))
        return version
