from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mloop.data import fingerprint, read_table
from mloop.errors import InvalidInput, NotFound


def test_fingerprint_tracks_content_schema_and_order() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    base = fingerprint(frame)
    assert base.rows == 3 and base.schema == {"a": "float64", "b": "str"}
    assert fingerprint(frame.copy()).sha256 == base.sha256
    assert fingerprint(frame.iloc[::-1]).sha256 != base.sha256
    assert fingerprint(frame.rename(columns={"a": "c"})).sha256 != base.sha256
    assert fingerprint(frame.astype({"a": "float32"})).sha256 != base.sha256


def test_read_table_by_extension(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert read_table(tmp_path / "t.parquet").equals(frame)
    assert read_table(tmp_path / "t.csv").equals(frame)
    with pytest.raises(InvalidInput, match="unknown extension '.xlsx'"):
        (tmp_path / "t.xlsx").write_text("x")
        read_table(tmp_path / "t.xlsx")
    with pytest.raises(NotFound, match="does not exist"):
        read_table(tmp_path / "nope.csv")
