"""Validate and features steps: broken rules and a drifted table stop the run, naming every rule and column; a table
that passes flows on (coerced); feature engineering (terms, selection by mutual information or L1) fit on the
training table, and the registered model takes the raw columns; misuse is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mloop.cli._app import main
from mloop.data._validate import ColumnRule, check_table
from mloop.errors import InvalidInput
from mloop.pipelines import Pipeline, Runner
from mloop.pipelines._cache import Artifacts
from mloop.workspace import Workspace
from tests.conftest import toy_frame

VALIDATE = """name: checked
steps:
  - name: data
    ingest: {path: toy.parquet}
  - name: reference
    ingest: {path: reference.parquet}
  - name: check
    validate:
      input: data
      reference: reference
      drift: {alpha: 0.01, share: 0.3}
      columns:
        x1: {dtype: float, min: -10, max: 10, nullable: false}
        color: {isin: [red, green, blue]}
        y: {dtype: float, coerce: true}
  - name: model
    train: {input: check, target: y, params: {max_iter: 10}}
"""


def _statuses(run: object) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}  # type: ignore[attr-defined]


def test_check_table_names_every_broken_rule() -> None:
    frame = pd.DataFrame({"a": [1.0, -2.0, np.nan], "b": ["x", "y", "z"], "c": [1, 1, 2], "e": [0, 0, 0]})
    rules = {"a": ColumnRule(min=0, nullable=False), "b": ColumnRule(isin=["x", "y"]), "c": ColumnRule(unique=True),
             "d": ColumnRule(dtype="int")}
    _, failures = check_table(frame, rules, strict=True)
    said = sorted(str(f) for f in failures)
    assert said == sorted(["a: not_nullable failed for 1 value(s) (e.g. nan)", "a: greater_than_or_equal_to(0.0) failed for 1 value(s) (e.g. -2.0)",
                           "b: isin(['x', 'y']) failed for 1 value(s) (e.g. 'z')", "c: field_uniqueness failed for 2 value(s) (e.g. 1, 1)",
                           "d: missing (the column is required)", "e: not declared (strict allows only the named columns)"])
    _, patterned = check_table(pd.DataFrame({"tail": ["N123AB", "n1", None, "N9X-"]}), {"tail": ColumnRule(pattern="N[0-9A-Z]+")})
    assert [str(f) for f in patterned] == [r"tail: str_matches('(?:N[0-9A-Z]+)\Z') failed for 2 value(s) (e.g. 'n1', 'N9X-')"]  # whole values
    coerced, none = check_table(frame[["c"]], {"c": ColumnRule(dtype="float", coerce=True)})
    assert none == [] and coerced["c"].dtype == np.float64
    with pytest.raises(ValueError, match="min"):
        ColumnRule(min=2, max=1)


def test_a_column_with_no_values_fails_the_drift_check_as_a_finding() -> None:
    from mloop.pipelines._spec import Validate
    from mloop.pipelines._steps import validate

    reference, current = toy_frame(300, seed=1), toy_frame(300, seed=2).assign(x2=np.nan)
    done = validate(Validate(input="t", reference="r"), current, reference, "check.validate")
    assert done.stop is not None and "the drift check could not run" in done.stop and "x2" in done.stop
    assert done.outputs["report"]["passed"] is False


@pytest.mark.slow
def test_validation_stops_the_run_on_broken_rules_and_on_drift_and_passes_clean_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    toy_frame(800, seed=1).to_parquet(folder / "reference.parquet")
    toy_frame(800, seed=2).to_parquet(folder / "toy.parquet")
    (folder / "pipeline.yaml").write_text(VALIDATE)
    ws = Workspace.init(tmp_path / "ws")
    clean = Runner(ws).run(Pipeline.load(folder / "pipeline.yaml"))
    assert clean.ok, clean.steps
    check = next(s for s in clean.steps if s.name == "check")
    table = Artifacts.get(Runner(ws).cache.get(str(check.key))["outputs"]["table"])  # type: ignore[index]
    assert table["y"].dtype == np.float64  # coerced on its way through

    bad = toy_frame(800, seed=3)
    bad.loc[:4, "x1"] = 50.0
    bad.loc[5, "color"] = "purple"
    bad.to_parquet(folder / "toy.parquet")
    broken = Runner(ws).run(Pipeline.load(folder / "pipeline.yaml"))
    assert _statuses(broken)["check"] == "gate_failed" and _statuses(broken)["model"] == "skipped"
    reason = next(s.reason for s in broken.steps if s.name == "check")
    assert "x1: less_than_or_equal_to(10.0) failed for 5 value(s)" in reason and "isin" in reason and "'purple'" in reason

    toy_frame(800, seed=4, shift=0.8).to_parquet(folder / "toy.parquet")  # every numeric column moved by 0.8 σ
    drifted = Runner(ws).run(Pipeline.load(folder / "pipeline.yaml"))
    reason = next(s.reason for s in drifted.steps if s.name == "check")
    assert _statuses(drifted)["check"] == "gate_failed" and "drifted from the reference" in reason and "x1 (p=" in reason
    assert "color" not in reason.split("drifted from the reference")[1]  # the categorical did not move
    with pytest.raises(SystemExit) as exit_:
        main(["--workspace", str(tmp_path / "ws"), "run", str(folder / "pipeline.yaml")])
    assert exit_.value.code == 1 and "drifted" in capsys.readouterr().out


def _features_project(folder: Path, select: str) -> Path:
    rng = np.random.default_rng(0)
    n = 1500
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(8)})
    logit = 2.0 * frame["x0"] - 1.5 * frame["x1"] + 1.2 * frame["x0"] * frame["x1"]
    frame["kind"] = rng.choice(["a", "b"], size=n).astype(object)
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    folder.mkdir()
    frame.to_parquet(folder / "data.parquet")
    (folder / "pipeline.yaml").write_text(f"""name: feats
steps:
  - name: data
    ingest: {{path: data.parquet}}
  - name: split
    split: {{input: data, method: stratified, by: y, test: 0.3}}
  - name: terms
    features:
      input: split.train
      target: y
      transformers: [{{callable: "sklearn.preprocessing:StandardScaler"}}]
      polynomial: {{degree: 2, interaction_only: true}}
      select: {select}
  - name: model
    train: {{input: terms.table, features: terms.transform, target: y, params: {{max_iter: 30}}}}
  - name: check
    evaluate: {{model: model, input: split.test, target: y, gates: ["auc >= 0.8"]}}
  - name: publish
    register: {{model: model, name: feats, after: [check]}}
""")
    return folder / "pipeline.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("select", ["{method: mutual_info, k: 4}", "{method: l1, strength: 20}"])
def test_feature_selection_keeps_the_signal_and_the_registered_model_takes_raw_columns(tmp_path: Path, select: str) -> None:
    ws = Workspace.init(tmp_path / "ws")
    run = Runner(ws).run(Pipeline.load(_features_project(tmp_path / "p", select)))
    assert run.ok, [(s.name, s.reason) for s in run.steps]
    terms = ws.tracker.client.get_run(str(next(s.run_id for s in run.steps if s.name == "terms")))
    kept = set(terms.data.params["kept"].split(", "))
    assert {"x0", "x1", "x0 x1"} <= kept and len(kept) <= 8 and terms.data.params["columns_in"] == "8"  # 36 terms made, the signal kept
    loaded = ws.registry.load("feats", 1)
    raw = pd.read_parquet(tmp_path / "p" / "data.parquet").drop(columns=["y"]).head(50)
    assert sorted(loaded.feature_names) == sorted(raw.columns)  # the signature is the raw columns, not the made terms
    assert np.asarray(loaded.predict(raw)).shape == (50, 2)


def test_an_estimator_class_is_a_train_callable() -> None:
    from mloop.pipelines._spec import Train
    from mloop.pipelines._steps import train

    frame = toy_frame(300).drop(columns=["color"])
    done = train(Train(input="t", target="y", callable="sklearn.linear_model:LogisticRegression", params={"C": 0.5}), frame, "model.train")
    assert type(done.outputs["model"]).__name__ == "LogisticRegression" and done.outputs["model"].C == 0.5
    assert list(done.outputs["model"].feature_names_in_) == ["x1", "x2", "x3"]
    with pytest.raises(InvalidInput, match="model.train.callable: sklearn.linear_model:LogisticRegression does not take these params"):
        train(Train(input="t", target="y", callable="sklearn.linear_model:LogisticRegression", params={"nope": 1}), frame, "model.train")


def test_feature_fits_refuse_what_cannot_work_and_count_what_transformers_make() -> None:
    from mloop.pipelines._features import fit
    from mloop.pipelines._spec import Features

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=600) for i in range(4)})
    frame["y"] = np.digitize(frame["x0"] + 0.3 * rng.normal(size=600), [-0.5, 0.5])  # three classes
    _, table, record = fit(Features(input="t", target="y", select={"method": "l1", "strength": 5}), frame, "f")
    assert record["task"] == "classification" and "x0" in record["kept"] and list(table.columns)[-1] == "y"
    with pytest.raises(InvalidInput, match="f.select.strength: the L1 model kept none of the columns") as error:
        fit(Features(input="t", target="y", select={"method": "l1", "strength": 1e6}), frame, "f")
    assert error.value.field == "f.select.strength"
    splined = Features(input="t", target="y", transformers=[{"callable": "sklearn.preprocessing:SplineTransformer"}], select={"method": "mutual_info", "k": 5})
    assert fit(splined, frame, "f")[2]["columns_out"] == 5  # k of the 28 spline columns, not "all" because 4 inputs came in
    with pytest.raises(InvalidInput, match="f.target: 1 rows have no 'y'"):
        fit(Features(input="t", target="y", select={"method": "mutual_info", "k": 2}), frame.assign(y=frame["y"].where(frame.index != 3)), "f")
    counts = frame.assign(y=(frame["x0"] * 100).round().astype(int))
    assert fit(Features(input="t", target="y", select={"method": "l1", "strength": 5}), counts, "f")[2]["task"] == "regression"


def test_features_misuse_is_refused_before_anything_runs(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    path = _features_project(folder, "{method: mutual_info, k: 4}")
    text = path.read_text()
    path.write_text(text.replace("input: terms.table, features", "input: split.train, features"))
    with pytest.raises(InvalidInput, match=r"pipeline.yaml:\d+: .*features: the model is trained on 'split.train'.*Hint: set input to terms.table"):
        Pipeline.load(path)
    path.write_text(text.replace("{method: mutual_info, k: 4}", "{method: mutual_info}"))
    with pytest.raises(InvalidInput, match=r"pipeline.yaml:\d+: .*select.*k: mutual_info selection needs k"):
        Pipeline.load(path)
    path.write_text(text.replace('"sklearn.preprocessing:StandardScaler"', '"sklearn.linear_model:LinearRegression"'))
    with pytest.raises(InvalidInput, match=r"pipeline.yaml:\d+: .*terms\).features.transformers\[0\].callable: .*is not a transformer"):
        Pipeline.load(path)
    path.write_text(VALIDATE.replace("      reference: reference\n", ""))
    with pytest.raises(InvalidInput, match="drift: needs a reference"):
        Pipeline.load(path)
    path.write_text(VALIDATE.replace("nullable: false", "nulable: false"))
    with pytest.raises(InvalidInput, match=r"pipeline.yaml:13: .*nulable"):
        Pipeline.load(path)
