"""Monitors as rows: their configuration (JSON, validated by ``mloop.monitoring``), their cursor, the
windows they evaluated, and leases that let one scheduler run among many server processes."""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from mloop.errors import NotFound
from mloop.names import check_name
from mloop.store._engine import read_connection
from mloop.store._records import AuditLog
from mloop.store._schema import leases, monitor_state, monitor_windows, monitors


@dataclass(frozen=True)
class MonitorRow:
    id: int
    deployment: str
    name: str
    config: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class WindowRow:
    id: int
    monitor_id: int
    start: float
    end: float
    rows: int
    drift: bool
    alarm: bool
    summary: dict[str, Any]
    report: str | None
    created_at: float


def _window(r: Any) -> WindowRow:
    return WindowRow(r.id, r.monitor_id, r.start, r.end, r.rows, bool(r.drift), bool(r.alarm), json.loads(r.summary), r.report, r.created_at)


class MonitorRepository:
    """CRUD for monitors; changing a monitor's configuration resets its cursor and keeps its history."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put(self, deployment: str, name: str, config: dict[str, Any], *, actor: str = "local") -> MonitorRow:
        """Create or replace the monitor ``(deployment, name)``; audited under ``actor``."""
        check_name(deployment, "deployment name")
        check_name(name, "monitor name")
        text = json.dumps(config, sort_keys=True)
        now = time.time()
        with self._engine.begin() as conn:
            found = conn.execute(sa.select(monitors.c.id, monitors.c.config).where(monitors.c.deployment == deployment, monitors.c.name == name)).first()
            if found is None:
                monitor_id = conn.execute(sa.insert(monitors).values(deployment=deployment, name=name, config=text, created_at=now)).inserted_primary_key[0]  # type: ignore[index]
                AuditLog.record(conn, "monitor.created", f"{deployment}/{name}", config, actor=actor)
            else:
                monitor_id = found.id
                if found.config != text:
                    conn.execute(sa.update(monitors).where(monitors.c.id == monitor_id).values(config=text))
                    conn.execute(sa.delete(monitor_state).where(monitor_state.c.monitor_id == monitor_id))
                    AuditLog.record(conn, "monitor.updated", f"{deployment}/{name}", config, actor=actor)
        return self.get(deployment, name)

    def get(self, deployment: str, name: str) -> MonitorRow:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(monitors).where(monitors.c.deployment == deployment, monitors.c.name == name)).first()
        if r is None:
            raise NotFound(f"No monitor {name!r} on deployment {deployment!r}; `mloop monitors list` shows them.")
        return MonitorRow(r.id, r.deployment, r.name, json.loads(r.config), r.created_at)

    def list(self, deployment: str | None = None) -> builtins.list[MonitorRow]:
        query = sa.select(monitors).order_by(monitors.c.deployment, monitors.c.name)
        if deployment is not None:
            query = query.where(monitors.c.deployment == deployment)
        with read_connection(self._engine) as conn:
            rows = conn.execute(query).all()
        return [MonitorRow(r.id, r.deployment, r.name, json.loads(r.config), r.created_at) for r in rows]

    def remove(self, deployment: str, name: str, *, actor: str = "local") -> None:
        row = self.get(deployment, name)
        with self._engine.begin() as conn:
            conn.execute(sa.delete(monitor_windows).where(monitor_windows.c.monitor_id == row.id))
            conn.execute(sa.delete(monitor_state).where(monitor_state.c.monitor_id == row.id))
            conn.execute(sa.delete(monitors).where(monitors.c.id == row.id))
            AuditLog.record(conn, "monitor.removed", f"{deployment}/{name}", actor=actor)

    # -- state and windows ---------------------------------------------------------------------

    def state(self, monitor_id: int) -> dict[str, Any]:
        with read_connection(self._engine) as conn:
            text = conn.execute(sa.select(monitor_state.c.state).where(monitor_state.c.monitor_id == monitor_id)).scalar()
        return json.loads(text) if text else {}

    def record_window(
        self, monitor_id: int, state: dict[str, Any], *, start: float, end: float, rows: int, drift: bool, alarm: bool,
        summary: dict[str, Any], report: str | None,
    ) -> int:
        """Store one evaluated window and the cursor after it, in one transaction: a crash leaves both or neither."""
        now = time.time()
        with self._engine.begin() as conn:
            window_id = conn.execute(
                sa.insert(monitor_windows).values(
                    monitor_id=monitor_id, start=start, end=end, rows=rows, drift=drift, alarm=alarm,
                    summary=json.dumps(summary, sort_keys=True, default=str), report=report, created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            self._save_state(conn, monitor_id, state, now)
        return int(window_id)

    def save_state(self, monitor_id: int, state: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            self._save_state(conn, monitor_id, state, time.time())

    @staticmethod
    def _save_state(conn: Any, monitor_id: int, state: dict[str, Any], now: float) -> None:
        text = json.dumps(state, sort_keys=True)
        updated = conn.execute(sa.update(monitor_state).where(monitor_state.c.monitor_id == monitor_id).values(state=text, updated_at=now))
        if updated.rowcount == 0:
            conn.execute(sa.insert(monitor_state).values(monitor_id=monitor_id, state=text, updated_at=now))

    def set_report(self, window_id: int, report: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.update(monitor_windows).where(monitor_windows.c.id == window_id).values(report=report))

    def count_windows(self, monitor_id: int) -> int:
        with read_connection(self._engine) as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(monitor_windows).where(monitor_windows.c.monitor_id == monitor_id)).scalar() or 0)

    def windows(self, monitor_id: int, *, last: int = 100) -> builtins.list[WindowRow]:
        """The monitor's latest ``last`` windows, oldest first."""
        query = sa.select(monitor_windows).where(monitor_windows.c.monitor_id == monitor_id).order_by(monitor_windows.c.id.desc()).limit(last)
        with read_connection(self._engine) as conn:
            rows = conn.execute(query).all()
        return [_window(r) for r in reversed(rows)]

    # -- leases --------------------------------------------------------------------------------

    def acquire(self, lease: str, holder: str, ttl: float) -> bool:
        """Take or renew ``lease`` for ``ttl`` seconds; False while another live holder has it. Works the
        same on SQLite and PostgreSQL: a conditional UPDATE, else an INSERT that the primary key guards."""
        now = time.time()
        with self._engine.begin() as conn:
            taken = conn.execute(
                sa.update(leases).where(leases.c.name == lease, sa.or_(leases.c.holder == holder, leases.c.expires_at < now))
                .values(holder=holder, expires_at=now + ttl)
            )
            if taken.rowcount == 1:
                return True
        try:
            with self._engine.begin() as conn:
                exists = conn.execute(sa.select(leases.c.name).where(leases.c.name == lease)).first()
                if exists is not None:
                    return False
                conn.execute(sa.insert(leases).values(name=lease, holder=holder, expires_at=now + ttl))
            return True
        except SqlIntegrityError:
            return False

    def release(self, lease: str, holder: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.delete(leases).where(leases.c.name == lease, leases.c.holder == holder))

    def holder(self, lease: str) -> str | None:
        with read_connection(self._engine) as conn:
            r = conn.execute(sa.select(leases).where(leases.c.name == lease)).first()
        return r.holder if r is not None and r.expires_at >= time.time() else None
