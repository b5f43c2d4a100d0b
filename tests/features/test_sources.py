"""Feature view sources: the same rows as a Parquet file or glob, a CSV file or glob (read with the declared types) or
a DuckDB query give the brute-force reference's training join and materialise to the same online values; a source
that cannot be read is refused naming the view and the field, not with DuckDB's traceback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mloop.errors import InvalidInput
from mloop.features import FeatureRegistry, ViewSource, get_historical_features, get_online_features, load_definitions, materialize
from mloop.features._online import SqliteOnlineStore
from mloop.store import MetadataStore
from tests.features.test_historical import _same, reference_join
from tests.features.test_online import T0, _normal, _random_drivers

FEATURES = ["f0", "f1", "n", "ok", "label", "seen"]
TYPES = "[{name: f0, dtype: float32}, {name: f1, dtype: float64}, {name: n, dtype: int64}, {name: ok, dtype: bool}, " \
        "{name: label, dtype: string}, {name: seen, dtype: timestamp}]"
SOURCES = {  # view name → its source, as written in the definitions file (relative to it)
    "by_parquet": "{path: data/stats.parquet",
    "by_glob": "{path: 'data/parts/*.parquet'",
    "by_csv": "{path: data/stats.csv",
    "by_csv_glob": "{path: 'data/csv/*.csv'",
    "by_query": "{query: \"SELECT * FROM read_parquet('data/parts/*.parquet') WHERE driver_id >= 0 -- every row\"",
}


def _project(tmp_path: Path, rows: pd.DataFrame) -> FeatureRegistry:
    """The same rows written as Parquet (one file, three parts), CSV (one file, three parts), and read by a query."""
    for folder in ("parts", "csv"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    rows.to_parquet(tmp_path / "data" / "stats.parquet")
    rows.to_csv(tmp_path / "data" / "stats.csv", index=False)
    for i, part in enumerate(np.array_split(np.arange(len(rows)), 3)):
        rows.iloc[part].to_parquet(tmp_path / "data" / "parts" / f"part-{i}.parquet")
        rows.iloc[part].to_csv(tmp_path / "data" / "csv" / f"part-{i}.csv", index=False)
    views = "".join(f"  - {{name: {name}, entities: [driver], ttl: 30h, features: {TYPES},\n"
                    f"     source: {source}, timestamp: event_timestamp, created_timestamp: created}}}}\n" for name, source in SOURCES.items())
    (tmp_path / "features.yaml").write_text(f"entities: [{{name: driver, join_keys: [driver_id]}}]\nfeature_views:\n{views}")
    store = MetadataStore(f"sqlite:///{tmp_path / 'mloop.db'}")
    store.migrate()
    registry = FeatureRegistry(store)
    registry.apply(load_definitions(tmp_path / "features.yaml"))
    return registry


def _entities(seed: int, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    at = [T0 + dt.timedelta(minutes=int(m)) for m in rng.integers(-120, 80 * 60, n)]
    at[:5] = [T0 + dt.timedelta(hours=h) for h in range(5)]  # on the hour: ties with event times
    return pd.DataFrame({"driver_id": rng.integers(0, 14, n), "event_timestamp": pd.to_datetime(at)})


@pytest.mark.parametrize("as_of", ["known", "event"])
def test_parquet_csv_and_query_sources_give_the_brute_force_join(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_of: str) -> None:
    rows = _random_drivers(5, n_keys=12, hours=48)
    registry = _project(tmp_path, rows)
    monkeypatch.chdir(tmp_path / "data")  # a query's relative paths are read from the definitions file's folder, not here
    entities = _entities(1)
    want = reference_join(entities, "event_timestamp", [ViewSource("s", rows, ["driver_id"], "event_timestamp", FEATURES,
                                                                   created_timestamp="created", ttl=dt.timedelta(hours=30))], as_of)
    for name in SOURCES:
        got = get_historical_features(registry, entities, features=[f"{name}:*"], as_of=as_of)  # type: ignore[arg-type]
        assert got is not None, name
        _same(got, want)
    assert registry.views()["by_query"].source.folder == str(tmp_path.resolve())


def test_csv_and_query_sources_materialise_like_parquet(tmp_path: Path) -> None:
    registry = _project(tmp_path, _random_drivers(6, n_keys=12, hours=48))
    store = SqliteOnlineStore(f"sqlite:///{tmp_path / 'online.db'}")
    at = T0 + dt.timedelta(hours=40)
    moved = {r.view: r.rows for r in materialize(registry, store, end=at)}
    assert len(set(moved.values())) == 1 and moved["by_parquet"] > 0, moved
    keys = {"driver_id": list(range(14))}
    want = get_online_features(store, registry, keys, features=["by_parquet:*"], at=at)
    for name in SOURCES:
        got = get_online_features(store, registry, keys, features=[f"{name}:*"], at=at)
        assert isinstance(got, dict) and isinstance(want, dict)
        for feature in FEATURES:
            assert [_normal(v) for v in got[feature]] == [_normal(v) for v in want[feature]], (name, feature)


BAD = "entities: [{name: driver, join_keys: [driver_id]}]\nfeature_views:\n  - {name: stats, entities: [driver], source: SOURCE, " \
      "timestamp: event_timestamp, created_timestamp: created}, features: [{name: f0, dtype: float32}]}\n"


@pytest.mark.parametrize(("source", "field", "message"), [
    ("{path: data/missing.parquet", "stats.source.path", r"(?s)Cannot read feature view 'stats' \(source.path\):.*missing.parquet"),
    ("{path: 'data/none/*.csv'", "stats.source.path", r"(?s)Cannot read feature view 'stats' \(source.path\):.*none"),
    ("{query: \"SELEKT 1\"", "stats.source.query", r"Cannot read feature view 'stats' \(source.query; .*\): Parser Error: syntax error"),
    ("{query: \"SELECT * FROM read_parquet('missing.parquet')\"", "stats.source.query",
     r"\(source.query; its relative paths are read from the working directory, then .*\): IO Error.*missing.parquet"),
    ("{query: \"SELECT driver_id, event_timestamp, created FROM 'data/good.csv'\"", "stats.source.query",
     r"Feature view 'stats' \(source.query\) has no column 'f0'"),
    ("{path: data/no_time.csv", "stats.source.path", r"Feature view 'stats' \(source.path\) has no column 'event_timestamp'"),
    ("{path: data/bad_value.csv", "stats.source.path", r"(?s)\(source.path\): Conversion Error.*Could not convert string \"abc\""),
])
@pytest.mark.parametrize("use", ["join", "materialize"])
def test_an_unreadable_source_is_refused_naming_the_view_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, field: str,
                                                                  message: str, use: str) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    good = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": pd.to_datetime(["2026-01-01 10:00"] * 2), "f0": ["1.5", "2.5"]})
    good.assign(created=good["event_timestamp"]).to_csv(tmp_path / "data" / "good.csv", index=False)
    good.assign(created=good["event_timestamp"], f0=["1.5", "abc"]).to_csv(tmp_path / "data" / "bad_value.csv", index=False)
    good.drop(columns="event_timestamp").assign(created=T0).to_csv(tmp_path / "data" / "no_time.csv", index=False)
    (tmp_path / "features.yaml").write_text(BAD.replace("SOURCE", source))
    store = MetadataStore(f"sqlite:///{tmp_path / 'mloop.db'}")
    store.migrate()
    registry = FeatureRegistry(store)
    registry.apply(load_definitions(tmp_path / "features.yaml"))
    run: Any = (lambda: get_historical_features(registry, pd.DataFrame({"driver_id": [1], "event_timestamp": [T0]}), features=["stats:f0"])) \
        if use == "join" else (lambda: materialize(registry, SqliteOnlineStore(f"sqlite:///{tmp_path / 'online.db'}"), end=T0))
    with pytest.raises(InvalidInput, match=message) as caught:
        run()
    assert caught.value.field == field
    assert "Traceback" not in str(caught.value)
