"""Batch scoring: every row scored in chunks through the server's runtime, in order, with the model's version on each
row, the same with worker processes and from CSV; a file that does not fit the signature is refused before any
output exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.cli._app import main
from mloop.errors import InvalidInput
from mloop.pipelines._score import score_file
from mloop.workspace import Workspace
from tests.conftest import TOY_SPEC, toy_frame


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    frame = toy_frame(5000, seed=11).assign(id=np.arange(5000))
    frame.loc[::97, "x2"] = np.nan  # missing values pass through as the server takes them
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_csv(tmp_path / "in.csv", index=False)
    return frame


@pytest.mark.slow
def test_every_row_is_scored_in_order_with_the_version_and_workers_agree(shared_deployed: Workspace, table: pd.DataFrame,
                                                                         tmp_path: Path) -> None:
    expected = shared_deployed.registry.load("toy", "champion").score(table[TOY_SPEC.features])
    one = score_file(shared_deployed, "toy@champion", tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=700, keep=["id"])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert one.rows == 5000 and one.chunks == 8 and list(out.columns) == ["id", "score", "model_name", "model_version"]
    assert out["id"].tolist() == list(range(5000)) and set(out["model_version"]) == {one.version} and set(out["model_name"]) == {"toy"}
    assert np.allclose(out["score"], expected, atol=1e-5)
    two = score_file(shared_deployed, f"toy:{one.version}", tmp_path / "in.csv", tmp_path / "out.arrow", chunk_rows=600, workers=2)
    assert two.rows == 5000 and two.chunks == 9  # a CSV in chunks of --chunk-rows too, written in their order
    import pyarrow as pa

    with pa.memory_map(str(tmp_path / "out.arrow")) as source:
        arrow = pa.ipc.open_file(source).read_all().to_pandas()
    assert np.allclose(arrow["score"], out["score"], atol=1e-9)


def test_a_file_that_does_not_fit_the_signature_is_refused_before_any_output(shared_deployed: Workspace, table: pd.DataFrame,
                                                                             tmp_path: Path) -> None:
    table.drop(columns=["x3"]).to_parquet(tmp_path / "short.parquet")
    table.assign(x1=table["x1"].astype(str)).to_parquet(tmp_path / "text.parquet")
    cases = {"short.parquet": r"lacks column\(s\) \['x3'\]", "text.parquet": "Column 'x1' is (large_)?string in the input, but toy v1 takes double"}
    for name, message in cases.items():
        with pytest.raises(InvalidInput, match=message):
            score_file(shared_deployed, "toy", tmp_path / name, tmp_path / "never.parquet")
        assert not (tmp_path / "never.parquet").exists()
    with pytest.raises(InvalidInput, match="--keep: the input has no column"):
        score_file(shared_deployed, "toy", tmp_path / "in.parquet", tmp_path / "never.parquet", keep=["nope"])
    for ref, code in (("toy:abc", 2), ("toy", 2)):
        with pytest.raises(SystemExit) as exit_:
            main(["--workspace", str(shared_deployed.root), "score", ref, str(tmp_path / "short.parquet"), "-o", str(tmp_path / "x.txt")])
        assert exit_.value.code == code
    assert not (tmp_path / "x.txt").exists()
