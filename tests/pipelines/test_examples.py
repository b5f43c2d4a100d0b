"""The example pipelines run as shipped, through the CLI, and a second run reuses every step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mloop.cli._app import main
from mloop.workspace import Workspace

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("example", "model", "metric"), [("diabetes", "diabetes", "r2"), ("flights", "flights-pipeline", "auc")])
def test_an_example_pipeline_runs_registers_its_model_and_reruns_from_the_cache(
        example: str, model: str, metric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    try:
        main(["--workspace", str(tmp_path / "ws"), "run", str(EXAMPLES / example / "pipeline.yaml")])
        first = "".join(capsys.readouterr().out.split())
        main(["--workspace", str(tmp_path / "ws"), "run", str(EXAMPLES / example / "pipeline.yaml")])
        second = "".join(capsys.readouterr().out.split())
    finally:
        sys.modules.pop("steps", None)  # both examples name their own module ``steps``
    assert "0cached,0didnotsucceed" in first and "nothingchanged,everystepreused" in second
    ws = Workspace.open(tmp_path / "ws")
    [version] = ws.registry.versions(model)
    run = ws.tracker.client.get_run(version.run_id)
    assert run.data.tags["mloop.pipeline.step"] == "model"  # the version names the step's run that trained it
    checks = ws.tracker.client.search_runs([run.info.experiment_id], filter_string="tags.`mloop.pipeline.step` = 'check'")
    assert checks and checks[0].data.metrics[metric] > (0.3 if metric == "r2" else 0.65)
