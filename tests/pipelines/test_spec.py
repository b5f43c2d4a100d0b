"""A pipeline is checked before anything runs: each problem is refused naming the file, the line, the field and a
hint, and the CLI exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.cli._app import main
from mloop.errors import InvalidInput
from mloop.pipelines import Pipeline, PipelineSpec
from mloop.workspace import Workspace


def _refused(project: Path, text: str, *overrides: str) -> str:
    path = project / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as info:
        Pipeline.load(path, overrides)
    return info.value.message


def test_each_problem_is_refused_with_its_file_line_and_a_hint(project: Path) -> None:
    good = (project / "pipeline.yaml").read_text()
    lines = good.splitlines()
    assert Pipeline.load(project / "pipeline.yaml").spec.step("model").kind == "train"
    # An unknown key, on its own line.
    message = _refused(project, good.replace("    train: {input: split.train", "    trian: {input: split.train"))
    assert message.startswith(f"{project / 'bad.yaml'}:10:") and "trian" in message and "mloop schema pipeline" in message
    # A misspelt input: the line of the field, the outputs that would fit.
    message = _refused(project, good.replace("input: split.train", "input: split.trian"))
    assert message.startswith(f"{project / 'bad.yaml'}:10:") and "no step output 'split.trian'" in message and "split.train" in message
    # An input of the wrong type.
    message = _refused(project, good.replace("model: model, input: split.test", "model: split.test, input: split.test"))
    assert ":12:" in message and "'split.test' is a table, but model takes a model" in message and "Hint: outputs of type model: model" in message
    # A cycle.
    cyclic = good.replace("call: {input: data,", "call: {input: check,")
    message = _refused(project, cyclic)
    assert "input takes a table" in message  # metrics into a table field is caught first …
    message = _refused(project, good.replace("    register: {model: model, name: toy, alias: champion, after: [check]}",
                                             "    register: {model: model, name: toy, after: [publish]}"))
    assert "cannot take its own output 'publish'" in message and ":14:" in message
    message = _refused(project, good + "  - name: loop_a\n    call: {input: loop_b, callable: 'x:y'}\n"
                                       "  - name: loop_b\n    call: {input: loop_a, callable: 'x:y'}\n")
    assert "cycle" in message and "loop_a" in message
    # A gate that is not one, a step of two kinds, a name used twice, bad YAML, an import that fails.
    assert "is not a gate" in _refused(project, good.replace('gates: ["auc >= 0.6"]', 'gates: ["auc is good"]'))
    assert "names 'rmse', which is not among the metrics" in _refused(project, good.replace('gates: ["auc >= 0.6"]', 'gates: ["rmse < 2"]'))
    assert "exactly one of" in _refused(project, good.replace("    ingest: {path: toy.parquet}", "    ingest: {path: toy.parquet}\n    split: {input: x}"))
    assert "used more than once" in _refused(project, good.replace("name: feats", "name: data"))
    assert _refused(project, "name: toy\nsteps: [\n").startswith(f"{project / 'bad.yaml'}:3:")
    message = _refused(project, good.replace(":features", ":featurez"))
    assert ":6:" in message and "has no function 'featurez'" in message
    message = _refused(project, good.replace("path: toy.parquet", "path: missing.parquet"))
    assert message.startswith(f"{project / 'bad.yaml'}:4:") and "no file at" in message and "missing.parquet" in message
    assert "not valid YAML" in _refused(project, good, 'model.params.max_iter=[1, 2')
    assert len(lines) == 14


def test_overrides_set_a_step_s_fields_and_a_wrong_one_is_named(project: Path) -> None:
    loaded = Pipeline.load(project / "pipeline.yaml", ["model.params.max_iter=7", "check.gates=[]", "model.cache=false"])
    model = loaded.spec.step("model")
    assert model.section.params == {"max_iter": 7} and not model.cache and loaded.spec.step("check").section.gates == []  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="no step 'modle'"):
        Pipeline.load(project / "pipeline.yaml", ["modle.params.max_iter=7"])
    assert "split.max_iter: Extra inputs are not permitted" in _refused(project, (project / "pipeline.yaml").read_text(), "split.max_iter=3")


def test_the_cli_exits_2_naming_the_line_and_prints_the_schema(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = project / "bad.yaml"
    bad.write_text((project / "pipeline.yaml").read_text().replace("test: 0.25", "test: 2"))
    with pytest.raises(SystemExit) as exit_:
        main(["--workspace", str(project / ".mloop"), "run", str(bad)])
    assert exit_.value.code == 2
    assert f"{bad}:8: steps.2.split.test" in capsys.readouterr().err.replace("\n", "")
    bad.write_text((project / "pipeline.yaml").read_text().replace("params: {max_iter: 20}", 'params: {max_iter: 20}, callable: "nowhere:fit"'))
    Workspace.init(project / ".mloop").close()
    with pytest.raises(SystemExit) as exit_:  # the code is checked when a step will run: still before anything runs
        main(["--workspace", str(project / ".mloop"), "run", str(bad)])
    assert exit_.value.code == 2 and "model).train.callable: cannot import 'nowhere'" in capsys.readouterr().err.replace("\n", "")
    assert not (project / ".mloop" / "pipelines" / "cache").exists() or not any((project / ".mloop" / "pipelines" / "cache").iterdir())
    main(["schema", "pipeline"])
    import json

    schema = json.loads(capsys.readouterr().out)
    assert schema == PipelineSpec.model_json_schema(by_alias=True) and "register" in schema["$defs"]["Step"]["properties"]
