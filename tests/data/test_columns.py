"""``read_columns``: Arrow alone, the form the drift statistics read; every format and null gives what pandas gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mloop.data import Coded, as_columns, read_columns
from mloop.errors import InvalidInput, NotFound


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({
        "x": rng.normal(size=n),
        "k": rng.poisson(3, n),
        "flag": rng.random(n) < 0.3,
        "city": rng.choice(["oslo", "lima", "pune"], n).astype(object),
    })
    frame.loc[::7, "x"] = np.nan
    frame.loc[::11, "city"] = None
    frame["kind"] = pd.Categorical(rng.choice(["a", "b"], n))
    frame["nullable"] = pd.array(np.where(np.arange(n) % 5 == 0, None, np.arange(n)), dtype="Int64")
    return frame


def _decoded(column: np.ndarray | Coded) -> list[object]:
    if isinstance(column, Coded):
        return [None if c < 0 else column.labels[c] for c in column.codes]
    return [None if isinstance(v, float) and np.isnan(v) else v for v in column.tolist()]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".feather"])
def test_every_format_reads_as_pandas_reads_it(tmp_path: Path, suffix: str) -> None:
    frame = _frame()
    path = tmp_path / f"t{suffix}"
    {".parquet": frame.to_parquet, ".csv": lambda p: frame.to_csv(p, index=False), ".feather": frame.to_feather}[suffix](path)
    ours = read_columns(path)
    theirs = as_columns(pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path) if suffix == ".parquet" else pd.read_feather(path))
    assert list(ours) == list(frame.columns)
    for name in frame.columns:
        assert _decoded(ours[name]) == _decoded(theirs[name]), name
    assert isinstance(ours["city"], Coded) and isinstance(ours["flag"], Coded) and ours["x"].dtype == np.float64
    assert ours["k"].dtype == np.int64 and ours["nullable"].dtype == np.float64  # nulls in integers become NaN


def test_parquet_with_several_row_groups_and_dictionaries(tmp_path: Path) -> None:
    """Chunks may carry different dictionaries; the codes index one set of labels."""
    first = pa.table({"c": pa.array(["a", "b", None]).dictionary_encode(), "x": pa.array([1.0, None, 3.0])})
    second = pa.table({"c": pa.array(["c", "a", "c"]).dictionary_encode(), "x": pa.array([4.0, 5.0, 6.0])})
    path = tmp_path / "groups.parquet"
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first)
        writer.write_table(second)
    got = read_columns(path)
    assert _decoded(got["c"]) == ["a", "b", None, "c", "a", "c"]
    assert _decoded(got["x"]) == [1.0, None, 3.0, 4.0, 5.0, 6.0]


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        read_columns(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match="Cannot read .*bad.parquet.* as parquet") as info:
        read_columns(tmp_path / "bad.parquet")
    assert info.value.field == "path"
    with pytest.raises(InvalidInput, match="unknown extension '.xlsx'"):
        (tmp_path / "t.xlsx").write_text("x")
        read_columns(tmp_path / "t.xlsx")
