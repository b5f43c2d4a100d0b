"""Feature definitions: the issue's shape applies and is stored with versions; an unchanged file changes nothing, an
added feature is a compatible new version, a removed or retyped one is refused unless asked for; every problem in a
file names its line and field; references resolve to the views and features to join."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mloop.cli._app import main
from mloop.errors import InvalidInput, NotFound
from mloop.features import FeatureRegistry, load_definitions
from mloop.workspace import Workspace

DEFINITIONS = """entities: [{name: driver, join_keys: [driver_id]}]
feature_views:
  - name: driver_stats
    entities: [driver]
    source: {path: data/driver_stats.parquet, timestamp: event_timestamp, created_timestamp: created}
    ttl: 24h
    features: [{name: f0, dtype: float32}, {name: f1, dtype: float32}]
feature_services: [{name: driver_model, features: ["driver_stats:f0", "driver_stats:f1"]}]
"""


@pytest.fixture
def registry(tmp_path: Path) -> FeatureRegistry:
    return FeatureRegistry(Workspace.init(tmp_path / "ws").store)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "features.yaml"
    path.write_text(text)
    return path


def test_the_issue_s_shape_applies_with_versions_and_incompatible_changes_are_refused(tmp_path: Path, registry: FeatureRegistry) -> None:
    defs = load_definitions(_write(tmp_path, DEFINITIONS))
    view = defs.feature_views[0]
    assert view.ttl == dt.timedelta(hours=24) and view.source.path == str((tmp_path / "data/driver_stats.parquet").resolve())
    assert [(c.kind, c.name, c.version, c.action) for c in registry.apply(defs)] == [
        ("entity", "driver", 1, "created"), ("view", "driver_stats", 1, "created"), ("service", "driver_model", 1, "created")]
    assert {c.action for c in registry.apply(load_definitions(_write(tmp_path, DEFINITIONS)))} == {"unchanged"}

    added = DEFINITIONS.replace("{name: f1, dtype: float32}]", "{name: f1, dtype: float32}, {name: f2, dtype: int64}]")
    changes = {c.name: c for c in registry.apply(load_definitions(_write(tmp_path, added)))}
    assert (changes["driver_stats"].action, changes["driver_stats"].version) == ("updated", 2)  # a compatible change: a new version
    assert registry.store.features.latest("view", "driver_stats").schema["features"] == {"f0": "float32", "f1": "float32", "f2": "int64"}  # type: ignore[union-attr]

    broken = added.replace("{name: f0, dtype: float32}, ", "").replace("dtype: int64", "dtype: float64").replace('"driver_stats:f0", ', "")
    with pytest.raises(InvalidInput, match=r"feature view 'driver_stats' \(version 2\): feature 'f0' removed; feature 'f2' int64 → float64"):
        registry.apply(load_definitions(_write(tmp_path, broken)))
    assert registry.store.features.latest("view", "driver_stats").version == 2  # type: ignore[union-attr]  # nothing applied
    forced = {c.name: c for c in registry.apply(load_definitions(_write(tmp_path, broken)), allow_incompatible=True)}
    assert forced["driver_stats"].version == 3 and "f0" in forced["driver_stats"].note
    assert [r.version for r in registry.store.features.history("view", "driver_stats")] == [1, 2, 3]


@pytest.mark.parametrize(("edit", "line", "message"), [
    (("ttl: 24h", "ttl: 24 hours"), 6, "ttl.*is not a duration"),
    (("ttl: 24h", "ttl: -1"), 6, "a TTL must be positive"),
    (("entities: [driver]", "entities: [drivers]"), 4, r"driver_stats\).entities: no entity 'drivers'. Hint: entities: driver"),
    (('"driver_stats:f1"', '"driver_stats:f9"'), 8, "view 'driver_stats' has no feature 'f9'. Hint: its features: f0, f1"),
    (('"driver_stats:f1"', '"stats:f1"'), 8, "no feature view 'stats'"),
    (("dtype: float32}]", "dtype: float33}]"), 7, "dtype"),
    (("    ttl: 24h", "    tll: 24h"), 6, "tll.*Hint: check its spelling"),
    (("source: {path: data/driver_stats.parquet, ", "source: {"), 5, "give exactly one of path"),
])
def test_each_problem_names_its_line_and_field(tmp_path: Path, edit: tuple[str, str], line: int, message: str) -> None:
    path = _write(tmp_path, DEFINITIONS.replace(*edit))
    with pytest.raises(InvalidInput, match=rf"features.yaml:{line}: .*{message}"):
        load_definitions(path)


def test_a_query_reads_relative_paths_from_the_file_s_folder_and_a_path_view_s_document_is_unchanged(tmp_path: Path) -> None:
    query = 'source: {query: "SELECT * FROM read_parquet(\'stats/*.parquet\')", '
    view = load_definitions(_write(tmp_path, DEFINITIONS.replace("source: {path: data/driver_stats.parquet, ", query))).feature_views[0]
    assert view.source.folder == str(tmp_path.resolve()) and view.source.path is None
    elsewhere = DEFINITIONS.replace("source: {path: data/driver_stats.parquet, ", query + "folder: data, ")
    assert load_definitions(_write(tmp_path, elsewhere)).feature_views[0].source.folder == str((tmp_path / "data").resolve())
    path_view = load_definitions(_write(tmp_path, DEFINITIONS)).feature_views[0]
    assert "folder" not in path_view.model_dump(mode="json")["source"]  # documents applied before folders existed stay equal
    with pytest.raises(InvalidInput, match="features.yaml:5: .*folder is where a query's relative file paths are read from"):
        load_definitions(_write(tmp_path, DEFINITIONS.replace("source: {path: data/driver_stats.parquet, ", "source: {path: x.csv, folder: data, ")))


def test_references_resolve_to_views_and_features(tmp_path: Path, registry: FeatureRegistry) -> None:
    registry.apply(load_definitions(_write(tmp_path, DEFINITIONS)))
    [(view, names)] = registry.resolve(service="driver_model")
    assert view.name == "driver_stats" and names == ["f0", "f1"]
    assert registry.resolve(features=["driver_stats:*"])[0][1] == ["f0", "f1"]
    assert registry.resolve(features=["driver_stats:f1", "driver_stats:f1"])[0][1] == ["f1"]
    with pytest.raises(InvalidInput, match="has no feature 'f7'; it has f0, f1"):
        registry.resolve(features=["driver_stats:f7"])
    with pytest.raises(InvalidInput, match="names no applied view"):
        registry.resolve(features=["f0"])
    with pytest.raises(NotFound, match="No feature service 'nope'"):
        registry.resolve(service="nope")


def test_the_cli_applies_lists_and_refuses_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    Workspace.init(tmp_path / "ws").close()
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(_write(tmp_path, DEFINITIONS))])
    assert "view driver_stats: created, version 1" in capsys.readouterr().out
    main([*base, "list"])
    out = capsys.readouterr().out
    assert "2 features of driver, ttl 1d; never materialised" in out and "keys driver_id" in out and "reads driver_stats" in out
    main([*base, "list", "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert listed["entities"] == {"driver": ["driver_id"]} and listed["services"] == {"driver_model": ["driver_stats"]}
    assert [(v["name"], v["features"], v["ttl_seconds"], v["materialized"]) for v in listed["views"]] == [
        ("driver_stats", ["f0", "f1"], 86400.0, False)]
    with pytest.raises(SystemExit) as exit_:
        main([*base, "apply", str(_write(tmp_path, DEFINITIONS.replace("{name: f0, dtype: float32}, ", "").replace('"driver_stats:f0", ', "")))])
    assert exit_.value.code == 2 and "feature 'f0' removed" in capsys.readouterr().err
