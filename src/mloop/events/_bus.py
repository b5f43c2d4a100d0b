"""The embedded event bus: an ``events`` table in mloop.db that every process of the machine polls.

Publishing is a row insert inside the writer's transaction, so an event exists exactly when the
change it announces was committed. Subscribers poll ``max(id)`` off the hot path and read what is new.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mloop.store import events_table as _events

MODEL_ALIAS_CHANGED = "model.alias_changed"
DEPLOYMENT_CHANGED = "deployment.changed"
DRIFT_DETECTED = "monitor.drift_detected"
DRIFT_RESOLVED = "monitor.drift_resolved"
ROLLOUT_DECIDED = "rollout.decided"
LOOP_FALLBACK = "loop.fallback"
FEATURES_CHANGED = "features.changed"


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: float


class EventBus(Protocol):
    """A transport for mloop events. ``publish`` is durable once the caller's transaction commits;
    ``poll(after)`` returns events with id > ``after`` in order. Safe to call from many threads."""

    def publish(self, conn: Connection, topic: str, payload: dict[str, Any]) -> None: ...

    def last_id(self) -> int: ...

    def poll(self, after: int, limit: int = 1000) -> list[Event]: ...


class SqlEventBus:
    """Events as rows of mloop's metadata database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def publish(self, conn: Connection, topic: str, payload: dict[str, Any]) -> None:
        conn.execute(
            sa.insert(_events).values(topic=topic, payload=json.dumps(payload, sort_keys=True, default=str), created_at=time.time())
        )

    def last_id(self) -> int:
        with self._engine.connect().execution_options(readonly=True) as conn:
            value = conn.execute(sa.select(sa.func.max(_events.c.id))).scalar()
        return int(value or 0)

    def poll(self, after: int, limit: int = 1000) -> list[Event]:
        query = sa.select(_events).where(_events.c.id > after).order_by(_events.c.id).limit(limit)
        with self._engine.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(query).all()
        return [Event(r.id, r.topic, json.loads(r.payload), r.created_at) for r in rows]
