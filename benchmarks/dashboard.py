"""The dashboard of `mloop serve` (/ui) beside MLflow's own UI on the same MLflow store, timed in headless Chromium.

Per page: first paint (first-contentful-paint) and time to interactive, both in ms since navigation start. mloop is
interactive at its performance mark "mloop:interactive" (set once its first view has rendered; its table rows are
checked); MLflow when a row of its runs grid is visible (polled every animation frame). Pages: the deployments view
(MLflow has no serving page) and the runs view over 10,000 runs beside MLflow's runs page of the experiment holding
them; plus one page change on mloop's runs view ("older →"). Each server is warmed once; each load is a new tab in a
signed-in browser context (warm HTTP cache for both); medians of --repeat loads.

    python benchmarks/dashboard.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mloop.demo._server_process import ServerProcess, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import make_deployed  # noqa: E402
from tests.ui.bulk import bulk_runs  # noqa: E402

console = Console()
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
N_RUNS = 10_000
MLFLOW_ROW = ".ag-center-cols-container .ag-row[row-id]"  # MLflow 3's runs grid (AG Grid): one element per run row
FCP = "() => (performance.getEntriesByType('paint').find((e) => e.name === 'first-contentful-paint') || {}).startTime"
VISIBLE = "(sel) => { const r = document.querySelector(sel); return r && r.getBoundingClientRect().height > 0 ? performance.now() : false; }"
MARK = """(sel) => { const m = performance.getEntriesByName('mloop:interactive')[0], r = document.querySelector(sel);
  return m && r && r.getBoundingClientRect().height > 0 ? [m.startTime, performance.now()] : false; }"""
API = """() => performance.getEntriesByType('resource').filter((e) => /\\/(api|v2)\\//.test(e.name))
  .map((e) => [e.name.split('/').slice(3).join('/'), Math.round(e.responseStart - e.requestStart)])"""  # server time of its data calls
PAGE_CHANGE = """async () => {
  const range = () => document.querySelector('#runs-range').textContent, before = range(), t0 = performance.now();
  document.querySelector('button[data-key=next]').click();
  await new Promise((done) => { const poll = () => (range() !== before ? done() : requestAnimationFrame(poll)); poll(); });
  return [performance.now() - t0, before, range()];
}"""


def start_mlflow(root: Path, port: int, timeout: float = 180.0) -> subprocess.Popen[bytes]:
    """MLflow's tracking server and UI on ``root``'s store, in its own process group; returns once "/" answers 200."""
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
           "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2.0).status_code == 200:
                console.log(f"MLflow's server answered after {time.monotonic() - started:.1f} s")
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (its uvicorn workers), SIGKILL after 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def load(context: Any, url: str, ready: str, arg: str) -> tuple[Any, float, Any]:
    """Open ``url`` in a new tab; wait until ``ready`` (a JS function of ``arg``) returns its times; returns (page, first paint, those times)."""
    page = context.new_page()
    page.goto(url, wait_until="commit")
    interactive = page.wait_for_function(ready, arg=arg, polling="raf", timeout=120_000).json_value()
    paint = page.wait_for_function(FCP, polling="raf", timeout=30_000).json_value()
    return page, float(paint), interactive


def measure_mloop(context: Any, url: str, repeat: int, *, page_change: bool = False) -> dict[str, Any]:
    """First paint, the "mloop:interactive" mark and (for comparison with MLflow) the first visible table row, per load."""
    out: dict[str, list[Any]] = {k: [] for k in ("first_paint_ms", "interactive_ms", "row_visible_ms", "rows", "page_change_ms", "api_ttfb_ms")}
    for _ in range(repeat):
        page, paint, (interactive, row) = load(context, url, MARK, "#view tbody tr")
        out["api_ttfb_ms"].append(page.evaluate(API))
        out["rows"].append(page.locator("#view tbody tr").count())
        if page_change:
            ms, before, after = page.evaluate(PAGE_CHANGE)
            out["page_change_ms"].append(ms)
            out["range"] = [before, after]
        out["first_paint_ms"].append(paint)
        out["interactive_ms"].append(interactive)
        out["row_visible_ms"].append(row)
        page.close()
    if min(out["rows"]) == 0:
        raise RuntimeError(f"mloop's table at {url} had no rows")
    return out


def measure_mlflow(context: Any, url: str, repeat: int) -> dict[str, Any]:
    """First paint and the first visible row of MLflow's runs grid, per load."""
    out: dict[str, list[Any]] = {"first_paint_ms": [], "interactive_ms": [], "rows": []}
    for _ in range(repeat):
        page, paint, interactive = load(context, url, VISIBLE, MLFLOW_ROW)
        out["rows"].append(page.locator(MLFLOW_ROW).count())
        out["first_paint_ms"].append(paint)
        out["interactive_ms"].append(float(interactive))
        page.close()
    return out


def median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="loads per page (the median is shown)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"repeat": args.repeat, "runs": N_RUNS}
    with tempfile.TemporaryDirectory(prefix="mloop-dashboard-bench-") as tmp:
        ws = make_deployed(Path(tmp) / "ws")
        experiment_id = str(bulk_runs(ws.root / "mlflow.db", N_RUNS))
        key, _ = ws.store.api_keys.create("bench", "viewer")
        console.log(f"store ready: {N_RUNS:,} runs in experiment {experiment_id}")
        mlflow_url = f"http://127.0.0.1:{free_port()}"
        mlflow = start_mlflow(ws.root, int(mlflow_url.rsplit(":", 1)[1]))
        try:
            with ServerProcess(ws.root, settings={"MLOOP_MONITOR_INTERVAL": "0"}) as server, sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                ours = browser.new_context(viewport={"width": 1280, "height": 900})
                page = ours.new_page()
                page.goto(server.url + "/ui")
                page.fill("#key", key)
                page.press("#key", "Enter")
                page.wait_for_selector("#nav:not([hidden])")
                page.close()
                theirs = browser.new_context(viewport={"width": 1280, "height": 900})
                runs_url = f"{mlflow_url}/#/experiments/{experiment_id}/runs"
                measure_mloop(ours, server.url + "/ui#/runs", 1)  # warm-up: caches, imports, SQLite pages
                measure_mlflow(theirs, runs_url, 1)
                results["deployments"] = {"mloop": measure_mloop(ours, server.url + "/ui#/deployments", args.repeat), "mlflow": None}
                results["runs"] = {"mloop": measure_mloop(ours, server.url + "/ui#/runs", args.repeat, page_change=True),
                                   "mlflow": measure_mlflow(theirs, runs_url, args.repeat), "mlflow_url": runs_url, "mlflow_row_selector": MLFLOW_ROW}
                browser.close()
        finally:
            stop(mlflow)
        ws.close()

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:.0f}"

    table = Table(title=f"dashboard loads: ms since navigation start, median of {args.repeat}; ratio = MLflow / mloop interactive", pad_edge=False)
    for col in ("page", "mloop\nfirst paint", "mloop\ninteractive", "MLflow\nfirst paint", "MLflow\ninteractive", "ratio"):
        table.add_column(col, justify="left" if col == "page" else "right", no_wrap=True)
    for name, label in (("deployments", "deployments"), ("runs", f"runs ({N_RUNS:,})")):
        mine, other = results[name]["mloop"], results[name]["mlflow"]
        i_mine, i_other = median(mine["interactive_ms"]), median(other["interactive_ms"]) if other else None
        summary = {"first_paint_ms": median(mine["first_paint_ms"]), "interactive_ms": i_mine, "row_visible_ms": median(mine["row_visible_ms"]),
                   "mlflow_first_paint_ms": median(other["first_paint_ms"]) if other else None, "mlflow_interactive_ms": i_other,
                   "ratio": i_other / i_mine if i_other and i_mine else None}
        results[name]["median"] = summary
        table.add_row(label, ms(summary["first_paint_ms"]), ms(i_mine), ms(summary["mlflow_first_paint_ms"]), ms(i_other),
                      "—" if summary["ratio"] is None else f"{summary['ratio']:.1f}×")
    console.print(table)
    change = median(results["runs"]["mloop"]["page_change_ms"])
    results["runs"]["median"]["page_change_ms"] = change
    before, after = results["runs"]["mloop"]["range"]
    console.print(f"page change on mloop's runs view (older →, '{before}' → '{after}'): {ms(change)} ms median, click to new range shown")
    note = f"paint: first-contentful-paint; MLflow: {results['runs']['mlflow_url']}, interactive at first visible {MLFLOW_ROW}"
    console.print(escape(note), soft_wrap=True)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "dashboard.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
