"""A pipeline run writes the pipeline document: its steps, what each took and made, how to run it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mloop.documents import DocumentStore
from mloop.workspace import Workspace
from tests.browser import open_offline
from tests.conftest import run_cli


@pytest.mark.slow
@pytest.mark.browser
def test_running_a_pipeline_writes_its_document(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = project.parent / "ws"
    Workspace.init(ws).close()
    code, _, err = run_cli(["--workspace", str(ws), "run", str(project / "pipeline.yaml")], capsys)
    assert code == 0, err
    docs = DocumentStore(Workspace.open(ws).docs_dir).list("pipeline")
    assert [d.title for d in docs] == ["Pipeline toy"]
    text = docs[0].markdown.read_text()
    assert "| model | train | split.train |" in text and "ran in" in text and f"mloop run {project / 'pipeline.yaml'}" in text
    run_cli(["--workspace", str(ws), "run", str(project / "pipeline.yaml")], capsys)  # everything reused: the document says so
    assert "reused from the cache" in docs[0].markdown.read_text()
    seen: dict[str, Any] = {}
    errors, requests = open_offline(docs[0].html, lambda page: seen.update(rows=page.locator("table tr").count()))
    assert errors == [] and all(u.startswith("file://") for u in requests) and seen["rows"] == 1 + 6  # a header and six steps
