"""Running a pipeline: every step a nested MLflow run under the pipeline's; a rerun with nothing changed skips every
step and reads no file; an edited helper reruns the steps it reaches and no other; a failed gate stops the
registration; independent steps run at the same time."""

from __future__ import annotations

import linecache
import sys
from pathlib import Path

import pytest

from mloop.cli._app import main
from mloop.pipelines import Pipeline, Runner
from mloop.workspace import Workspace

pytestmark = pytest.mark.slow


def _statuses(run: object) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}  # type: ignore[attr-defined]


def test_a_rerun_skips_every_step_and_an_edited_helper_reruns_what_it_reaches(project: Path) -> None:
    ws = Workspace.init(project / ".mloop")
    first = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert first.ok and set(_statuses(first).values()) == {"ran"} and first.hashed_bytes > 0
    assert ws.registry.resolve("toy", "champion").version == 1
    client = ws.tracker.client
    children = client.search_runs([client.get_run(first.run_id).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'")
    assert sorted(r.data.tags["mloop.pipeline.step"] for r in children) == sorted(_statuses(first))  # each step a nested run
    model_run = next(r for r in children if r.data.tags["mloop.pipeline.step"] == "model")
    assert model_run.data.params["params.max_iter"] == "20" and float(next(
        r for r in children if r.data.tags["mloop.pipeline.step"] == "check").data.metrics["auc"]) >= 0.6

    runs_before = len(client.search_runs([client.get_run(first.run_id).info.experiment_id]))
    again = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert set(_statuses(again).values()) == {"cached"} and again.hashed_bytes == 0  # stat, not read
    assert again.reused and again.run_id == first.run_id  # nothing ran, nothing recorded: it names the run that made them
    assert len(client.search_runs([client.get_run(first.run_id).info.experiment_id])) == runs_before
    assert [v.version for v in ws.registry.versions("toy")] == [1]  # nothing new registered

    data = project / "toy.parquet"
    data.write_bytes(data.read_bytes())  # the same content, a new mtime: hashed again, still cached
    touched = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert set(_statuses(touched).values()) == {"cached"} and touched.hashed_bytes == data.stat().st_size

    module = (project / "module.txt").read_text()
    helpers = project / f"{module}.py"
    helpers.write_text(helpers.read_text().replace("return x * 2.0", "return x * 2.5"))  # a helper features() calls
    sys.modules.pop(module, None)
    linecache.checkcache()
    edited = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))
    assert _statuses(edited) == {"data": "cached", "feats": "ran", "split": "ran", "model": "ran", "check": "ran", "publish": "ran"}
    assert ws.registry.resolve("toy", "champion").version == 2
    forced = Runner(ws, use_cache=False).run(Pipeline.load(project / "pipeline.yaml"))
    assert set(_statuses(forced).values()) == {"ran"}


def test_a_failed_gate_stops_the_registration_and_the_cli_exits_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Workspace.init(project / ".mloop").close()
    with pytest.raises(SystemExit) as exit_:
        main(["--workspace", str(project / ".mloop"), "run", str(project / "pipeline.yaml"), "--set", 'check.gates=["auc >= 0.999"]'])
    assert exit_.value.code == 1
    out = "".join(capsys.readouterr().out.split())  # (rich wraps lines at the terminal's width)
    assert "gatefailed:auc>=0.999(itis0." in out and "publishskipped" in out
    ws = Workspace.open(project / ".mloop")
    assert ws.registry.versions("toy") == []  # the model trained, its gate failed: nothing was registered


def test_independent_steps_run_at_the_same_time(project: Path) -> None:
    (project / "waiting.py").write_text('''import time
from pathlib import Path


def meet(frame, me, other, folder):
    Path(folder, me).touch()
    deadline = time.monotonic() + 20
    while not Path(folder, other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never started while {me} ran")
        time.sleep(0.02)
    return frame
''')
    (project / "pair.yaml").write_text(f"""name: pair
steps:
  - name: data
    ingest: {{path: toy.parquet}}
  - name: left
    call: {{input: data, callable: "waiting:meet", params: {{me: left, other: right, folder: "{project}"}}}}
  - name: right
    call: {{input: data, callable: "waiting:meet", params: {{me: right, other: left, folder: "{project}"}}}}
""")
    ws = Workspace.init(project / ".mloop")
    outcome = Runner(ws, jobs=2).run(Pipeline.load(project / "pair.yaml"))
    sys.modules.pop("waiting", None)
    assert outcome.ok, outcome.steps
    assert _statuses(outcome) == {"data": "ran", "left": "ran", "right": "ran"}
