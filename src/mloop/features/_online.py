"""The online feature store: per feature view and entity key, the best known row (its event time, its created time and
its packed feature values), a watermark per view saying up to which known time rows have been moved in, and the
in-process read that serves a model its features.

Backends are keyed by URL scheme: ``sqlite:///path`` (the embedded default, ``<ws>/features/online.db``) and
``redis://host:port/db`` (``?prefix=`` names the key prefix, default ``mloop:online:``). Values are packed as one
orjson object per row (typed as the view declares; timestamps as epoch nanoseconds, NaN as null). Writes merge: a row
replaces the stored one only if its (event, created) is at least as great, so re-applying rows changes nothing.

Atomicity. SQLite: a view's whole materialisation (every chunk, the rows and the new watermark) is one transaction;
a crash leaves the old state, readers see the old state until the commit (WAL). Redis: rows go in Lua scripts of up
to 2,000 rows, each atomic; the watermark is set by the script that writes the last rows. A crash midway leaves the
old watermark and some rows already advanced — each the best row known at some instant ≤ the new end, never older
than before — and a rerun completes it (the merge makes re-applied rows no-ops).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

import orjson

from mloop.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

    from mloop.features._definitions import FeatureRegistry

MIN_NS = -(2**63)  # the created time of a row that has none: ranks lowest
Row = tuple[str, int, int, bytes]  # encoded entity key, event ns, created ns (MIN_NS: none), packed values
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SEP = "\x1f"


@dataclass(frozen=True)
class ViewState:
    """What a view's materialisations left: rows known at or before ``watermark`` (ns) are in; ``signature`` is the
    view's schema, source and TTL when they were moved (another one forces a rebuild); ``newest`` the greatest event
    time written (ns), for freshness."""

    watermark: int
    signature: str
    newest: int | None = None


def encode_key(values: Sequence[Any]) -> str:
    """An entity key tuple as the store's key: the values' text joined by a separator (a view's key types are fixed,
    so ``1`` and ``"1"`` name the same entity, which lets a command line pass keys as text)."""
    return str(values[0]) if len(values) == 1 else _SEP.join(str(v) for v in values)


class OnlineWrite(Protocol):
    """One view's materialisation in progress: ``write`` chunks of rows, then ``commit`` the new state, or ``abort``."""

    def write(self, rows: Sequence[Row]) -> None: ...

    def commit(self, state: ViewState) -> None: ...

    def abort(self) -> None: ...


class OnlineStore(Protocol):
    """An online store backend. Contract: ``read`` returns, per key, ``(event ns, packed values)`` or None; a write
    merges by (event, created), the greater (or equal) wins; ``begin(view, reset=True)`` first drops the view's rows
    (a rebuild). Reads are safe from many threads; one materialisation writes a view at a time."""

    url: str

    def state(self, view: str) -> ViewState | None: ...

    def begin(self, view: str, *, reset: bool = False) -> OnlineWrite: ...

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]: ...

    def close(self) -> None: ...


# -- SQLite ----------------------------------------------------------------------------------------------------------

_SCHEMA = ("CREATE TABLE IF NOT EXISTS online_rows (view TEXT NOT NULL, key TEXT NOT NULL, e INTEGER NOT NULL, c INTEGER NOT NULL, "
           "value BLOB NOT NULL, PRIMARY KEY (view, key)) WITHOUT ROWID",
           "CREATE TABLE IF NOT EXISTS online_views (view TEXT PRIMARY KEY, watermark INTEGER NOT NULL, signature TEXT NOT NULL, newest INTEGER)")
_UPSERT = ("INSERT INTO online_rows (view, key, e, c, value) VALUES (?, ?, ?, ?, ?) ON CONFLICT (view, key) DO UPDATE SET "
           "e = excluded.e, c = excluded.c, value = excluded.value WHERE (excluded.e, excluded.c) >= (online_rows.e, online_rows.c)")
_READ = "SELECT e, value FROM online_rows WHERE view = ? AND key = ?"


class SqliteOnlineStore:
    """Rows in one table keyed (view, key), WAL mode, a connection per thread; a read is one primary-key lookup."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path(url.removeprefix("sqlite:///"))
        if not url.startswith("sqlite:///") or not str(self.path):
            raise InvalidInput(f"An SQLite online store URL is sqlite:///path, got {url!r}.", field="online_store")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        for statement in _SCHEMA:
            conn.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, cached_statements=64)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def state(self, view: str) -> ViewState | None:
        found = self._conn().execute("SELECT watermark, signature, newest FROM online_views WHERE view = ?", (view,)).fetchone()
        return None if found is None else ViewState(found[0], found[1], found[2])

    def begin(self, view: str, *, reset: bool = False) -> OnlineWrite:
        return _SqliteWrite(self._conn(), view, reset)

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        execute = self._conn().execute
        return [execute(_READ, (view, key)).fetchone() for key in keys]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _SqliteWrite:
    """The whole materialisation of a view in one transaction (rows and watermark): a crash leaves the old state."""

    def __init__(self, conn: sqlite3.Connection, view: str, reset: bool) -> None:
        self.conn, self.view = conn, view
        conn.execute("BEGIN IMMEDIATE")
        if reset:
            conn.execute("DELETE FROM online_rows WHERE view = ?", (view,))

    def write(self, rows: Sequence[Row]) -> None:
        view = self.view
        self.conn.executemany(_UPSERT, [(view, *row) for row in rows])

    def commit(self, state: ViewState) -> None:
        self.conn.execute("INSERT INTO online_views (view, watermark, signature, newest) VALUES (?, ?, ?, ?) ON CONFLICT (view) DO UPDATE "
                          "SET watermark = excluded.watermark, signature = excluded.signature, newest = excluded.newest",
                          (self.view, state.watermark, state.signature, state.newest))
        self.conn.execute("COMMIT")

    def abort(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


# -- Redis -----------------------------------------------------------------------------------------------------------

# KEYS: n row keys, then (optional) the view's meta hash. ARGV: n, then per row its rank (40 digits: event and created
# time + 2**63, 20 digits each, so string order is (event, created) order) and its packed values, then (optional)
# watermark, signature, newest. A row is set when no row is there or its rank is at least the stored one's.
_MERGE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local cur = redis.call('GETRANGE', KEYS[i], 0, 39)
  local rank = ARGV[2 * i]
  if cur == '' or cur <= rank then redis.call('SET', KEYS[i], rank .. ARGV[2 * i + 1]) end
end
if #KEYS > n then
  redis.call('HSET', KEYS[n + 1], 'watermark', ARGV[2 * n + 2], 'signature', ARGV[2 * n + 3], 'newest', ARGV[2 * n + 4])
end
return n
"""
_SCRIPT_ROWS = 2000
_OFFSET = 2**63


class RedisOnlineStore:
    """One string per (view, key): the 40-digit rank then the packed values; a read of one view is one MGET."""

    def __init__(self, url: str) -> None:
        import redis

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.url = url
        self.prefix = query.pop("prefix", ["mloop:online:"])[0]
        plain = urlunsplit(parts._replace(query="&".join(f"{k}={v[0]}" for k, v in query.items())))
        self.client = redis.Redis.from_url(plain, socket_timeout=30, socket_connect_timeout=5)
        self._merge = self.client.register_script(_MERGE)

    def row_key(self, view: str, key: str) -> str:
        return f"{self.prefix}row:{view}:{key}"

    def meta_key(self, view: str) -> str:
        return f"{self.prefix}meta:{view}"

    def state(self, view: str) -> ViewState | None:
        found: dict[bytes, bytes] = self.client.hgetall(self.meta_key(view))  # type: ignore[assignment]
        if not found:
            return None
        newest = found.get(b"newest", b"")
        return ViewState(int(found[b"watermark"]), found[b"signature"].decode(), int(newest) if newest else None)

    def begin(self, view: str, *, reset: bool = False) -> OnlineWrite:
        if reset:  # not atomic: the old signature stays until the commit, so a crash here makes the rerun reset again
            batch: list[bytes] = []
            for name in self.client.scan_iter(match=f"{self.prefix}row:{view}:*", count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    self.client.delete(*batch)
                    batch = []
            if batch:
                self.client.delete(*batch)
        return _RedisWrite(self, view)

    def read(self, view: str, keys: Sequence[str]) -> list[tuple[int, bytes] | None]:
        if not keys:
            return []
        found: list[bytes | None] = self.client.mget([f"{self.prefix}row:{view}:{key}" for key in keys])  # type: ignore[assignment]
        return [None if v is None else (int(v[:20]) - _OFFSET, v[40:]) for v in found]

    def close(self) -> None:
        self.client.close()


class _RedisWrite:
    """Rows in atomic scripts of up to 2,000; the last rows are held back so the watermark goes with them."""

    def __init__(self, store: RedisOnlineStore, view: str) -> None:
        self.store, self.view = store, view
        self.pending: list[Row] = []

    def _send(self, rows: Sequence[Row], meta: ViewState | None) -> None:
        keys = [self.store.row_key(self.view, r[0]) for r in rows]
        args: list[Any] = [len(rows)]
        for _, e, c, value in rows:
            args += [f"{e + _OFFSET:020d}{c + _OFFSET:020d}", value]
        if meta is not None:
            keys.append(self.store.meta_key(self.view))
            args += [meta.watermark, meta.signature, "" if meta.newest is None else meta.newest]
        self.store._merge(keys=keys, args=args)

    def write(self, rows: Sequence[Row]) -> None:
        self.pending.extend(rows)
        while len(self.pending) > _SCRIPT_ROWS:
            self._send(self.pending[:_SCRIPT_ROWS], None)
            del self.pending[:_SCRIPT_ROWS]

    def commit(self, state: ViewState) -> None:
        self._send(self.pending, state)
        self.pending = []

    def abort(self) -> None:
        self.pending = []


# -- opening by URL --------------------------------------------------------------------------------------------------

_BACKENDS: dict[str, Callable[[str], OnlineStore]] = {}


def register_online_store(scheme: str, factory: Callable[[str], OnlineStore]) -> None:
    """Make ``scheme://…`` URLs open with ``factory``; a scheme registered twice is an error."""
    if scheme in _BACKENDS:
        raise InvalidInput(f"Online store scheme {scheme!r} is already registered.", field="scheme")
    _BACKENDS[scheme] = factory


register_online_store("sqlite", SqliteOnlineStore)
register_online_store("redis", RedisOnlineStore)
register_online_store("rediss", RedisOnlineStore)


def open_online_store(url: str | None = None, *, workspace_root: str | Path | None = None) -> OnlineStore:
    """The store ``url`` names (``MLOOP_ONLINE_STORE``), or SQLite at ``<workspace>/features/online.db``."""
    if url is None:
        if workspace_root is None:
            raise InvalidInput("Name an online store URL or a workspace for the default SQLite store.", field="online_store")
        url = f"sqlite:///{Path(workspace_root).resolve() / 'features' / 'online.db'}"
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _BACKENDS:
        raise InvalidInput(f"Unknown online store {url.split('@')[-1]!r}: valid schemes are {', '.join(s + '://' for s in _BACKENDS)} "
                           "(sqlite:///path, redis://host:port/db).", field="online_store")
    return _BACKENDS[scheme](url)


# -- the in-process read ---------------------------------------------------------------------------------------------


def _timestamp(value: Any) -> Any:
    return None if value is None else _EPOCH + dt.timedelta(microseconds=value // 1000)


def _ns(at: dt.datetime | None) -> int:
    if at is None:
        return time.time_ns()
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


class OnlineReader:
    """A request's features resolved once (views, keys, TTLs), so each :meth:`get` is only the store's lookups; build
    one per model and reuse it. Safe from many threads if its store is."""

    def __init__(self, store: OnlineStore, registry: FeatureRegistry, *, features: list[str] | None = None, service: str | None = None,
                 full_names: bool = False) -> None:
        entities = registry.entities()
        self.store = store
        self.key_columns: list[str] = []
        self._plan: list[tuple[str, list[str], int | None, list[tuple[str, str, bool]]]] = []
        taken: dict[str, str] = {}
        for view, names in registry.resolve(features, service):
            keys = [k for e in view.entities for k in entities[e].join_keys]
            self.key_columns += [k for k in keys if k not in self.key_columns]
            dtypes = {f.name: f.dtype for f in view.features}
            out = []
            for name in names:
                column = f"{view.name}__{name}" if full_names else name
                if column in taken or column in keys:
                    raise InvalidInput(f"Feature {column!r} of view '{view.name}' clashes with {taken.get(column, 'a join key')}: pass "
                                       "full_names=True (columns named view__feature).", field="features")
                taken[column] = f"the feature of view '{view.name}'"
                out.append((name, column, dtypes[name] == "timestamp"))
            ttl = None if view.ttl is None else view.ttl // dt.timedelta(microseconds=1) * 1000
            self._plan.append((view.name, keys, ttl, out))
        self.columns = [*self.key_columns, *(c for *_, out in self._plan for _, c, _ in out)]

    def _rows(self, entity_keys: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        if isinstance(entity_keys, Mapping):
            lengths = {len(v) for v in entity_keys.values()}
            if len(lengths) > 1:
                raise InvalidInput(f"entity_keys: the key columns differ in length ({sorted(lengths)}).", field="entity_keys")
            names = list(entity_keys)
            return [dict(zip(names, values, strict=True)) for values in zip(*entity_keys.values(), strict=True)]
        return list(entity_keys)

    def get(self, entity_keys: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]], *, at: dt.datetime | None = None) -> dict[str, list[Any]]:
        """For each entity key (rows of ``{key: value}``, or columns ``{key: [values]}``), its key columns and each
        feature as columns; None where the entity has no row or its row is past the view's TTL at ``at`` (now)."""
        rows = self._rows(entity_keys)
        now = _ns(at)
        result: dict[str, list[Any]] = {}
        for column in self.key_columns:
            try:
                result[column] = [row[column] for row in rows]
            except KeyError:
                raise InvalidInput(f"entity_keys: a row lacks the join key {column!r} (needed: {', '.join(self.key_columns)}).",
                                   field=column) from None
        loads = orjson.loads
        for view, keys, ttl, out in self._plan:
            found = self.store.read(view, [encode_key([row[k] for k in keys]) for row in rows])
            oldest = None if ttl is None else now - ttl
            values = [None if hit is None or (oldest is not None and hit[0] <= oldest) else loads(hit[1]) for hit in found]
            for name, column, is_time in out:
                got = [None if v is None else v.get(name) for v in values]
                result[column] = [_timestamp(v) for v in got] if is_time else got
        return result


def get_online_features(store: OnlineStore, registry: FeatureRegistry, entity_keys: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
                        *, features: list[str] | None = None, service: str | None = None, at: dt.datetime | None = None,
                        full_names: bool = False, frame: bool = False) -> dict[str, list[Any]] | pd.DataFrame:
    """The asked features (``view:feature`` references or a service) of each entity key, from the online store: a
    dict of columns, or a DataFrame with ``frame`` (NaN for missing). Resolves the definitions on every call; a
    server keeps an :class:`OnlineReader` instead."""
    got = OnlineReader(store, registry, features=features, service=service, full_names=full_names).get(entity_keys, at=at)
    if not frame:
        return got
    import pandas as pd

    return pd.DataFrame(got)


def age_seconds(store: OnlineStore, view: str, *, at: dt.datetime | None = None) -> float | None:
    """Seconds from the newest event time materialised for ``view`` to ``at`` (now); None if nothing was."""
    state = store.state(view)
    if state is None:
        raise NotFound(f"Feature view {view!r} has not been materialised; run `mloop features materialize --view {view}`.")
    return None if state.newest is None else (_ns(at) - state.newest) / 1e9
