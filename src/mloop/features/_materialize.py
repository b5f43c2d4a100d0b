"""Incremental materialisation: moving, per feature view, the best known row of each entity into the online store.

A row with event time e and created time c is known from k = max(e, c) (k = e without c); as of ``end`` the best known
row of a key is the greatest (e, c) among its rows with k ≤ end — what the point-in-time join gives at t = end. The
store holds that row as of the view's watermark w. A run reads only rows with w < k ≤ end, reduces them to the best
per key in DuckDB (a hash aggregate, spilling past its memory limit), streams the result in Arrow chunks (``to_arrow_reader``), and the
store keeps, per key, the greater of its row and the new one by (e, c): the best over k ≤ w and w < k ≤ end is the
best over k ≤ end, so a late correction of an old event wins exactly when it is the best known row. Rows already past
the TTL at ``end`` are skipped (at any later read they are expired, and so is anything they would have replaced). A
change of the view's source, keys, features or TTL rebuilds it from scratch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mloop.errors import InvalidInput
from mloop.features._definitions import FeatureRegistry
from mloop.features._historical import _P, Query, _check_columns, _kind, _literal, _ns, _q, source_field, view_relation
from mloop.features._offline import reads
from mloop.features._online import MIN_NS, OnlineStore, Row, ViewState, encode_key
from mloop.features._spec import FeatureView

CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class Materialized:
    """What one view's run moved: ``rows`` written (keys whose best row changed or arrived), in ``seconds``, up to
    ``watermark`` (ns); ``rebuilt`` when the view's definition changed and its rows were moved again from scratch."""

    view: str
    rows: int
    seconds: float
    watermark: int
    rebuilt: bool = False


def parse_time(value: str | dt.datetime | None, field: str = "end") -> int:
    """A time as epoch nanoseconds (naive means UTC); None is now. Text is ISO 8601 (``2026-01-01T12:00``, ``…Z``)."""
    if value is None:
        return time.time_ns()
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"{field}: {value!r} is not a time; write ISO 8601, e.g. 2026-01-01T12:00:00Z.", field=field) from None
    if not isinstance(value, dt.datetime):
        raise InvalidInput(f"{field}: expected a datetime, got {type(value).__name__}.", field=field)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def signature(view: FeatureView, keys: Sequence[str]) -> str:
    """What the stored rows depend on: the source, the join keys, the typed features and the TTL."""
    document = {"source": view.source.model_dump(mode="json"), "keys": list(keys), "features": [(f.name, f.dtype) for f in view.features],
                "ttl": None if view.ttl is None else view.ttl.total_seconds()}
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _after_chunk(view: str, rows: int) -> None:
    """Called after each chunk is written (a seam for tests that simulate a crash midway)."""


def _query(con: Any, view: FeatureView, keys: Sequence[str], since: int | None, end: int) -> str:
    """The best row per key among rows known in (since, end], unexpired at end: keys, e, c, then the features."""
    source, read = view.source, reads(view)
    if isinstance(read, Query) and read.folder:  # a query's relative paths: the working directory, then its folder
        con.execute(f"SET file_search_path = {_literal(read.folder)}")
    rel, types = view_relation(con, view.name, read, f"{_P}source", {f.name: f.dtype for f in view.features})
    times = [source.timestamp, *([source.created_timestamp] if source.created_timestamp else [])]
    _check_columns(types, [*keys, *times, *(f.name for f in view.features)], f"Feature view '{view.name}' ({source_field(read)})",
                   f"{view.name}.{source_field(read)}")
    for column in times:
        _kind(types[column], f"column {column!r} of view '{view.name}'", f"{view.name}.{column}")
    e = _ns(source.timestamp, types[source.timestamp])
    c = _ns(source.created_timestamp, types[source.created_timestamp]) if source.created_timestamp else None
    c_or_min = f"coalesce({c}, {MIN_NS})" if c else str(MIN_NS)
    known = f"greatest({e}, coalesce({c}, {e}))" if c else e
    where = [f"{_q(source.timestamp)} IS NOT NULL", *(f"{_q(k)} IS NOT NULL" for k in keys), f"{known} <= {end}"]
    if since is not None:
        where.append(f"{known} > {since}")
    if view.ttl is not None:
        where.append(f"{e} > {end - view.ttl // dt.timedelta(microseconds=1) * 1000}")
    values = []
    for i, feature in enumerate(view.features):
        column = _q(feature.name)
        if feature.dtype == "timestamp":
            column = _ns(feature.name, types[feature.name])
        values.append(f"'v{i}': {column}")
    rank = f"({e}::HUGEINT * {2**64} + {c_or_min}::HUGEINT + {2**63})"
    key_list = ", ".join(_q(k) for k in keys)
    best = f"arg_max({{'e': {e}, 'c': {c_or_min}, {', '.join(values)}}}, {rank})"
    return (f"SELECT {key_list}, b.e, b.c, {', '.join(f'b.v{i}' for i in range(len(view.features)))} FROM "
            f"(SELECT {key_list}, {best} AS b FROM {rel} WHERE {' AND '.join(where)} GROUP BY {key_list})")


def _unreadable(view: FeatureView, exc: BaseException) -> InvalidInput | None:
    """A value of the source that does not parse (a CSV cell, a query's cast) as InvalidInput naming the view and field;
    None for any other error."""
    import duckdb

    if not isinstance(exc, duckdb.ConversionException | duckdb.InvalidInputException | duckdb.IOException):
        return None
    field = source_field(reads(view))
    said = str(exc).split("\n\n")[0]  # DuckDB's first paragraph: what went wrong, without its general hints
    return InvalidInput(f"Cannot read feature view '{view.name}' ({field}): {said}", field=f"{view.name}.{field}")


def _materialize_view(con: Any, store: OnlineStore, view: FeatureView, keys: list[str], end: int, chunk_rows: int,
                      on_chunk: Callable[[str, int], None] | None) -> Materialized:
    started = time.perf_counter()
    sig = signature(view, keys)
    state = store.state(view.name)
    rebuild = state is not None and state.signature != sig
    since = None if state is None or rebuild else state.watermark
    if since is not None and end <= since:
        return Materialized(view.name, 0, time.perf_counter() - started, since)
    query = _query(con, view, keys, since, end)
    try:
        reader = con.sql(query).to_arrow_reader(chunk_rows)
    except Exception as exc:
        if (unreadable := _unreadable(view, exc)) is None:
            raise
        raise unreadable from None
    names = [f.name for f in view.features]
    newest = None if state is None or rebuild else state.newest
    nkeys, moved = len(keys), 0
    write = store.begin(view.name, reset=rebuild)
    try:
        for batch in reader:
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            if not batch.num_rows:
                continue
            key_values = list(zip(*columns[:nkeys], strict=True)) if nkeys > 1 else [(v,) for v in columns[0]]
            events, created = columns[nkeys], columns[nkeys + 1]
            features = columns[nkeys + 2:]
            rows: list[Row] = [(encode_key(k), ev, cr, orjson.dumps(dict(zip(names, vals, strict=True))))
                               for k, ev, cr, *vals in zip(key_values, events, created, *features, strict=True)]
            write.write(rows)
            top = max(events)
            newest = top if newest is None else max(newest, top)
            moved += len(rows)
            _after_chunk(view.name, len(rows))
            if on_chunk is not None:
                on_chunk(view.name, len(rows))
        write.commit(ViewState(end, sig, newest))
    except BaseException as exc:
        write.abort()
        if (unreadable := _unreadable(view, exc)) is None:
            raise
        raise unreadable from None
    return Materialized(view.name, moved, time.perf_counter() - started, end, rebuild)


def materialize(registry: FeatureRegistry, store: OnlineStore, *, views: Sequence[str] | None = None, end: str | dt.datetime | None = None,
                chunk_rows: int = CHUNK_ROWS, memory_limit: str = "1GB", on_chunk: Callable[[str, int], None] | None = None) -> list[Materialized]:
    """Move each view's (or the named ``views``') rows that became known after its watermark and by ``end`` (default
    now; naive means UTC) into ``store``, then set its watermark to ``end``; one result per view."""
    import duckdb

    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1, got {chunk_rows}.", field="chunk_rows")
    end_ns = parse_time(end)
    known = registry.views()
    entities = registry.entities()
    if views is None:
        chosen = sorted(known)
    else:
        chosen = list(dict.fromkeys(views))
        for name in chosen:
            if name not in known:
                raise InvalidInput(f"view: no feature view {name!r}; views: {', '.join(sorted(known)) or 'none applied yet'}.", field="view")
    results = []
    with tempfile.TemporaryDirectory(prefix="mloop-materialize-") as spill, duckdb.connect() as con:
        con.execute(f"SET memory_limit = {_literal(memory_limit)}")
        con.execute(f"SET temp_directory = {_literal(spill)}")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET TimeZone = 'UTC'")
        for name in chosen:
            view = known[name]
            keys = [k for e in view.entities for k in entities[e].join_keys]
            results.append(_materialize_view(con, store, view, keys, end_ns, chunk_rows, on_chunk))
    return results
