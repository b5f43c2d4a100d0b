"""SQLAlchemy engines for mloop's metadata: SQLite tuned for many processes, PostgreSQL as it is."""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from mloop.errors import InvalidInput

_VALID_SCHEMES = ("sqlite", "postgresql")
_BUSY_TIMEOUT_MS = 30_000


def _wal(cursor: Any) -> None:
    """Switch a new database to WAL. The switch needs the database to itself and SQLite answers "locked" at once,
    without waiting, while another process holds it (several servers opening a new workspace): wait until either
    the switch succeeds or another process made it."""
    import sqlite3

    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            if _journal_mode(cursor) == "wal":  # another process switched it
                return
            time.sleep(0.05)


def _journal_mode(cursor: Any) -> str | None:
    """The database's journal mode, or None while it is locked."""
    import sqlite3

    try:
        return str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    except sqlite3.OperationalError:
        return None


def normalize_url(url: str) -> str:
    """Pick the installed driver for a bare ``postgresql://`` URL (psycopg 3)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redact_url(url: str) -> str:
    """Hide the password of a database URL so that it can be printed."""
    return re.sub(r"(://[^:/@]+):[^@]+@", r"\1:***@", url)


def read_connection(engine: Engine) -> Connection:
    """A connection for reads only: a deferred ``BEGIN`` on SQLite, so readers never take the write lock."""
    return engine.connect().execution_options(readonly=True)


def create_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for every transaction.

    ``BEGIN IMMEDIATE`` takes the write lock at the start of a transaction, so two processes
    never both read then fail to upgrade to a write (SQLite's ``database is locked`` trap).
    """
    url = normalize_url(url)
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in _VALID_SCHEMES:
        raise InvalidInput(
            f"Unsupported database URL scheme {scheme!r} in {redact_url(url)!r}. "
            f"Valid: {', '.join(_VALID_SCHEMES)}.",
            field="database_url",
        )
    if scheme == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            _wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            readonly = conn.get_execution_options().get("readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)
