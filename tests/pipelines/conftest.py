"""A small project folder: a table, a helper module and a pipeline over them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import toy_frame

HELPERS = '''import pandas as pd


FACTOR = 2.0


def scale(x):
    return x * FACTOR


def features(frame: pd.DataFrame, factor: float = 1.0) -> pd.DataFrame:
    return frame.assign(x1b=scale(frame["x1"]) * factor)


def untouched(frame: pd.DataFrame) -> pd.DataFrame:
    return frame
'''

PIPELINE = """name: toy
steps:
  - name: data
    ingest: {path: toy.parquet}
  - name: feats
    call: {input: data, callable: "MODULE:features", params: {factor: 1.5}}
  - name: split
    split: {input: feats, method: stratified, by: y, test: 0.25}
  - name: model
    train: {input: split.train, target: y, params: {max_iter: 20}}
  - name: check
    evaluate: {model: model, input: split.test, target: y, metrics: [auc, accuracy], gates: ["auc >= 0.6"]}
  - name: publish
    register: {model: model, name: toy, alias: champion, after: [check]}
"""


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """``tmp_path/project`` with ``toy.parquet``, a helpers module of a name unique to the test, and ``pipeline.yaml``."""
    module = f"helpers_{abs(hash(request.node.name)) % 10**8}"
    folder = tmp_path / "project"
    folder.mkdir()
    toy_frame(1200, seed=0).to_parquet(folder / "toy.parquet")
    (folder / f"{module}.py").write_text(HELPERS)
    (folder / "pipeline.yaml").write_text(PIPELINE.replace("MODULE", module))
    (folder / "module.txt").write_text(module)
    (folder / f"other_{module}.py").write_text("def untouched(frame):\n    return frame\n")
    yield folder
    sys.modules.pop(module, None)
    sys.modules.pop(f"other_{module}", None)
