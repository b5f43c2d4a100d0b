"""The online store and incremental materialisation: what a model reads online is what the point-in-time join gives at
the materialisation's end, key for key; a rerun moves nothing; new rows and late corrections win exactly when they are
the best known row; the TTL applies at read time; a crash midway leaves the old watermark and a rerun completes it.
``OnlineStoreChecks`` is the conformance suite every backend passes (SQLite here, Redis in test_online_redis.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mloop.cli._app import main
from mloop.errors import InvalidInput, NotFound
from mloop.features import FeatureRegistry, OnlineStore, _materialize, get_historical_features, get_online_features, load_definitions, materialize
from mloop.features._online import OnlineReader, SqliteOnlineStore, age_seconds, open_online_store
from mloop.store import MetadataStore
from mloop.workspace import Workspace

T0 = dt.datetime(2026, 1, 1)
DEFINITIONS = """entities: [{name: driver, join_keys: [driver_id]}, {name: zone, join_keys: [city, zone]}]
feature_views:
  - name: driver_stats
    entities: [driver]
    source: {path: data/driver_stats.parquet, timestamp: event_timestamp, created_timestamp: created}
    ttl: 24h
    features: [{name: f0, dtype: float32}, {name: f1, dtype: float64}, {name: n, dtype: int64}, {name: ok, dtype: bool},
               {name: label, dtype: string}, {name: seen, dtype: timestamp}]
  - name: zone_stats
    entities: [zone]
    source: {path: data/zone_stats.parquet, timestamp: ts}
    features: [{name: demand, dtype: float64}]
feature_services:
  - {name: model, features: ["driver_stats:*", "zone_stats:demand"]}
  - {name: driver_model, features: ["driver_stats:f0", "driver_stats:f1"]}
"""


def ts(values: list[str]) -> Any:
    return pd.to_datetime(values, format="ISO8601")


def _drivers(rows: list[tuple[int, str, str, float]]) -> pd.DataFrame:
    """(driver, event, created, f0) rows with the other features derived from f0."""
    return pd.DataFrame({"driver_id": [r[0] for r in rows], "event_timestamp": ts([r[1] for r in rows]), "created": ts([r[2] for r in rows]),
                         "f0": np.array([r[3] for r in rows], dtype=np.float32), "f1": [r[3] * 10 for r in rows],
                         "n": pd.array([int(r[3]) for r in rows], dtype="Int64"), "ok": pd.array([r[3] > 1 for r in rows], dtype="boolean"),
                         "label": [f"v{r[3]:g}" for r in rows], "seen": ts([r[1] for r in rows])})


def _project(tmp_path: Path, drivers: pd.DataFrame) -> FeatureRegistry:
    (tmp_path / "data").mkdir(exist_ok=True)
    drivers.to_parquet(tmp_path / "data" / "driver_stats.parquet")
    pd.DataFrame({"city": ["a", "a", "b"], "zone": [1, 2, 1], "ts": ts(["2026-01-01 09:00"] * 3), "demand": [1.5, 2.5, 3.5]}).to_parquet(
        tmp_path / "data" / "zone_stats.parquet")
    (tmp_path / "features.yaml").write_text(DEFINITIONS)
    store = MetadataStore(f"sqlite:///{tmp_path / 'mloop.db'}")
    store.migrate()
    registry = FeatureRegistry(store)
    registry.apply(load_definitions(tmp_path / "features.yaml"))
    return registry


BASE = [(1, "2026-01-01 10:00", "2026-01-01 10:00", 1.0), (1, "2026-01-01 11:00", "2026-01-01 11:00", 2.0),
        (1, "2026-01-01 11:00", "2026-01-01 13:00", 3.0),  # a correction of 11:00, known at 13:00
        (2, "2026-01-01 08:00", "2026-01-01 08:00", 9.0)]


def _random_drivers(seed: int, n_keys: int = 40, hours: int = 72) -> pd.DataFrame:
    """Hourly rows per key (some missing), 10 % corrections written 1–30 h later, values with nulls."""
    rng = np.random.default_rng(seed)
    rows = []
    for key in range(n_keys):
        for hour in sorted(rng.choice(hours, size=hours // 3, replace=False)):
            event = T0 + dt.timedelta(hours=int(hour))
            rows.append((key, event, event, float(rng.integers(0, 100))))
            if rng.random() < 0.1:  # corrections: unique created times, so no two rows of a key tie on (event, created)
                rows.append((key, event, event + dt.timedelta(hours=int(rng.integers(1, 30)), microseconds=len(rows)), float(rng.integers(0, 100))))
    frame = _drivers([(k, str(e), str(c), v) for k, e, c, v in rows])
    frame.loc[frame.index % 17 == 3, "f1"] = np.nan
    frame.loc[frame.index % 13 == 5, "n"] = pd.NA
    frame.loc[frame.index % 11 == 7, "label"] = None
    return frame


def _normal(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return pd.Timestamp(value).tz_localize(None) if pd.Timestamp(value).tzinfo is None else pd.Timestamp(value).tz_convert(None)
    if isinstance(value, np.generic):
        value = value.item()
    return float(np.float32(value)) if isinstance(value, float) else value


def _assert_agrees_with_the_join(registry: FeatureRegistry, store: OnlineStore, keys: list[int], at: dt.datetime) -> None:
    features = ["driver_stats:*"]
    online = get_online_features(store, registry, {"driver_id": keys}, features=features, at=at)
    assert isinstance(online, dict)
    offline = get_historical_features(registry, pd.DataFrame({"driver_id": keys, "event_timestamp": [pd.Timestamp(at)] * len(keys)}), features=features)
    assert offline is not None
    for name in ("f0", "f1", "n", "ok", "label", "seen"):
        got, want = [_normal(v) for v in online[name]], [_normal(v) for v in offline[name]]
        assert got == want, (name, [(k, g, w) for k, g, w in zip(keys, got, want, strict=True) if g != w][:5])


class OnlineStoreChecks:
    """What every online store backend must do; a subclass provides the ``store`` fixture."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[OnlineStore]:
        raise NotImplementedError

    def test_materialised_values_agree_with_the_join_at_each_end(self, tmp_path: Path, store: OnlineStore) -> None:
        registry = _project(tmp_path, _random_drivers(7))
        keys = list(range(42))  # 40 and 41 have no rows
        for hours in (20, 21, 40, 55, 80, 110):  # incremental runs; late corrections arrive between them
            end = T0 + dt.timedelta(hours=hours, minutes=30)
            materialize(registry, store, views=["driver_stats"], end=end, chunk_rows=7)
            _assert_agrees_with_the_join(registry, store, keys, end)
            assert store.state("driver_stats") is not None

    def test_a_rerun_moves_nothing_and_new_rows_and_corrections_win_exactly_when_best(self, tmp_path: Path, store: OnlineStore) -> None:
        registry = _project(tmp_path, _drivers(BASE))
        first = materialize(registry, store, end="2026-01-01T12:00")
        assert {r.view: r.rows for r in first} == {"driver_stats": 2, "zone_stats": 3}
        assert [r.rows for r in materialize(registry, store, end="2026-01-01T12:00")] == [0, 0]
        assert [r.rows for r in materialize(registry, store, end="2026-01-01T12:30")] == [0, 0]
        read = OnlineReader(store, registry, service="driver_model")
        assert read.get([{"driver_id": 1}, {"driver_id": 2}], at=dt.datetime(2026, 1, 1, 12, 30))["f0"] == [2.0, 9.0]
        # the correction of 11:00 became known at 13:00; an older event (09:00) corrected at 13:30 does not win
        _drivers([*BASE, (1, "2026-01-01 09:00", "2026-01-01 13:30", 7.0), (2, "2026-01-01 12:45", "2026-01-01 12:45", 4.0)]).to_parquet(
            tmp_path / "data" / "driver_stats.parquet")
        moved = materialize(registry, store, views=["driver_stats"], end=dt.datetime(2026, 1, 1, 14))
        assert moved[0].rows == 2 and moved[0].watermark == _materialize.parse_time("2026-01-01T14:00")
        assert read.get({"driver_id": [1, 2]}, at=dt.datetime(2026, 1, 1, 14))["f0"] == [3.0, 4.0]
        _assert_agrees_with_the_join(registry, store, [1, 2, 3], dt.datetime(2026, 1, 1, 14))

    def test_the_ttl_applies_at_read_time_and_missing_keys_are_none(self, tmp_path: Path, store: OnlineStore) -> None:
        registry = _project(tmp_path, _drivers(BASE))
        materialize(registry, store, end="2026-01-01T14:00")
        read = OnlineReader(store, registry, features=["driver_stats:f0", "zone_stats:demand"])
        got = read.get([{"driver_id": 1, "city": "a", "zone": 2}, {"driver_id": 2, "city": "x", "zone": 1}], at=dt.datetime(2026, 1, 2, 8))
        assert got == {"driver_id": [1, 2], "city": ["a", "x"], "zone": [2, 1], "f0": [3.0, None], "demand": [2.5, None]}  # 2: 08:00 + 24 h
        assert read.get([{"driver_id": 1, "city": "a", "zone": 2}], at=dt.datetime(2026, 1, 2, 11))["f0"] == [None]  # exactly 24 h: expired
        assert read.get([{"driver_id": 99, "city": "b", "zone": 1}])["demand"] == [3.5]  # no TTL: forever
        assert age_seconds(store, "zone_stats", at=dt.datetime(2026, 1, 1, 10)) == 3600.0

    def test_values_keep_their_types_and_nulls(self, tmp_path: Path, store: OnlineStore) -> None:
        frame = _drivers([(1, "2026-01-01 10:00", "2026-01-01 10:00", 2.5), (2, "2026-01-01 10:00", "2026-01-01 10:00", 0.0)])
        frame.loc[1, ["f1", "n", "label", "seen", "ok"]] = [np.nan, pd.NA, None, pd.NaT, None]
        registry = _project(tmp_path, frame)
        materialize(registry, store, end="2026-01-01T12:00")
        got = get_online_features(store, registry, [{"driver_id": 1}, {"driver_id": 2}], features=["driver_stats:*"], at=dt.datetime(2026, 1, 1, 12))
        assert isinstance(got, dict)
        assert got["f0"] == [2.5, 0.0] and got["f1"] == [25.0, None] and got["n"] == [2, None] and got["ok"] == [True, None]
        assert got["label"] == ["v2.5", None] and got["seen"] == [dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC), None]
        assert type(got["n"][0]) is int and type(got["ok"][0]) is bool
        table = get_online_features(store, registry, {"driver_id": [1, 3]}, service="driver_model", at=dt.datetime(2026, 1, 1, 12), frame=True)
        assert isinstance(table, pd.DataFrame) and list(table.columns) == ["driver_id", "f0", "f1"] and table["f0"].isna().tolist() == [False, True]

    def test_a_crash_midway_keeps_the_old_watermark_and_a_rerun_completes(self, tmp_path: Path, store: OnlineStore,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
        registry = _project(tmp_path, _random_drivers(3, n_keys=20))
        first = T0 + dt.timedelta(hours=30)
        materialize(registry, store, views=["driver_stats"], end=first)
        calls: list[int] = []

        def crash(view: str, rows: int) -> None:
            calls.append(rows)
            raise RuntimeError("killed after the first chunk")

        monkeypatch.setattr(_materialize, "_after_chunk", crash)
        second = T0 + dt.timedelta(hours=60)
        with pytest.raises(RuntimeError, match="killed"):
            materialize(registry, store, views=["driver_stats"], end=second, chunk_rows=3)
        assert calls == [3]
        state = store.state("driver_stats")
        assert state is not None and state.watermark == _materialize.parse_time(first)
        monkeypatch.undo()
        result = materialize(registry, store, views=["driver_stats"], end=second, chunk_rows=3)
        assert result[0].rows > 3
        _assert_agrees_with_the_join(registry, store, list(range(21)), second)

    def test_a_changed_definition_rebuilds_the_view(self, tmp_path: Path, store: OnlineStore) -> None:
        registry = _project(tmp_path, _drivers(BASE))
        materialize(registry, store, views=["driver_stats"], end="2026-01-01T14:00")
        (tmp_path / "features.yaml").write_text(DEFINITIONS.replace("{name: f0, dtype: float32}", "{name: f0, dtype: float32}, {name: extra, dtype: float64}"))
        frame = _drivers(BASE)
        frame["extra"] = [0.5, 1.5, 2.5, 3.5]
        frame.to_parquet(tmp_path / "data" / "driver_stats.parquet")
        registry.apply(load_definitions(tmp_path / "features.yaml"))
        result = materialize(registry, store, views=["driver_stats"], end="2026-01-01T14:00")
        assert result[0].rebuilt and result[0].rows == 2
        got = get_online_features(store, registry, {"driver_id": [1, 2]}, features=["driver_stats:extra"], at=dt.datetime(2026, 1, 1, 14))
        assert got["extra"] == [2.5, 3.5]


class TestSqliteOnlineStore(OnlineStoreChecks):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[OnlineStore]:
        store = open_online_store(f"sqlite:///{tmp_path / 'online' / 'online.db'}")
        yield store
        store.close()

    def test_a_crash_leaves_no_row_of_the_failed_run(self, tmp_path: Path, store: OnlineStore, monkeypatch: pytest.MonkeyPatch) -> None:
        registry = _project(tmp_path, _drivers(BASE))

        def crash(view: str, rows: int) -> None:
            raise RuntimeError("killed")

        monkeypatch.setattr(_materialize, "_after_chunk", crash)
        with pytest.raises(RuntimeError):
            materialize(registry, store, views=["driver_stats"], end="2026-01-01T14:00", chunk_rows=1)
        assert store.state("driver_stats") is None and store.read("driver_stats", ["1", "2"]) == [None, None]


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    registry = _project(tmp_path, _drivers(BASE))
    store = SqliteOnlineStore(f"sqlite:///{tmp_path / 'online.db'}")
    with pytest.raises(InvalidInput, match="no feature view 'nope'; views: driver_stats, zone_stats") as info:
        materialize(registry, store, views=["nope"])
    assert info.value.field == "view"
    with pytest.raises(InvalidInput, match="'soon' is not a time") as info:
        materialize(registry, store, end="soon")
    assert info.value.field == "end"
    with pytest.raises(InvalidInput, match="lacks the join key 'driver_id'") as info:
        get_online_features(store, registry, [{"driver": 1}], service="driver_model")
    assert info.value.field == "driver_id"
    with pytest.raises(InvalidInput, match="valid schemes are sqlite://, redis://") as info:
        open_online_store("mongodb://127.0.0.1/x")
    assert info.value.field == "online_store"
    with pytest.raises(NotFound, match="has not been materialised"):
        age_seconds(store, "driver_stats")
    renamed = DEFINITIONS.replace("{name: demand, dtype: float64}", "{name: f1, dtype: float64}").replace('"zone_stats:demand"', '"zone_stats:f1"')
    (tmp_path / "features.yaml").write_text(renamed)
    registry.apply(load_definitions(tmp_path / "features.yaml"), allow_incompatible=True)
    with pytest.raises(InvalidInput, match="Feature 'f1' of view 'zone_stats' clashes with the feature of view 'driver_stats'"):
        OnlineReader(store, registry, features=["driver_stats:f1", "zone_stats:f1"])
    store.close()


def test_the_cli_materialises_and_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOOP_ONLINE_STORE", raising=False)
    _project(tmp_path, _drivers(BASE))
    Workspace.init(tmp_path / "ws").close()
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(tmp_path / "features.yaml")])
    main([*base, "materialize", "--end", "2026-01-01T14:00:00Z"])
    out = capsys.readouterr().out
    assert "driver_stats: 2 rows moved" in out and "zone_stats: 3 rows moved" in out
    assert (tmp_path / "ws" / "features" / "online.db").is_file()
    main([*base, "materialize", "--view", "driver_stats", "--end", "2026-01-01T14:00:00Z"])
    assert "driver_stats: 0 rows moved" in capsys.readouterr().out
    main([*base, "online", "--features", "driver_stats:f0,zone_stats:demand", "--key", "driver_id=1,city=a,zone=2", "--key", "driver_id=5,city=b,zone=1"])
    got = json.loads(capsys.readouterr().out)
    assert got == [{"driver_id": 1, "city": "a", "zone": 2, "f0": None, "demand": 2.5},  # read now: 11:00 is past the 24 h TTL
                   {"driver_id": 5, "city": "b", "zone": 1, "f0": None, "demand": 3.5}]
    for args, field in ((["materialize", "--view", "nope"], "nope"), (["materialize", "--end", "yesterday"], "--end"),
                        (["online", "--service", "driver_model", "--key", "driver_id"], "--key"),
                        (["online", "--service", "nope", "--key", "driver_id=1"], "nope")):
        with pytest.raises(SystemExit) as exit_:
            main([*base, *args])
        assert exit_.value.code == 2 and field in capsys.readouterr().err
