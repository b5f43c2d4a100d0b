"""Running a pipeline: every step a nested MLflow run under the pipeline's; a rerun with nothing changed skips every
step and reads no file; an edited helper module reruns the steps whose code reaches it and no other (the new code, in
the same process); a failed gate stops the registration; independent steps run at the same time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mloop.cli._app import main
from mloop.pipelines import Pipeline, Runner
from mloop.pipelines._cache import Artifacts
from mloop.workspace import Workspace

pytestmark = pytest.mark.slow


def _statuses(run: object) -> dict[str, str]:
    return {s.name: s.status for s in run.steps}  # type: ignore[attr-defined]


def test_a_rerun_skips_every_step_and_an_edited_helper_reruns_what_it_reaches(project: Path) -> None:
    module = (project / "module.txt").read_text()
    with (project / "pipeline.yaml").open("a") as fh:  # a step of its own on another module: no edit here touches it
        fh.write(f'  - name: side\n    call: {{input: data, callable: "other_{module}:untouched"}}\n')
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

    helpers = project / f"{module}.py"
    helpers.write_text(helpers.read_text().replace("FACTOR = 2.0", "FACTOR = 2.5"))  # a constant the helper features() calls reads
    edited = Runner(ws).run(Pipeline.load(project / "pipeline.yaml"))  # in this same process: the module is imported again
    assert _statuses(edited) == {"data": "cached", "feats": "ran", "split": "ran", "model": "ran", "check": "ran", "publish": "ran",
                                 "side": "cached"}
    feats = ws.tracker.client.get_run(next(s.run_id for s in edited.steps if s.name == "feats"))
    assert feats.data.params["params.factor"] == "1.5"
    table = Artifacts.get(Runner(ws).cache.get(next(s.key for s in edited.steps if s.name == "feats"))["outputs"]["table"])  # type: ignore[arg-type,index]
    assert np.allclose(table["x1b"], table["x1"] * 2.5 * 1.5)  # the new code ran, not the module imported before the edit
    assert ws.registry.resolve("toy", "champion").version == 2
    regated = Runner(ws).run(Pipeline.load(project / "pipeline.yaml", ['check.gates=["auc >= 0.5"]']))
    assert _statuses(regated)["check"] == "ran" and _statuses(regated)["publish"] == "cached"  # the same model is not registered again
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
    import sys

    sys.modules.pop("waiting", None)
    assert outcome.ok, outcome.steps
    assert _statuses(outcome) == {"data": "ran", "left": "ran", "right": "ran"}
