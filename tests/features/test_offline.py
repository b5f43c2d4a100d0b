"""Training joins from the applied definitions: ``mloop features historical`` (and ``get_historical_features``) give
each entity row, in order, the values known at its time through a service or named features; bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mloop.cli._app import main
from mloop.features import FeatureRegistry, get_historical_features
from mloop.workspace import Workspace
from tests.features.test_definitions import DEFINITIONS

ts = pd.to_datetime


def _project(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "data").mkdir()
    pd.DataFrame({
        "driver_id": [1, 1, 1, 2],
        "event_timestamp": ts(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-01 11:00", "2026-01-01 08:00"]),
        "created": ts(["2026-01-01 10:00", "2026-01-01 11:00", "2026-01-01 13:00", "2026-01-01 08:00"]),  # a correction known at 13:00
        "f0": [1.0, 2.0, 3.0, 9.0], "f1": [10.0, 20.0, 30.0, 90.0],
    }).to_parquet(tmp_path / "data" / "driver_stats.parquet")
    (tmp_path / "features.yaml").write_text(DEFINITIONS)
    entities = tmp_path / "entities.parquet"
    pd.DataFrame({"driver_id": [1, 2, 1, 1, 2], "event_timestamp": ts(["2026-01-01 12:00", "2026-01-02 09:00", "2026-01-01 14:00",
                                                                         "2026-01-01 09:00", "2026-01-01 09:00"])}).to_parquet(entities)
    return tmp_path / "features.yaml", entities


def test_the_join_from_definitions_through_the_cli_and_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definitions, entities = _project(tmp_path)
    Workspace.init(tmp_path / "ws").close()
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(definitions)])
    main([*base, "historical", "--entities", str(entities), "--service", "driver_model", "-o", str(tmp_path / "out.parquet")])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["driver_id", "event_timestamp", "f0", "f1"]
    # 12:00 sees the 11:00 row written at 11:00 (its correction came at 13:00); 14:00 sees the correction; driver 2 at 09:00
    # the next day is past the 24 h TTL; 09:00 is before driver 1's first row
    assert out["f0"].tolist()[:3] == [2.0, pytest.approx(float("nan"), nan_ok=True), 3.0] and out["f0"].isna().tolist() == [False, True, False, True, False]
    assert out["f1"].tolist()[4] == 90.0
    main([*base, "historical", "--entities", str(entities), "--features", "driver_stats:f0", "--as-of", "event", "-o", str(tmp_path / "ev.parquet")])
    assert pd.read_parquet(tmp_path / "ev.parquet")["f0"].tolist()[0] == 3.0  # Feast's rule: the correction leaks into 12:00
    for args, field in ((["--service", "driver_model", "--as-of", "later"], "--as-of"), (["--features", "driver_stats:f7"], "f7"),
                        (["--features", ","], "--features")):
        with pytest.raises(SystemExit) as exit_:
            main([*base, "historical", "--entities", str(entities), "-o", str(tmp_path / "x.parquet"), *args])
        assert exit_.value.code == 2 and field in capsys.readouterr().err
    registry = FeatureRegistry(Workspace.open(tmp_path / "ws").store)
    frame = get_historical_features(registry, pd.read_parquet(entities), features=["driver_stats:*"], full_names=True)
    assert frame is not None and list(frame.columns)[2:] == ["driver_stats__f0", "driver_stats__f1"]


def test_a_csv_source_joins_like_parquet_and_a_missing_one_exits_2_naming_the_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definitions, entities = _project(tmp_path)
    pd.read_parquet(tmp_path / "data" / "driver_stats.parquet").to_csv(tmp_path / "data" / "driver_stats.csv", index=False)
    Workspace.init(tmp_path / "ws").close()
    base = ["--workspace", str(tmp_path / "ws"), "features"]
    main([*base, "apply", str(definitions)])
    main([*base, "historical", "--entities", str(entities), "--service", "driver_model", "-o", str(tmp_path / "parquet.parquet")])
    definitions.write_text(DEFINITIONS.replace("data/driver_stats.parquet", "data/driver_stats.csv"))
    main([*base, "apply", str(definitions)])
    main([*base, "historical", "--entities", str(entities), "--service", "driver_model", "-o", str(tmp_path / "csv.parquet")])
    from_csv, from_parquet = pd.read_parquet(tmp_path / "csv.parquet"), pd.read_parquet(tmp_path / "parquet.parquet")
    assert from_csv["f0"].dtype == "float32" and from_csv.equals(from_parquet.astype({"f0": "float32", "f1": "float32"}))
    (tmp_path / "data" / "driver_stats.csv").unlink()
    with pytest.raises(SystemExit) as exit_:
        main([*base, "historical", "--entities", str(entities), "--service", "driver_model", "-o", str(tmp_path / "x.parquet")])
    assert exit_.value.code == 2 and "Cannot read feature view 'driver_stats' (source.path)" in capsys.readouterr().err
