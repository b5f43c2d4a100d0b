"""Reproduction: a run executed again from its lineage matches exactly when nothing changed; when something did, each
step that differs says why — its file, its code, an input from an earlier step, the environment, or nondeterminism —
and the command exits 1; a run that is not a pipeline run is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.cli._app import main
from mloop.errors import InvalidInput, NotFound
from mloop.pipelines import Pipeline, Runner
from mloop.pipelines._reproduce import judge, metric_verdict, reproduce
from mloop.workspace import Workspace

ORDER = [("data", "ingest"), ("feats", "call"), ("model", "train"), ("check", "evaluate"), ("publish", "register")]
NEEDS = {"data": set(), "feats": {"data"}, "model": {"feats"}, "check": {"model", "feats"}, "publish": {"model"}}


def _steps(**changes: dict[str, object]) -> dict[str, dict[str, object]]:
    steps: dict[str, dict[str, object]] = {
        "data": {"status": "ran", "file": "f1", "code": None, "inputs": {}, "outputs": {"table": "t1"}},
        "feats": {"status": "ran", "file": None, "code": "c1", "inputs": {"input": "t1"}, "outputs": {"table": "t2"}},
        "model": {"status": "cached", "file": None, "code": "c2", "inputs": {"input": "t2"}, "outputs": {"model": "m1"}},
        "check": {"status": "ran", "file": None, "code": None, "inputs": {"model": "m1", "input": "t2"}, "outputs": {"metrics": "x1"}},
        "publish": {"status": "ran", "file": None, "code": None, "inputs": {"model": "m1"}, "outputs": {"version": "v1"}},
    }
    for name, change in changes.items():
        steps[name] = {**steps[name], **change}
    return steps


def _why(checks: list, name: str) -> str:  # type: ignore[type-arg]
    return next(c.why for c in checks if c.step == name)


def test_metric_verdicts_and_the_causes_of_a_difference() -> None:
    assert metric_verdict(0.8, 0.8, 0.0) == "exact" and metric_verdict(float("nan"), float("nan"), 0.0) == "exact"
    assert metric_verdict(0.8, 0.8 + 1e-12, 1e-9) == "within" and metric_verdict(0.8, 0.81, 1e-3) == "differs"
    assert metric_verdict(0.8, None, 1.0) == "differs"
    metrics = {"check": {"auc": 0.8}}
    same = judge(ORDER, NEEDS, _steps(), _steps(), metrics, metrics, {}, 1e-9)
    assert [c.verdict for c in same] == ["exact", "exact", "exact", "exact", "not compared"]

    data = judge(ORDER, NEEDS, _steps(), _steps(data={"file": "f2", "outputs": {"table": "t9"}}, feats={"inputs": {"input": "t9"}, "outputs": {"table": "t8"}},
                                                model={"inputs": {"input": "t8"}, "outputs": {"model": "m8"}},
                                                check={"inputs": {"model": "m8", "input": "t8"}}), metrics, {"check": {"auc": 0.7}}, {}, 1e-9)
    assert [c.verdict for c in data][:4] == ["differs", "differs", "differs", "differs"]
    assert _why(data, "data").startswith("data changed: the file") and _why(data, "feats") == "an input differs: input (from data, see there)"
    assert _why(data, "check").startswith("an input differs: input, model (from feats, model")

    code = judge(ORDER, NEEDS, _steps(), _steps(feats={"code": "c9", "outputs": {"table": "t8"}}), metrics, metrics, {}, 1e-9)
    assert _why(code, "feats").startswith("code changed") and [c.verdict for c in code][0] == "exact"

    env = {"model": {"scikit-learn": ("1.8.0", "1.9.1")}}  # the run that made the model's output (cached, an older one) had another version
    trained = judge(ORDER, NEEDS, _steps(), _steps(model={"outputs": {"model": "m2"}}), metrics, {"check": {"auc": 0.8 + 1e-12}}, env, 1e-9)
    assert _why(trained, "model") == "environment differs: scikit-learn 1.8.0 → 1.9.1"
    libraries = judge(ORDER, NEEDS, _steps(check={"libraries": {"pandera": "0.34.0"}}), _steps(check={"libraries": {"pandera": "0.35.0"}}),
                      metrics, {"check": {"auc": 0.7}}, {}, 1e-9)
    assert _why(libraries, "check") == "environment differs: pandera 0.34.0 → 0.35.0"
    transformer = judge(ORDER, NEEDS, _steps(feats={"transformers": ["t1"]}), _steps(feats={"transformers": ["t2"], "outputs": {"table": "t7"}}),
                        metrics, metrics, {}, 1e-9)
    assert _why(transformer, "feats").startswith("code changed")
    assert next(c for c in trained if c.step == "check").verdict == "within"  # the metric within tolerance, though its input differs
    noisy = judge(ORDER, NEEDS, _steps(), _steps(model={"outputs": {"model": "m2"}}), metrics, metrics, {}, 1e-9)
    assert _why(noisy, "model").startswith("nondeterminism")
    query = judge(ORDER, NEEDS, _steps(data={"file": None, "code": "q"}), _steps(data={"file": None, "code": "q", "outputs": {"table": "t5"}}),
                  metrics, metrics, {}, 1e-9)
    assert _why(query, "data").startswith("data changed: its callable returned a different table")
    failed = judge(ORDER, NEEDS, _steps(), _steps(model={"status": "failed", "reason": "ValueError: boom"}, check={"status": "skipped"},
                                                  publish={"status": "skipped"}), metrics, metrics, {}, 1e-9)
    assert [(c.step, c.verdict) for c in failed][2:] == [("model", "differs"), ("check", "differs"), ("publish", "differs")]
    assert _why(failed, "model") == "it cached then and failed now: ValueError: boom"  # a reproduction that fails is no match
    gated = judge(ORDER, NEEDS, _steps(), _steps(check={"status": "gate_failed"}, publish={"status": "skipped"}), metrics, metrics, {}, 1.0)
    assert [c.verdict for c in gated][3:] == ["differs", "differs"]
    neither = judge(ORDER, NEEDS, _steps(publish={"status": "skipped"}), _steps(publish={"status": "failed"}), metrics, metrics, {}, 1e-9)
    assert neither[-1].verdict == "not compared"


NOISY = '''import numpy as np


def noise(frame):
    return frame.assign(noise=np.random.default_rng().normal(size=len(frame)))
'''


@pytest.mark.slow
def test_a_run_reproduces_exactly_and_an_edit_is_named_as_the_cause(project: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the table's cells unfolded
    module = (project / "module.txt").read_text()
    ws = Workspace.init(project / ".mloop")
    first = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert first.ok
    result = reproduce(ws, first.run_id)
    assert result.verdict == "exact", [(s.step, s.verdict, s.why) for s in result.steps]
    assert {s.step: s.verdict for s in result.steps}["publish"] == "not compared"
    assert any(m.metric == "auc" and m.verdict == "exact" for s in result.steps for m in s.metrics)
    assert ws.tracker.client.get_run(first.run_id).data.tags["mloop.reproduced"] == '{"verdict": "exact", "tolerance": 1e-09}'
    step_run = next(s.run_id for s in first.steps if s.name == "model")
    assert reproduce(ws, str(step_run)).run_id == first.run_id  # a step's run names its pipeline's

    helpers = project / f"{module}.py"
    helpers.write_text(helpers.read_text().replace("FACTOR = 2.0", "FACTOR = 3.0"))
    edited = reproduce(ws, first.run_id)
    why = {s.step: s.why for s in edited.steps}
    assert edited.verdict == "differs" and why["data"] == "" and why["feats"].startswith("code changed")
    assert why["split"].startswith("an input differs: input (from feats")
    with pytest.raises(SystemExit) as exit_:
        main(["--workspace", str(project / ".mloop"), "reproduce", first.run_id])
    out = "".join(capsys.readouterr().out.split())
    assert exit_.value.code == 1 and "codechanged:itscallable" in out and "verdict:differs" in out

    helpers.write_text(helpers.read_text().replace("FACTOR = 3.0", "FACTOR = 2.0") + NOISY)
    text = (project / "pipeline.yaml").read_text()
    (project / "pipeline.yaml").write_text(text.replace("split: {input: feats,", "split: {input: noisy,").replace(
        "  - name: split\n", f'  - name: noisy\n    call: {{input: feats, callable: "{module}:noise"}}\n  - name: split\n'))
    second = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    again = reproduce(ws, second.run_id)
    assert {s.step: s.why for s in again.steps}["noisy"].startswith("nondeterminism")
    assert {s.step: s.verdict for s in again.steps}["feats"] == "exact"


def test_what_is_not_a_pipeline_run_is_refused(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    with pytest.raises(InvalidInput, match="--keep .*not empty") as error:
        reproduce(ws, "anything", keep=tmp_path)  # (it holds the workspace): never run in a folder that has things in it
    assert error.value.field == "keep"
    with pytest.raises(NotFound, match="No run 'nope'"):
        reproduce(ws, "nope")
    with ws.tracker.start_run("plain") as run:
        pass
    with pytest.raises(InvalidInput, match="is not a pipeline run"):
        reproduce(ws, run.run_id)
    with pytest.raises(SystemExit) as exit_:
        main(["--workspace", str(tmp_path / "ws"), "reproduce", run.run_id])
    assert exit_.value.code == 2
