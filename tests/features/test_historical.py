"""The point-in-time join against a brute-force reference written plainly, on seeded data full of edge cases, plus
hand-written cases whose answers are spelled out, and the refusals of bad input."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mloop.errors import InvalidInput
from mloop.features import ViewSource, historical_join

BASE = pd.Timestamp("2026-03-01 00:00")
H = pd.Timedelta(hours=1)


def _null(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float | np.floating) and math.isnan(value))


def reference_join(entities: pd.DataFrame, entity_timestamp: str, views: list[ViewSource], as_of: str = "known",
                   full_names: bool = False) -> pd.DataFrame:
    """The rules, one entity row and one candidate row at a time: usable rows are those of the same key, with event
    ≤ t (as of event) or max(event, created) ≤ t (as of known time), and event > t − TTL; the greatest
    (event, created) wins, a missing created ranking lowest."""
    out = entities.copy()
    for view in views:
        assert isinstance(view.source, pd.DataFrame)
        rows = view.source.to_dict("records")
        chosen: list[dict[str, Any] | None] = []
        for entity in entities.to_dict("records"):
            t = entity[entity_timestamp]
            key = [entity[k] for k in view.join_keys]
            best, best_rank = None, None
            for row in rows:
                e = row[view.timestamp]
                c = row[view.created_timestamp] if view.created_timestamp else None
                if _null(t) or any(_null(v) for v in key) or _null(e):
                    continue
                if any(_null(row[k]) or row[k] != v for k, v in zip(view.join_keys, key, strict=True)):
                    continue
                known = e if _null(c) or c < e else c
                if (known if as_of == "known" else e) > t:
                    continue
                if view.ttl is not None and e <= t - view.ttl:
                    continue
                rank = (e, pd.Timestamp.min.tz_localize(e.tz) if _null(c) else c)
                if best_rank is None or rank > best_rank:
                    best, best_rank = row, rank
            chosen.append(best)
        for feature in view.features:
            name = f"{view.name}__{feature}" if full_names else feature
            out[name] = [None if row is None or _null(row[feature]) else row[feature] for row in chosen]
    return out


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert list(got.index) == list(want.index)
    for column in want.columns:
        for i, (g, w) in enumerate(zip(got[column], want[column], strict=True)):
            assert (_null(g) and _null(w)) or g == w, f"row {i}, column {column}: got {g!r}, want {w!r}"


def _times(rng: np.random.Generator, n: int, tz: str | None) -> pd.Series:
    """Times on a coarse half-hour grid (so ties are frequent), a few off the grid."""
    steps = rng.integers(-4, 40, n).astype(float) * 30
    steps[rng.random(n) < 0.1] += 7.5
    out = pd.Series(BASE + pd.to_timedelta(steps, unit="min"))
    return out.dt.tz_localize(tz) if tz else out


def _generated(seed: int, tz: str | None) -> tuple[pd.DataFrame, list[ViewSource]]:
    rng = np.random.default_rng(seed)
    n = 60
    a = pd.array(rng.integers(0, 3, n), dtype="Int64")
    a[rng.random(n) < 0.05] = pd.NA  # null keys match nothing
    event = _times(rng, n, tz)
    lag = rng.choice([0.0, 0.0, 0.0, -60.0, 30.0, 90.0, 300.0, np.nan], n)  # on time, early, late corrections, missing
    created = event + pd.to_timedelta(np.nan_to_num(lag), unit="min")
    created[np.isnan(lag)] = pd.NaT
    value = rng.standard_normal(n)
    value[rng.random(n) < 0.1] = np.nan  # a null value in a row that may be the chosen one
    stats = pd.DataFrame({"a": a, "b": rng.choice(["x", "y"], n), "ts": event, "created": created, "value": value, "row": np.arange(n)})
    stats = stats.drop_duplicates(["a", "b", "ts", "created"])  # rows equal in key, event and created are interchangeable
    m = 40
    profile = pd.DataFrame({"a": pd.array(rng.integers(0, 3, m), dtype="Int64"), "when": _times(rng, m, tz), "level": rng.integers(0, 100, m)})
    profile = profile.drop_duplicates(["a", "when"])
    k = 50
    entity_t = _times(rng, k, tz)
    entity_t[rng.random(k) < 0.05] = pd.NaT
    entities = pd.DataFrame({"a": pd.array(rng.integers(0, 3, k), dtype="Int64"), "b": rng.choice(["x", "y"], k), "t": entity_t})
    entities.loc[rng.random(k) < 0.05, "a"] = pd.NA
    entities = entities.iloc[rng.integers(0, k, k + 10)]  # duplicate entity rows, shuffled, index kept
    ttl = None if seed % 3 == 0 else timedelta(hours=int(rng.integers(1, 4)))
    views = [ViewSource("stats", stats, ["a", "b"], "ts", ["value", "row"], created_timestamp="created", ttl=ttl),
             ViewSource("profile", profile, ["a"], "when", ["level"], ttl=None if seed % 2 else timedelta(hours=2))]
    return entities, views


@pytest.mark.parametrize("as_of", ["known", "event"])
@pytest.mark.parametrize("seed", range(8))
def test_matches_the_brute_force_reference(seed: int, as_of: str) -> None:
    entities, views = _generated(seed, "UTC" if seed % 2 else None)
    got = historical_join(entities, "t", views, as_of=as_of)  # type: ignore[arg-type]
    assert got is not None
    _same(got, reference_join(entities, "t", views, as_of))


@pytest.mark.parametrize("as_of", ["known", "event"])
def test_times_too_far_apart_to_pack_give_the_same_answer(as_of: str) -> None:
    """Keys and times are packed into 63 bits when they fit: an event three centuries back at nanosecond precision
    (no TTL) does not, nor does a 150-year TTL in nanoseconds, though it does in the whole seconds the times are in."""
    entities, (stats, profile) = _generated(3, None)
    assert isinstance(stats.source, pd.DataFrame) and stats.ttl is None
    old = pd.Timestamp("1700-01-01 00:00:00.000000001")
    ancient = pd.DataFrame({"a": pd.array([0, 1], dtype="Int64"), "b": ["x", "y"], "ts": [old, old + pd.Timedelta("1h")],
                            "created": [old, old + pd.Timedelta("3h")], "value": [42.0, 43.0], "row": [-1, -2]})
    views = [replace(stats, source=pd.concat([ancient, stats.source], ignore_index=True)), replace(profile, ttl=timedelta(days=365 * 150))]
    got = historical_join(entities, "t", views, as_of=as_of)  # type: ignore[arg-type]
    assert got is not None
    _same(got, reference_join(entities, "t", views, as_of))


def _view(rows: list[tuple[str, str | None, float]], ttl: timedelta | None = None) -> ViewSource:
    frame = pd.DataFrame({"driver": [1] * len(rows), "at": pd.to_datetime([BASE + pd.Timedelta(r[0]) for r in rows]),
                          "created": pd.to_datetime([None if r[1] is None else BASE + pd.Timedelta(r[1]) for r in rows]),
                          "v": [r[2] for r in rows]})
    return ViewSource("s", frame, ["driver"], "at", ["v"], created_timestamp="created", ttl=ttl)


def _ask(view: ViewSource, offsets: list[str], as_of: str = "known") -> list[float | None]:
    entities = pd.DataFrame({"driver": 1, "t": [BASE + pd.Timedelta(o) for o in offsets]})
    got = historical_join(entities, "t", [view], as_of=as_of)  # type: ignore[arg-type]
    assert got is not None
    return [None if _null(x) else x for x in got["v"]]


def test_a_late_correction_of_an_older_event_does_not_beat_a_newer_event() -> None:
    view = _view([("10h", "10h", 1.0), ("12h", "12h", 2.0), ("10h", "13h", 3.0)])
    assert _ask(view, ["9h", "11h", "12h", "13h", "14h"]) == [None, 1.0, 2.0, 2.0, 2.0]


def test_a_correction_counts_from_when_it_was_created_as_of_known_time_only() -> None:
    view = _view([("10h", "10h", 1.0), ("10h", "13h", 3.0), ("11h", "15h", 4.0)])
    assert _ask(view, ["12h", "13h", "14h", "15h"]) == [1.0, 3.0, 3.0, 4.0]
    assert _ask(view, ["12h", "13h", "14h", "15h"], as_of="event") == [4.0, 4.0, 4.0, 4.0]


def test_ttl_excludes_exactly_t_minus_ttl_and_includes_exactly_t() -> None:
    view = _view([("10h", None, 1.0)], ttl=timedelta(hours=2))
    assert _ask(view, ["9h59min", "10h", "11h59min", "12h"]) == [None, 1.0, 1.0, None]


def test_a_row_created_before_its_event_is_known_from_its_event() -> None:
    view = _view([("10h", "8h", 1.0)])
    assert _ask(view, ["9h", "10h"]) == [None, 1.0]


def test_a_null_value_in_the_chosen_row_stays_null() -> None:
    view = _view([("10h", "10h", 1.0), ("11h", "11h", float("nan"))])
    assert _ask(view, ["10h30min", "11h"]) == [1.0, None]


def test_inputs_as_parquet_and_arrow_and_output_to_parquet(tmp_path: Path) -> None:
    entities, views = _generated(4, "UTC")
    want = reference_join(entities, "t", views, "known", full_names=True).reset_index(drop=True)
    for i, view in enumerate(views):
        assert isinstance(view.source, pd.DataFrame)
        pq.write_table(pa.Table.from_pandas(view.source, preserve_index=False), tmp_path / f"v{i}.parquet")
    on_disk = [ViewSource(v.name, tmp_path / f"v{i}.parquet", v.join_keys, v.timestamp, v.features, v.created_timestamp, v.ttl) for i, v in enumerate(views)]
    table = pa.Table.from_pandas(entities, preserve_index=False)
    pq.write_table(table, tmp_path / "entities.parquet")
    for source in (table, tmp_path / "entities.parquet"):
        got = historical_join(source, "t", on_disk, full_names=True)
        assert got is not None
        _same(got, want)
    assert historical_join(entities, "t", on_disk, full_names=True, out=tmp_path / "out" / "joined.parquet") is None
    _same(pd.read_parquet(tmp_path / "out" / "joined.parquet"), want)


def _entities() -> pd.DataFrame:
    return pd.DataFrame({"driver": [1], "t": [BASE]})


@pytest.mark.parametrize(("make", "field", "message"), [
    (lambda: ViewSource("s", pd.DataFrame(), ["driver"], "at", []), "features", "lists no features"),
    (lambda: ViewSource("s", pd.DataFrame(), ["driver"], "at", ["v"], ttl=timedelta(0)), "ttl", "TTL must be positive"),
    (lambda: ViewSource("s", pd.DataFrame(), [], "at", ["v"]), "join_keys", "at least one join key"),
    (lambda: ViewSource("a__b", pd.DataFrame(), ["driver"], "at", ["v"]), "name", "without '__'"),
    (lambda: ViewSource("s", pd.DataFrame(), ["driver"], "at", ["at"]), "features", "both as a feature"),
])
def test_a_bad_view_is_refused_when_made(make: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        make()
    assert caught.value.field == field


def test_bad_calls_are_refused_naming_what_is_wrong() -> None:
    view = _view([("10h", "10h", 1.0)])
    with pytest.raises(InvalidInput, match="Unknown as_of 'later'. Valid: known, event") as caught:
        historical_join(_entities(), "t", [view], as_of="later")  # type: ignore[arg-type]
    assert caught.value.field == "as_of"
    with pytest.raises(InvalidInput, match="no column 'when'") as caught:
        historical_join(_entities(), "when", [view])
    assert caught.value.field == "entity_timestamp"
    with pytest.raises(InvalidInput, match="no column 'driver'") as caught:
        historical_join(pd.DataFrame({"t": [BASE]}), "t", [view])
    assert caught.value.field == "join_keys"
    missing = ViewSource("s", view.source, ["driver"], "at", ["speed"])
    with pytest.raises(InvalidInput, match="Feature view 's' has no column 'speed'") as caught:
        historical_join(_entities(), "t", [missing])
    assert caught.value.field == "s.source"
    with pytest.raises(InvalidInput, match="at least one feature view"):
        historical_join(_entities(), "t", [])


def test_feature_name_clashes_are_refused_unless_full_names() -> None:
    view = _view([("10h", "10h", 1.0)])
    other = ViewSource("t", view.source, ["driver"], "at", ["v"])
    with pytest.raises(InvalidInput, match="Feature 'v' of view 't' clashes with the feature of view 's'.*full_names=True"):
        historical_join(_entities(), "t", [view, other])
    with pytest.raises(InvalidInput, match="Feature 'v' of view 's' clashes with an entity column"):
        historical_join(_entities().assign(v=1), "t", [view])
    got = historical_join(_entities(), "t", [view, other], full_names=True)
    assert got is not None and list(got.columns) == ["driver", "t", "s__v", "t__v"]


def test_mixing_naive_and_aware_timestamps_is_refused_naming_the_column() -> None:
    view = _view([("10h", "10h", 1.0)])
    aware = pd.DataFrame({"driver": [1], "t": [BASE.tz_localize("UTC")]})
    with pytest.raises(InvalidInput, match="Column 'at' of view 's' is naive but entity column 't' is aware") as caught:
        historical_join(aware, "t", [view])
    assert caught.value.field == "s.at"
    with pytest.raises(InvalidInput, match="must hold timestamps"):
        historical_join(pd.DataFrame({"driver": [1], "t": ["noon"]}), "t", [view])
