"""Ingest reads every format the spec names — Parquet, CSV, Arrow/Feather and HDF5 (a ``key`` naming the table) —
into the same table; a missing HDF5 key is an error naming the field; a train step takes any estimator class."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mloop.errors import InvalidInput
from mloop.pipelines._spec import Ingest, Train
from mloop.pipelines._steps import ingest, train
from tests.conftest import toy_frame


def test_every_format_reads_the_same_table(tmp_path: Path) -> None:
    frame = toy_frame(200).drop(columns=["color"])
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_feather(tmp_path / "t.feather")
    frame.to_hdf(tmp_path / "t.h5", key="flights")
    for name, key in (("t.parquet", None), ("t.csv", None), ("t.feather", None), ("t.h5", "flights")):
        done = ingest(Ingest(path=name, key=key), tmp_path, "data.ingest")
        pd.testing.assert_frame_equal(done.outputs["table"].reset_index(drop=True), frame, check_dtype=False)
        assert done.params["rows"] == 200
    with pytest.raises(InvalidInput, match=r"data.ingest.key: t.h5 has no single table 'nope'.*its tables: \['flights'\]"):
        ingest(Ingest(path="t.h5", key="nope"), tmp_path, "data.ingest")


@pytest.mark.parametrize("estimator", ["lightgbm:LGBMClassifier", "xgboost:XGBClassifier", "sklearn.ensemble:RandomForestClassifier"])
def test_gradient_boosting_and_forest_classes_train(estimator: str) -> None:
    frame = toy_frame(300).drop(columns=["color"])
    done = train(Train(input="t", target="y", callable=estimator, params={"n_estimators": 10, **({"verbose": -1} if "lightgbm" in estimator else {})}),
                 frame, "model.train")
    model = done.outputs["model"]
    assert model.predict_proba(frame.drop(columns=["y"])).shape == (300, 2)
