from __future__ import annotations

import functools
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mloop.errors import InvalidInput, Unavailable
from mloop.optimize import _edge as edge
from mloop.optimize import onnx_feed, session
from mloop.registry import ColumnSpec
from mloop.registry._onnx_model import MISSING_TOKEN
from mloop.workspace import Workspace
from tests.browser import CHROMIUM, FLAGS
from tests.conftest import run_cli, toy_frame, train_and_register


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """``toy`` (a pipeline with an ONNX twin, champion) and ``plain`` (a logistic regression: no twin)."""
    workspace = Workspace.init(tmp_path_factory.mktemp("edge") / "ws")
    train_and_register(workspace)
    frame = toy_frame()
    with workspace.tracker.start_run("plain", run_name="plain") as run:
        uri = run.log_sklearn_model(LogisticRegression().fit(frame[["x1", "x2", "x3"]], frame["y"]), frame[["x1", "x2", "x3"]])
    workspace.registry.register(uri, "plain", alias="champion")
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def tarball() -> Path:
    """The pinned onnxruntime-web tarball from the cache (`make test` fetches it first; downloaded here if absent)."""
    try:
        return edge.ensure_assets()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(exc.message)
        pytest.skip(exc.message)


def _export(ws: Workspace, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(["-w", str(ws.root), "edge", "export", *args], capsys)


def test_unknown_model_is_refused(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _export(ws, capsys, "nope", "-o", str(tmp_path / "out"))
    assert code == 2 and "Model 'nope'" in err and "Traceback" not in err
    code, _, err = _export(ws, capsys, "toy:one", "-o", str(tmp_path / "out"))
    assert code == 2 and "after ':' comes a version number" in err


def test_a_model_without_a_twin_is_refused(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _export(ws, capsys, "plain@champion", "-o", str(tmp_path / "out"))
    assert code == 2 and "Model 'plain' version 1 has no ONNX twin" in err
    assert not (tmp_path / "out").exists()


def test_a_non_empty_folder_needs_force(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code, _, err = _export(ws, capsys, "toy", "-o", str(tmp_path / "out"))
    assert code == 1 and f"-o {tmp_path / 'out'} exists and is not empty; pass --force" in err  # a conflict: the operation failed
    code, _, err = _export(ws, capsys, "toy", "-o", str(tmp_path / "out" / "notes.txt"))
    assert code == 2 and "is a file, not a folder" in err


def test_a_bad_assets_file_is_refused(ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "ort.tgz"
    junk.write_bytes(b"not a tarball")
    code, _, err = _export(ws, capsys, "toy", "-o", str(tmp_path / "out"), "--assets", str(junk))
    assert code == 2 and f"--assets {junk} is not onnxruntime-web 1.30.0" in err and edge.ORT_WEB_INTEGRITY in err
    code, _, err = _export(ws, capsys, "toy", "-o", str(tmp_path / "out"), "--assets", str(tmp_path / "missing.tgz"))
    assert code == 2 and "missing.tgz: no such file" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_download_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(edge, "ORT_WEB_URL", f"http://127.0.0.1:{port}/onnxruntime-web-1.30.0.tgz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _, err = run_cli(["edge", "assets"], capsys)
    assert code == 1 and "Could not download onnxruntime-web 1.30.0" in err and "--assets PATH" in err and "Traceback" not in err
    assert not edge.cached_tarball().exists() and edge.cached_tarball().is_relative_to(tmp_path / "cache")


def test_ops_and_input_types_the_browser_is_not_checked_on_are_refused() -> None:
    from onnx import TensorProto, helper

    def model(op: str, elem: int) -> bytes:
        graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", elem, [None, 1])],
                                  [helper.make_tensor_value_info("y", elem, [None, 1])])
        return bytes(helper.make_model(graph).SerializeToString())

    with pytest.raises(InvalidInput, match="uses op\\(s\\) Tanh, not checked with onnxruntime-web 1.30.0"):
        edge.web_feed(model("Tanh", TensorProto.DOUBLE), [ColumnSpec("x", "double")])
    with pytest.raises(InvalidInput, match="ONNX input 'x' has element type FLOAT"):
        edge.web_feed(model("Identity", TensorProto.FLOAT), [ColumnSpec("x", "float")])
    feed = edge.web_feed(model("Identity", TensorProto.DOUBLE), [ColumnSpec("x", "double")])
    assert feed.inputs == {"x": "float64"} and not feed.matrix and feed.missing_token == MISSING_TOKEN
    # onnxruntime-web cuts strings at NUL, so the token arrives as "": a model with an empty category gets another token
    assert edge.missing_token({"", "red"}) == "mloop-missing" and edge.missing_token({"", "mloop-missing"}) == "mloop-missing-2"


def test_assets_can_seed_the_cache_offline(tarball: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(edge, "ORT_WEB_URL", "http://127.0.0.1:1/unreachable.tgz")
    code, out, _ = run_cli(["edge", "assets", "--assets", str(tarball)], capsys)
    assert code == 0 and str(tmp_path / "cache" / "mloop" / "onnxruntime-web-1.30.0.tgz") in out
    assert edge.ensure_assets() == edge.cached_tarball()  # found in the cache: no download tried


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


ROWS: list[dict[str, Any]] = [
    {"x1": 0.3, "x2": -1.2, "x3": 0.5, "color": "red"},
    {"x1": None, "x2": 0.4, "x3": -0.1, "color": "blue"},  # a missing number
    {"x1": 1.1, "x2": 0.2, "x3": 2.0, "color": "purple"},  # a category never seen in training
    {"x1": -0.7, "x2": None, "x3": 0.0, "color": None},  # a missing category
    {"x1": 0.05, "x2": 0.1, "x3": -2.2},  # an absent category
]


def _in_chromium(dest: Path) -> dict[str, Any]:
    """Serve ``dest`` on loopback, open its page in headless Chromium, wait for the model, read the page's own table,
    score ``ROWS`` and two bad rows through ``window.mloop.predict``; returns what it saw, console errors and requests."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing at /usr/bin/chromium; .ci/run installs it.")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    server, thread = _serve(dest)
    seen: dict[str, Any] = {"origin": f"http://127.0.0.1:{server.server_port}/", "errors": [], "requests": []}
    rejected = "rows => window.mloop.predict(rows).then(() => null, e => [e.message, e.field])"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page()
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.goto(seen["origin"] + "index.html")
            seen["info"] = page.evaluate("window.mloop.ready")
            page.wait_for_selector('#status[data-state="ready"]')
            seen["status"] = page.inner_text("#status")
            seen["table"] = page.eval_on_selector_all("#samples tbody tr", "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")
            seen["got"] = page.evaluate("rows => window.mloop.predict(rows)", ROWS)
            seen["wrong_type"] = page.evaluate(rejected, [{**ROWS[0], "x2": "high"}])
            seen["unknown"] = page.evaluate(rejected, [{**ROWS[0], "size": 3}])
            browser.close()
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    return seen


def _check_page(ws: Workspace, name: str, dest: Path, seen: dict[str, Any]) -> None:
    """The page scored like Python's ONNX Runtime (and the native model), rendered its samples, refused bad rows and stayed on loopback."""
    spec = json.loads((dest / "samples.json").read_text())
    loaded = ws.registry.load(name, "champion")
    assert loaded.twin is not None and (dest / "model.onnx").read_bytes() == loaded.twin
    assert spec["model"] == {"name": name, "version": 1} and [c["name"] for c in spec["columns"]] == ["x1", "x2", "x3", "color"]
    sess = session(loaded.twin)
    expected = sess.run(None, onnx_feed(pd.DataFrame(ROWS), loaded.inputs, False))[0]
    expected_samples = sess.run(None, onnx_feed(pd.DataFrame(spec["rows"]), loaded.inputs, False))[0]
    assert seen["info"]["name"] == name and seen["info"]["output"]["name"] == "probabilities"
    assert seen["status"].startswith(f"Ready: {len(spec['rows'])} sample row(s) scored") and len(seen["table"]) == len(spec["rows"]) >= 3
    np.testing.assert_allclose([[float(v) for v in row[-2:]] for row in seen["table"]], expected_samples, atol=1e-6)  # shown to 6 decimals
    assert np.asarray(seen["got"]).shape == expected.shape == (len(ROWS), 2)
    np.testing.assert_allclose(seen["got"], expected, atol=1e-5)
    np.testing.assert_allclose(seen["got"], loaded.predict(pd.DataFrame(ROWS)), atol=1e-5)  # and the native model agrees
    assert seen["wrong_type"] == ["row 0: field 'x2' must be a number or null, got string \"high\"", "x2"]
    assert seen["unknown"][1] == "size" and "unknown field 'size'" in seen["unknown"][0]
    assert seen["errors"] == []
    assert seen["requests"] and all(u.startswith(seen["origin"]) for u in seen["requests"]), seen["requests"]


@pytest.mark.slow
@pytest.mark.browser
def test_the_bundle_scores_in_chromium_like_onnx_runtime(ws: Workspace, tarball: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "notes.txt").write_text("kept")
    code, out, err = _export(ws, capsys, "toy@champion", "-o", str(dest), "--assets", str(tarball), "--force")
    assert code == 0, err
    assert "toy v1" in out and (dest / "notes.txt").read_text() == "kept"
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == {
        "notes.txt", "index.html", "app.js", "model.onnx", "samples.json", *(f"ort/{n}" for n in edge.ORT_WEB_FILES)}
    seen = _in_chromium(dest)
    _check_page(ws, "toy", dest, seen)
    assert seen["info"]["output"]["classes"] == [0, 1] and seen["status"].endswith("(WebAssembly), offline.")


@pytest.mark.slow
@pytest.mark.browser
def test_a_network_twin_scores_in_chromium_too(ws: Workspace, tarball: Path, tmp_path: Path) -> None:
    """PyTorch's export of a TabularNet (Gemm, Relu, Gather, Where…, float32 inside) runs in onnxruntime-web as it is."""
    from mloop.training import mlp

    frame = toy_frame(1500)
    with ws.tracker.start_run("nets", seed=0) as run:
        uri = run.log_sklearn_model(mlp(frame, "y", epochs=3, batch_size=64, run=run), frame.drop(columns="y"), labels=frame["y"])
    ws.registry.register(uri, "net", alias="champion")
    bundle = edge.export_edge(ws.registry, "net", "champion", tmp_path / "net", assets=tarball)
    assert bundle.name == "net" and bundle.files[-3:] == tuple(f"ort/{n}" for n in edge.ORT_WEB_FILES)
    _check_page(ws, "net", bundle.dest, _in_chromium(bundle.dest))
