"""The point-in-time ("as of") training join: for each entity row (join keys, time t) and each feature view, the
values of the view's row that a model could have seen at t — exact by construction, computed in DuckDB and NumPy so
that a million entity rows against a 17 M-row view take seconds within a bounded amount of memory.

Per key, a view row with event time e and created time c is *known* from k = max(e, c) (k = e when c is missing).
As of known time (the default) a row is usable at t when k ≤ t and e > t − TTL; as of event (Feast's rule) when
e ≤ t and e > t − TTL. Among usable rows the greatest (e, c) wins (a missing c ranks lowest; rows equal in key, e and c
are interchangeable and either may be taken). Each view is split in two: the match of t among the *plain* rows (c = e,
or no created column: known from e, and (e, c) orders as e does) is its key's row with the greatest e ≤ t; among the
*other* rows (c ≠ e or missing; typically a few per cent; known from k, as of event from e), it is the last row at or
before t of their timeline — ordered by (k, e, c), kept where (e, c) is the running maximum and last at its instant.

Both are one binary search per entity row: entity keys are numbered and (key number, time) packed into one int64 (the
time in the sources' unit, from the earliest event that could matter); the rows' packed values, sorted once, answer
"the last row of this key at or before t", and only the matched rows' values are read back (plain rows by an equality
join on (key, e)). When keys and times do not fit in 63 bits, DuckDB ASOF joins do the same.

The best row known at t is the greater of the two matches by (e, c) (never equal: c = e against c ≠ e), i.e. the
greatest (e, c) over all rows usable at t but for the TTL. The TTL then applies to its e: if even the best known row
is past the TTL every known row is, so null is the exact answer; otherwise it is usable and no usable row beats it.
Rows past the TTL for the earliest entity time, later than the latest, or of keys no entity row has are not read.
"""
from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from mloop.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    Source: TypeAlias = str | Path | pd.DataFrame | pa.Table
    Match: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pa.Table]  # per entity row: e, c, found, row; the rows

AS_OF = ("known", "event")
_P = "__mloop_"  # prefix of the join's own columns
_ROW, _T, _E, _C, _K, _PK, _KID, _IDX = (f"{_P}{n}" for n in ("row", "t", "e", "c", "k", "p", "kid", "idx"))
_NAIVE = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE")
_AWARE = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE")
_MIN_NS = -(2**63)
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
_UNIT_NS = {"TIMESTAMP_S": 10**9, "TIMESTAMP_MS": 10**6, "TIMESTAMP": 1000, "TIMESTAMP WITH TIME ZONE": 1000, "TIMESTAMPTZ": 1000,
            "DATE": 86_400 * 10**9}  # the finest step a column's type can hold; nanoseconds otherwise
CSV = re.compile(r"\.[ct]sv(\.gz|\.zst)?$", re.IGNORECASE)
_DUCK_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "int32": "INTEGER", "int64": "BIGINT", "bool": "BOOLEAN", "string": "VARCHAR"}


@dataclass(frozen=True)
class Query:
    """A DuckDB query whose result is a feature view's rows (``SELECT … FROM read_parquet('stats/*.parquet') WHERE …``).
    A relative file path in it is read from the working directory if it exists there, else from ``folder`` (DuckDB's
    ``file_search_path``). A join runs it once."""

    sql: str
    folder: str | None = None


@dataclass(frozen=True)
class ViewSource:
    """A feature view's rows for a training join: ``source`` is a Parquet or CSV path or glob (CSV: a name ending
    ``.csv``/``.tsv``, optionally ``.gz``/``.zst``), a :class:`Query`, a DataFrame or an Arrow table holding ``join_keys``,
    the event ``timestamp``, the optional ``created_timestamp`` and the ``features``; ``ttl`` (None: forever) is how
    long a row stays valid after its event time; ``dtypes`` (feature → float32, int64, …) are the types a CSV is read with."""

    name: str
    source: Source | Query
    join_keys: Sequence[str]
    timestamp: str
    features: Sequence[str]
    created_timestamp: str | None = None
    ttl: timedelta | None = None
    dtypes: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "join_keys", tuple([self.join_keys] if isinstance(self.join_keys, str) else self.join_keys))
        object.__setattr__(self, "features", tuple([self.features] if isinstance(self.features, str) else self.features))
        if not self.name or "__" in self.name:
            raise InvalidInput(f"A feature view needs a name without '__' (it separates view and feature), got {self.name!r}.", field="name")
        if not self.join_keys:
            raise InvalidInput(f"Feature view '{self.name}' needs at least one join key column.", field="join_keys")
        if not self.features:
            raise InvalidInput(f"Feature view '{self.name}' lists no features: name the columns to join.", field="features")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise InvalidInput(f"Feature view '{self.name}' TTL must be positive or None (no expiry), got {self.ttl}.", field="ttl")
        special = {*self.join_keys, self.timestamp, *([self.created_timestamp] if self.created_timestamp else [])}
        for column in (*self.join_keys, self.timestamp, *self.features, self.created_timestamp or ""):
            if column.startswith(_P):
                raise InvalidInput(f"Column names starting with '{_P}' are reserved, got {column!r} in view '{self.name}'.", field="features")
        clash = sorted(special.intersection(self.features))
        if clash:
            raise InvalidInput(f"Feature view '{self.name}' lists {clash[0]!r} both as a feature and as a key or timestamp.", field="features")
        if len(set(self.features)) != len(self.features):
            raise InvalidInput(f"Feature view '{self.name}' lists a feature twice: {list(self.features)}.", field="features")
        if bad := {f: d for f, d in (self.dtypes or {}).items() if d not in (*_DUCK_TYPES, "timestamp")}:
            raise InvalidInput(f"Feature view '{self.name}' dtypes {bad}: valid are {', '.join(_DUCK_TYPES)}, timestamp.", field="dtypes")


def _q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_frame(value: object) -> bool:
    """Whether ``value`` is a pandas DataFrame (one cannot be unless pandas is imported: no need to import it here)."""
    return (pd := sys.modules.get("pandas")) is not None and isinstance(value, pd.DataFrame)


def source_field(source: object) -> str:
    """The definitions field a source comes from: ``source.query``, ``source.path`` or (in-memory) ``source``."""
    return "source.query" if isinstance(source, Query) else "source.path" if isinstance(source, str | Path) else "source"


def view_relation(con: duckdb.DuckDBPyConnection, name: str, source: object, alias: str,
                  dtypes: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """SQL for a view's rows and their DuckDB types: Parquet or CSV files (CSV read with the declared ``dtypes``; keys
    and timestamps as DuckDB's sniffer reads them), a :class:`Query`, a DataFrame or an Arrow table (registered as
    ``alias``). A source that cannot be read is refused naming the view and its field, not with DuckDB's traceback."""
    import pyarrow as pa

    folder = f"; its relative paths are read from the working directory, then {source.folder}" if isinstance(source, Query) and source.folder else ""
    what, field = f"feature view '{name}' ({source_field(source)}{folder})", f"{name}.{source_field(source)}"
    if isinstance(source, Query):
        relation = f"(\n{source.sql.strip().rstrip(';').strip()}\n)"  # on lines of its own: a trailing comment ends there
    elif isinstance(source, str | Path) and CSV.search(str(source)):
        sniffed = _describe(con, f"read_csv({_literal(str(source))})", what, field)
        typed = ", ".join(f"{_literal(c)}: {_literal(_DUCK_TYPES[d])}" for c, d in (dtypes or {}).items() if c in sniffed and d in _DUCK_TYPES)
        relation = f"read_csv({_literal(str(source))}{f', types = {{{typed}}}' if typed else ''})"
    elif isinstance(source, str | Path):
        relation = f"read_parquet({_literal(str(source))})"
    else:
        source = pa.Table.from_pandas(source, preserve_index=False) if _is_frame(source) else source
        if not isinstance(source, pa.Table):
            raise InvalidInput(f"Feature view '{name}': a source is a Parquet or CSV path, a Query, a pandas DataFrame or an Arrow "
                               f"table, got {type(source).__name__}.", field=field)
        con.register(alias, source)
        relation = _q(alias)
    return relation, _describe(con, relation, what, field)


def _entity_table(con: duckdb.DuckDBPyConnection, source: Source, columns: Sequence[str] | None) -> pa.Table:
    """The entity rows as an Arrow table in their order (a Parquet path or glob: files in glob order, rows in file
    order); only ``columns`` of a DataFrame when given."""
    import pyarrow as pa

    if isinstance(source, str | Path):
        con.execute("SET preserve_insertion_order = true")
        _describe(con, relation := f"read_parquet({_literal(str(source))})", "the entity rows", "entities")
        table = con.sql(f"SELECT * FROM {relation}").to_arrow_table()
        con.execute("SET preserve_insertion_order = false")
        return table
    if _is_frame(source):
        frame = source if columns is None else source[[c for c in columns if c in source.columns]]  # type: ignore[union-attr]
        return pa.Table.from_pandas(frame, preserve_index=False)
    if isinstance(source, pa.Table):
        return source
    raise InvalidInput(f"The entity rows must be a Parquet path, a pandas DataFrame or an Arrow table, got {type(source).__name__}.", field="entities")


def _describe(con: duckdb.DuckDBPyConnection, relation: str, what: str, field: str = "source") -> dict[str, str]:
    import duckdb

    try:
        return {str(r[0]): str(r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    except duckdb.Error as exc:
        said = str(exc).split("\n\n")[0]  # DuckDB's first paragraph: what went wrong, without its general hints
        raise InvalidInput(f"Cannot read {what}: {said}", field=field) from None


def _ns(column: str, kind: str, alias: str = "") -> str:
    """Nanoseconds since the epoch (naive times read as UTC wall clocks), so every comparison is on exact integers."""
    name = f"{alias}.{_q(column)}" if alias else _q(column)
    return f"epoch_ns({name}::TIMESTAMP)" if kind == "DATE" else f"epoch_ns({name})"


def _check_columns(have: dict[str, str], need: Sequence[str], what: str, field: str) -> None:
    missing = [c for c in need if c not in have]
    if missing:
        raise InvalidInput(f"{what} has no column {missing[0]!r} (columns: {', '.join(have)}).", field=field)


class _Plan:
    """One view's SQL: its event and created times in ns, the filters every row read passes (key and event not null,
    not past the TTL for the earliest entity time, the key one an entity row has), and how rows are split."""

    def __init__(self, i: int, view: ViewSource, rel: str, types: dict[str, str], as_of: str, bounds: tuple[int, int] | None) -> None:
        self.i, self.view, self.rel, self.bounds = i, view, rel, bounds
        self.e = _ns(view.timestamp, types[view.timestamp], "v")
        self.c = _ns(view.created_timestamp, types[view.created_timestamp], "v") if view.created_timestamp else None
        self.unit = min(_UNIT_NS.get(types[c], 1) for c in (view.timestamp, view.created_timestamp or view.timestamp))  # in ns
        self.ttl = None if view.ttl is None else view.ttl // timedelta(microseconds=1) * 1000
        self.known = f"greatest({self.e}, coalesce({self.c}, {self.e}))" if self.c and as_of == "known" else self.e
        where = [f"v.{_q(view.timestamp)} IS NOT NULL", *(f"v.{_q(j)} IS NOT NULL" for j in view.join_keys)]
        if bounds is None:  # no entity row has a time: nothing can match
            where.append("false")
        elif self.ttl is not None:  # expired for the earliest entity time: never usable, nor can they hide a usable row
            where.append(f"{self.e} > {bounds[0] - self.ttl}")
        self.where = " AND ".join(where)
        self.plain = f"v.{_q(view.created_timestamp)} = v.{_q(view.timestamp)}" if view.created_timestamp else "true"
        self.hi = "true" if bounds is None else f"{self.e} <= {bounds[1]}"
        self.keyed = f"{rel} v JOIN {_P}keys{i} s ON {' AND '.join(f'v.{_q(j)} = s.{_q(j)}' for j in view.join_keys)}"
        self.keys = ", ".join(f"v.{_q(k)}" for k in view.join_keys)
        self.features = ", ".join(f"v.{_q(f)}" for f in view.features)

    def timeline(self) -> str:
        """The other rows (c ≠ e or missing): per key, those that become the best of them at their known time k."""
        rank = f"({self.e}::HUGEINT * {2**64} + coalesce({self.c}, {_MIN_NS})::HUGEINT + {2**63})"
        window = f"PARTITION BY {_KID} ORDER BY {_K}, {_PK}"
        hi = "true" if self.bounds is None else f"{self.known} <= {self.bounds[1]}"
        return (f"SELECT * FROM (SELECT {self.keys}, s.{_KID}, {self.e} AS {_E}, {self.c} AS {_C}, {rank} AS {_PK}, {self.known} AS {_K}"
                f", {self.features} FROM {self.keyed} WHERE {self.where} AND {hi} AND ({self.plain}) IS NOT TRUE) "
                f"QUALIFY {_PK} = max({_PK}) OVER ({window} ROWS UNBOUNDED PRECEDING) AND lead({_K}) OVER ({window}) IS DISTINCT FROM {_K}")

    def asof(self, other: bool) -> str:
        """The fallback: each entity row's match by a DuckDB ASOF join, on the timeline's k or the plain rows' e (rows
        equal in key and e are then equal in c: interchangeable). A row per entity row: ROW, E, C, features."""
        rows = self.timeline() if other else (f"SELECT {self.keys}, {self.e} AS {_E}, NULL::BIGINT AS {_C}, {self.features} "
                                              f"FROM {self.keyed} WHERE {self.where} AND {self.hi} AND {self.plain}")
        keys = " AND ".join(f"x.{_q(k)} = m.{_q(k)}" for k in self.view.join_keys)
        return (f"SELECT x.{_ROW}, m.{_E}, m.{_C}, {', '.join(f'm.{_q(f)}' for f in self.view.features)} FROM {_P}ents x "
                f"ASOF LEFT JOIN ({rows}) m ON {keys} AND x.{_T} >= m.{_K if other else _E}")


@dataclass(frozen=True)
class _Packing:
    """A key number and a time in one int64 that sorts as the pair does: the key above ``shift``, then the time in
    ``unit`` ns from ``base``, then a low bit (0 for a view row, 1 for an entity row: an equal event sorts first)."""

    base: int
    unit: int
    shift: int

    def sql(self, kid: str, time: str) -> str:
        return f"(({kid} << {self.shift}) | ((({time}) - {self.base}) // {self.unit} << 1))"

    def time(self, packed: np.ndarray) -> np.ndarray:
        return self.base + ((packed >> 1) & ((1 << (self.shift - 1)) - 1)) * self.unit


def _packing(con: duckdb.DuckDBPyConnection, plan: _Plan, nkeys: int) -> _Packing | None:
    """How to pack the view's key numbers and times (the earliest event that could matter as the base, the coarsest of
    s, ms, µs, ns that every time is a whole number of); None when they do not fit in 63 bits."""
    assert plan.bounds is not None
    lo, hi = plan.bounds
    kbits = max(1, (nkeys - 1).bit_length())

    def fits(base: int, unit: int) -> bool:
        return kbits + ((hi - base) // unit + 1).bit_length() + 1 <= 63

    unit, base = plan.unit, None if plan.ttl is None else lo - plan.ttl + 1
    if base is None or not fits(base // unit * unit, unit):
        whole = ", ".join(f"bool_and({plan.e} % {u} = 0 AND coalesce({plan.c or plan.e} % {u} = 0, true))" for u in (10**9, 10**6, 1000))
        row = con.sql(f"SELECT min({plan.e}), {whole} FROM {plan.rel} v WHERE {plan.where} AND {plan.hi}").fetchall()[0]
        if row[0] is None:  # no row: the ASOF joins of nothing are cheap
            return None
        base, unit = int(row[0]), max([unit, *(u for u, whole in zip((10**9, 10**6, 1000), row[1:], strict=True) if whole)])
    base = base // unit * unit
    return _Packing(base, unit, ((hi - base) // unit + 1).bit_length() + 1) if fits(base, unit) else None


def _lookup(con: duckdb.DuckDBPyConnection, query: str, pack: _Packing, kid: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each entity row, the greatest packed value ``query`` returns at or below its own (key, t), if of its key:
    the rows with a match, each one's index among the distinct matches, and those (sorted: one pass finds them)."""
    import numpy as np

    packed = np.asarray(con.sql(query).fetchnumpy()["p"])
    packed.sort()
    ask = np.flatnonzero((kid >= 0) & (t >= pack.base))  # an entity row before the earliest event matches nothing
    probe = (kid[ask] << pack.shift) | ((t[ask] - pack.base) // pack.unit << 1) | 1
    order = np.argsort(probe)
    ask, probe = ask[order], probe[order]
    pos = np.searchsorted(packed, probe) - 1
    got = packed[np.maximum(pos, 0)] if packed.size else np.full_like(probe, -1)
    hit = (pos >= 0) & (got >> pack.shift == probe >> pack.shift)
    ask, got = ask[hit], got[hit]
    new = np.ones(len(got), dtype=bool)
    new[1:] = got[1:] != got[:-1]
    return ask, np.cumsum(new) - 1, got[new]


def _matched(n: int, ask: np.ndarray, which: np.ndarray, rows: pa.Table, features: Sequence[str], events: np.ndarray | None = None) -> Match:
    """Per entity row: its match's e, c, whether found and row of ``rows``, where the rows ``ask`` match ``rows[which]``
    (E, C, features); ``events`` gives e when the rows hold no E (plain rows, whose c = e)."""
    import numpy as np
    import pyarrow.compute as pc

    take, found = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    take[ask], found[ask] = which, True
    e, c = np.zeros(n, dtype=np.int64), np.full(n, _MIN_NS, dtype=np.int64)
    if events is not None:
        e[ask] = events
    else:
        e[ask] = pc.fill_null(rows.column(_E), 0).to_numpy()[which]
        c[ask] = pc.fill_null(rows.column(_C).cast("int64"), _MIN_NS).to_numpy()[which]
    return e, c, found, take, rows.select(list(features))


def _match(con: duckdb.DuckDBPyConnection, plan: _Plan, pack: _Packing | None, kid: np.ndarray, t: np.ndarray, other: bool) -> Match:
    """The plain rows' match (packed (key, e), values read back by an equality join on (key, e)) or the other rows'
    (their timeline packed by (key, k), one row per key and instant, read back by that packed value); without a
    packing, by a DuckDB ASOF join."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pack is None:
        rows = con.sql(plan.asof(other)).to_arrow_table()
        found = np.flatnonzero(pc.is_valid(rows.column(_E)).to_numpy(zero_copy_only=False))
        return _matched(len(kid), rows.column(_ROW).to_numpy()[found], found, rows, plan.view.features)
    if other:
        con.execute(f"CREATE TEMP TABLE {_P}timeline{plan.i} AS SELECT {pack.sql(_KID, _K)} AS p, * FROM ({plan.timeline()})")
        ask, which, wanted = _lookup(con, f"SELECT p FROM {_P}timeline{plan.i}", pack, kid, t)
        con.register(f"{_P}wanted{plan.i}", pa.table({"p": wanted, _IDX: np.arange(len(wanted))}))
        query = f"SELECT w.{_IDX}, m.* EXCLUDE (p) FROM {_P}timeline{plan.i} m JOIN {_P}wanted{plan.i} w USING (p)"
    else:
        ask, which, wanted = _lookup(con, f"SELECT {pack.sql(f's.{_KID}', plan.e)} AS p FROM {plan.keyed} "
                                          f"WHERE {plan.where} AND {plan.hi} AND {plan.plain}", pack, kid, t)
        keys = con.sql(f"SELECT * EXCLUDE ({_KID}) FROM {_P}keys{plan.i} ORDER BY {_KID}").to_arrow_table()
        con.register(f"{_P}wanted{plan.i}", keys.take(pa.array(wanted >> pack.shift)).append_column(_E, pa.array(pack.time(wanted)))
                     .append_column(_IDX, pa.array(np.arange(len(wanted)))))
        on = " AND ".join([*(f"v.{_q(k)} = w.{_q(k)}" for k in plan.view.join_keys), f"{plan.e} = w.{_E}"])
        query = f"SELECT w.{_IDX}, {plan.features} FROM {plan.rel} v JOIN {_P}wanted{plan.i} w ON {on} WHERE {plan.where} AND {plan.plain}"
    rows = con.sql(query).to_arrow_table()
    first = np.zeros(len(wanted), dtype=np.int64)
    first[rows.column(_IDX).to_numpy()] = np.arange(rows.num_rows)  # rows of equal index are interchangeable: any one
    return _matched(len(kid), ask, first[which], rows, plan.view.features, None if other else pack.time(wanted)[which])


def _view_columns(con: duckdb.DuckDBPyConnection, plan: _Plan, t: np.ndarray, n: int) -> list[pa.Array]:
    """The view's features per entity row: the better of the plain and other matches, null when its event is past the
    TTL. Entity keys are numbered first (only rows of those keys are read); packed lookups unless they do not fit."""
    import numpy as np
    import pyarrow as pa

    keys = ", ".join(_q(k) for k in plan.view.join_keys)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_P}keys{plan.i} AS SELECT *, (row_number() OVER ()) - 1 AS {_KID} FROM "
                f"(SELECT DISTINCT {keys} FROM {_P}ents WHERE {' AND '.join(f'{_q(k)} IS NOT NULL' for k in plan.view.join_keys)})")
    ids = con.sql(f"SELECT x.{_ROW}, s.{_KID} FROM {_P}ents x JOIN {_P}keys{plan.i} s USING ({keys})").fetchnumpy()
    kid = np.full(n, -1, dtype=np.int64)
    kid[np.asarray(ids[_ROW])] = np.asarray(ids[_KID])
    pack = None if plan.bounds is None or kid.max(initial=-1) < 0 else _packing(con, plan, int(kid.max()) + 1)
    e, _, found, take, rows = _match(con, plan, pack, kid, t, other=False)
    if plan.c is not None:  # the other rows: greater by (e, c) than the plain match (whose c = e) or alone
        o_e, o_c, o_found, o_take, o_rows = _match(con, plan, pack, kid, t, other=True)
        pick = o_found & (~found | (o_e > e) | ((o_e == e) & (o_c > e)))
        e, take, found = np.where(pick, o_e, e), np.where(pick, o_take + rows.num_rows, take), found | pick
        rows = pa.concat_tables([rows, o_rows], promote_options="default")
    if plan.ttl is not None:  # a found row has e <= t, so t is a real time there
        found &= e > np.maximum(t, _MIN_NS + plan.ttl) - plan.ttl
    values = rows.combine_chunks().take(pa.array(take, mask=~found))
    return [values.column(f) for f in plan.view.features]


def historical_join(entities: Source, entity_timestamp: str, views: Sequence[ViewSource], *, as_of: Literal["known", "event"] = "known",
                    full_names: bool = False, out: str | Path | None = None, memory_limit: str = "1GB") -> pd.DataFrame | None:
    """The entity rows, in their order and with their columns, plus each view's features as of each row's
    ``entity_timestamp`` (null where no row is usable). Features are named ``feature``, or ``view__feature`` with
    ``full_names``. With ``out`` the result is written to that Parquet file (atomically) and None returned.

    >>> import pandas as pd
    >>> from datetime import timedelta
    >>> ts = pd.to_datetime
    >>> rows = pd.DataFrame({"driver": [1, 1, 1], "at": ts(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-01 11:00"]),
    ...                      "created": ts(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-01 13:00"]), "trips": [3, 4, 5]})
    >>> view = ViewSource("stats", rows, ["driver"], "at", ["trips"], created_timestamp="created", ttl=timedelta(hours=4))
    >>> asked = pd.DataFrame({"driver": [1, 1, 1, 2], "t": ts(["2026-01-01 09:00", "2026-01-01 12:00", "2026-01-01 14:00", "2026-01-01 12:00"])})
    >>> historical_join(asked, "t", [view])["trips"].tolist()
    [nan, 4.0, 5.0, nan]
    >>> historical_join(asked, "t", [view], as_of="event")["trips"].tolist()
    [nan, 5.0, 5.0, nan]
    """
    import duckdb
    import numpy as np
    import pyarrow as pa

    if as_of not in AS_OF:
        raise InvalidInput(f"Unknown as_of {as_of!r}. Valid: {', '.join(AS_OF)}.", field="as_of")
    if not views:
        raise InvalidInput("Give at least one feature view to join.", field="views")
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise InvalidInput(f"Feature view names must be unique, got {names}.", field="views")
    narrow = _is_frame(entities) and out is None  # the frame's own columns are kept as they are
    needed = [entity_timestamp, *dict.fromkeys(k for v in views for k in v.join_keys)]
    with tempfile.TemporaryDirectory(prefix="mloop-join-") as spill, duckdb.connect() as con:
        for setting in (f"memory_limit = {_literal(memory_limit)}", f"temp_directory = {_literal(spill)}", "preserve_insertion_order = false",
                        "TimeZone = 'UTC'", "enable_progress_bar = false"):
            con.execute(f"SET {setting}")
        if folders := list(dict.fromkeys(v.source.folder for v in views if isinstance(v.source, Query) and v.source.folder)):
            con.execute(f"SET file_search_path = {_literal(','.join(folders))}")  # after the working directory, in turn
        table = _entity_table(con, entities, needed if narrow else None)
        con.register(f"{_P}entities", table)
        etypes = _describe(con, f"{_P}entities", "the entity rows", "entities")
        _check_columns(etypes, [entity_timestamp], "The entity rows", "entity_timestamp")
        _check_columns(etypes, needed, "The entity rows", "join_keys")
        if reserved := [c for c in table.column_names if c.startswith(_P)]:
            raise InvalidInput(f"Column names starting with '{_P}' are reserved, got {reserved}.", field="entities")
        aware = _kind(etypes[entity_timestamp], f"entity column {entity_timestamp!r}", "entity_timestamp")
        taken = {c: "an entity column" for c in (list(entities.columns) if _is_frame(entities) else table.column_names)}  # type: ignore[union-attr]
        n = table.num_rows
        con.register(f"{_P}entity_rows", table.select(needed).append_column(_ROW, pa.array(np.arange(n, dtype=np.int64))))
        con.execute(f"CREATE TEMP VIEW {_P}ents AS SELECT *, {_ns(entity_timestamp, etypes[entity_timestamp])} AS {_T} FROM {_P}entity_rows")
        times = con.sql(f"SELECT {_ROW}, {_T} FROM {_P}ents WHERE {_T} IS NOT NULL").fetchnumpy()
        t = np.full(n, _MIN_NS, dtype=np.int64)  # no time: before every row, so nothing matches
        t[np.asarray(times[_ROW])] = np.asarray(times[_T])
        bounds = (int(t[t > _MIN_NS].min()), int(t.max())) if (t > _MIN_NS).any() else None
        plans = []
        for i, view in enumerate(views):
            rel, vtypes = view_relation(con, view.name, view.source, f"{_P}view{i}", view.dtypes)
            _check_view(view, vtypes, etypes, entity_timestamp, aware)
            for feature in view.features:
                name = f"{view.name}__{feature}" if full_names else feature
                if name in taken:
                    raise InvalidInput(f"Feature {name!r} of view '{view.name}' clashes with {taken[name]}: pass full_names=True "
                                       f"(columns named view__feature) or rename it.", field="features")
                taken[name] = f"the feature of view '{view.name}'"
            if isinstance(view.source, Query) or isinstance(view.source, str | Path) and CSV.search(str(view.source)):
                rel = _materialized(con, view, rel, f"{_P}rows{i}")  # parsed or run once, whatever the join reads it for
            plans.append(_Plan(i, view, rel, vtypes, as_of, bounds))
        columns: dict[str, Any] = {} if narrow else {c: table.column(c) for c in table.column_names}
        for plan in plans:
            for feature, values in zip(plan.view.features, _view_columns(con, plan, t, n), strict=True):
                columns[f"{plan.view.name}__{feature}" if full_names else feature] = values
    found = pa.table(columns)
    if out is not None:
        import pyarrow.parquet as pq

        from mloop.files import replacing

        with replacing(Path(out)) as tmp:  # dictionaries only where they may pay: not for floating-point features
            pq.write_table(found, tmp, use_dictionary=[f.name for f in found.schema if not pa.types.is_floating(f.type)])
        return None
    if not narrow:
        return found.to_pandas()
    result = entities.copy()  # type: ignore[union-attr]
    frame = found.to_pandas()
    for column in frame.columns:
        result[column] = frame[column].to_numpy()
    return result


def _materialized(con: duckdb.DuckDBPyConnection, view: ViewSource, rel: str, table: str) -> str:
    """A CSV or query source read once into a temporary table (spilled to disk past the memory limit), so it is parsed
    or run once and each read sees the same rows. A value that does not parse is refused naming the view and field."""
    import duckdb

    columns = [*view.join_keys, view.timestamp, *([view.created_timestamp] if view.created_timestamp else []), *view.features]
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT {', '.join(_q(c) for c in columns)} FROM {rel}")
    except duckdb.Error as exc:
        said, where = str(exc).split("\n\n")[0], source_field(view.source)
        raise InvalidInput(f"Cannot read feature view '{view.name}' ({where}): {said}", field=f"{view.name}.{where}") from None
    return table


def _check_view(view: ViewSource, vtypes: dict[str, str], etypes: dict[str, str], entity_timestamp: str, aware: bool) -> None:
    """Refuse a view whose columns are missing, whose timestamps mix naive and aware, or whose key types differ."""
    times = [view.timestamp, *([view.created_timestamp] if view.created_timestamp else [])]
    where = source_field(view.source)
    _check_columns(vtypes, [*view.join_keys, *times, *view.features], f"Feature view '{view.name}'" + (f" ({where})" if "." in where else ""),
                   f"{view.name}.{where}")
    for column in times:
        if _kind(vtypes[column], f"column {column!r} of view '{view.name}'", f"{view.name}.{column}") != aware:
            raise InvalidInput(f"Column {column!r} of view '{view.name}' is {'naive' if aware else 'timezone-aware'} but entity column "
                               f"{entity_timestamp!r} is {'aware' if aware else 'naive'}: make both timezone-aware (or both naive).",
                               field=f"{view.name}.{column}")
    for key in view.join_keys:
        if vtypes[key] != etypes[key] and not {vtypes[key], etypes[key]} <= _INTEGERS:
            raise InvalidInput(f"Join key {key!r} is {etypes[key]} in the entity rows but {vtypes[key]} in view '{view.name}': cast one.",
                               field=f"{view.name}.join_keys")


def _kind(duck_type: str, what: str, field: str) -> bool:
    """Whether a timestamp column is timezone-aware; refuses what is not a timestamp or a date."""
    if duck_type in _AWARE:
        return True
    if duck_type in _NAIVE:
        return False
    raise InvalidInput(f"The {what} must hold timestamps (or dates), got {duck_type}.", field=field)

