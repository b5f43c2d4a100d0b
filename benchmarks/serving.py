"""mloop serve vs `mlflow models serve --env-manager local`, side by side, same registered model, same machine.

For (a) HistGradientBoosting on make_classification(20000, 20) and (b) the demo's flights model it prints:
single-row latency p50/p99/p99.9 at concurrency 1 (12 s at least, so that p99.9 rests on thousands of
requests), rows/s at concurrency 16 and 64, start-up time, and the in-process predict time (the floor).
Requests are single-row `dataframe_split` bodies on keep-alive connections. Both servers get one worker and
OMP_NUM_THREADS=1; mloop runs with its prediction log on (flushed every second, the default).

    python benchmarks/serving.py [--seconds 5] [--only hgb|flights]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import run_load  # noqa: E402
from mloop.demo._flights import SPEC, load_flights  # noqa: E402
from mloop.demo._server_process import ServerProcess, free_port  # noqa: E402
from mloop.serving import Deployments  # noqa: E402
from mloop.training import fit  # noqa: E402
from mloop.workspace import Workspace  # noqa: E402

console = Console()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def _register_hgb(ws: Workspace) -> tuple[str, pd.DataFrame]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    with ws.tracker.start_run("bench", run_name="hgb", seed=0) as run:
        model = HistGradientBoostingClassifier(random_state=0).fit(frame, y)
        uri = run.log_sklearn_model(model, frame)
    ws.registry.register(uri, "hgb", alias="champion")
    Deployments(ws.registry, ws.store, ws.bus).deploy("hgb", "hgb", "champion")
    return "hgb", frame


def _register_flights(ws: Workspace) -> tuple[str, pd.DataFrame]:
    data = load_flights()
    train = data[data["month"] < 3]
    with ws.tracker.start_run("bench", run_name="flights", seed=0) as run:
        model = fit(train, SPEC, {}, 0)
        uri = run.log_sklearn_model(model, train[SPEC.features])
    ws.registry.register(uri, "flights", alias="champion")
    Deployments(ws.registry, ws.store, ws.bus).deploy("flights", "flights", "champion")
    return "flights", data[data["month"] == 3][SPEC.features]


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.perf_counter() - start
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def _start_mlflow(ws: Workspace, name: str, port: int) -> tuple[subprocess.Popen[bytes], float]:
    bin_dir = str(Path(sys.executable).parent)
    env = {**ENV, "PATH": f"{bin_dir}:{ENV.get('PATH', '')}", "MLFLOW_TRACKING_URI": ws.tracking_uri}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [shutil.which("mlflow", path=bin_dir) or "mlflow", "models", "serve", "-m", f"models:/{name}/1",
         "--env-manager", "local", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _wait(f"http://127.0.0.1:{port}/ping", proc)
    return proc, time.perf_counter() - t0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _floor_us(ws: Workspace, name: str, row: pd.DataFrame) -> float:
    from mloop.serving._runtime import runtime_for

    runtime = runtime_for(ws.registry.load(name, "champion"))
    block = runtime.prepare({c: [None if isinstance(v, float) and np.isnan(v) else v for v in row[c].tolist()] for c in row.columns})
    for _ in range(200):
        runtime.predict([block])
    t0 = time.perf_counter()
    n = 2000
    for _ in range(n):
        runtime.predict([block])
    return (time.perf_counter() - t0) / n * 1e6


def _body(row: pd.DataFrame) -> bytes:
    values = [None if isinstance(v, float) and np.isnan(v) else v for v in row.iloc[0].tolist()]
    return json.dumps({"dataframe_split": {"columns": list(row.columns), "data": [values]}}).encode()


def bench(ws: Workspace, name: str, sample: pd.DataFrame, seconds: float) -> dict[str, dict[str, float]]:
    row = sample.iloc[[7]]
    body = _body(row)
    results: dict[str, dict[str, float]] = {}
    for server in ("mloop", "mlflow"):
        port = free_port()
        if server == "mloop":  # the same child process the demo runs; start-up is measured to readiness
            t0 = time.perf_counter()
            mloop_server = ServerProcess(ws.root, port=port, log_flush_interval=1.0).start(timeout=120)
            startup = time.perf_counter() - t0
            stop = mloop_server.stop
            headers = mloop_server.headers  # mloop authenticates every inference request (an API key)
        else:
            headers = {}
            proc, startup = _start_mlflow(ws, name, port)
            stop = lambda proc=proc: _stop(proc)  # noqa: E731
        path = f"/models/{name}/invocations" if server == "mloop" else "/invocations"
        try:
            check = httpx.post(f"http://127.0.0.1:{port}{path}", content=body, headers={"content-type": "application/json", **headers})
            assert check.status_code == 200, check.text
            c1 = run_load(port, path, body, concurrency=1, seconds=max(seconds, 12.0), headers=headers, warmup=500)
            c16 = run_load(port, path, body, concurrency=16, seconds=seconds, headers=headers)
            c64 = run_load(port, path, body, concurrency=64, seconds=seconds, headers=headers)
        finally:
            stop()
        results[server] = {
            "startup_s": startup, "p50_ms": c1.pct(50), "p99_ms": c1.pct(99), "p999_ms": c1.pct(99.9), "rps_c1": c1.rps,
            "rows_s_c16": c16.rps, "rows_s_c64": c64.rps, "p99_ms_c64": c64.pct(99),
            "errors": float(c1.errors + c16.errors + c64.errors),
        }
        console.log(f"{name}: {server} done")
    results["floor"] = {"predict_us": _floor_us(ws, name, row)}
    return results


def _report(name: str, r: dict[str, dict[str, float]]) -> None:
    m, f = r["mloop"], r["mlflow"]
    table = Table(title=f"{name}: single-row requests (in-process predict floor {r['floor']['predict_us']:.0f} µs)")
    for col in ("metric", "mloop", "mlflow models serve", "ratio"):
        table.add_column(col, justify="right")
    rows = [
        ("p50 latency, c=1 (ms)", m["p50_ms"], f["p50_ms"], f["p50_ms"] / m["p50_ms"], "×  faster"),
        ("p99 latency, c=1 (ms)", m["p99_ms"], f["p99_ms"], f["p99_ms"] / m["p99_ms"], "×  faster"),
        ("p99.9 latency, c=1 (ms)", m["p999_ms"], f["p999_ms"], f["p999_ms"] / m["p999_ms"], "×  faster"),
        ("p99 / p50, c=1", m["p99_ms"] / m["p50_ms"], f["p99_ms"] / f["p50_ms"], float("nan"), ""),
        ("rows/s, c=1", m["rps_c1"], f["rps_c1"], m["rps_c1"] / f["rps_c1"], "×"),
        ("rows/s, c=16", m["rows_s_c16"], f["rows_s_c16"], m["rows_s_c16"] / f["rows_s_c16"], "×"),
        ("rows/s, c=64", m["rows_s_c64"], f["rows_s_c64"], m["rows_s_c64"] / f["rows_s_c64"], "×"),
        ("p99 latency, c=64 (ms)", m["p99_ms_c64"], f["p99_ms_c64"], f["p99_ms_c64"] / m["p99_ms_c64"], "×  faster"),
        ("start-up (s)", m["startup_s"], f["startup_s"], f["startup_s"] / m["startup_s"], "×  faster"),
        ("errors", m["errors"], f["errors"], float("nan"), ""),
    ]
    for label, a, b, ratio, unit in rows:
        table.add_row(label, f"{a:,.2f}", f"{b:,.2f}", "" if np.isnan(ratio) else f"{ratio:,.1f}{unit}")
    console.print(table)
    targets = [
        ("rows/s at c=64 ≥ 25× MLflow", m["rows_s_c64"] >= 25 * f["rows_s_c64"]),
        ("p50 at c=1 < 1 ms", m["p50_ms"] < 1.0),
        ("p99 at c=1 ≤ MLflow's / 10", m["p99_ms"] <= f["p99_ms"] / 10),
        ("p99 at c=1 ≤ 2 × p50 (log on)", m["p99_ms"] <= 2 * m["p50_ms"]),
    ]
    for label, ok in targets:
        console.print(f"  target {label}: {'[green]met' if ok else '[red]missed'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load level")
    parser.add_argument("--only", choices=["hgb", "flights"], default=None)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="mloop-bench-") as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        models = []
        if args.only in (None, "hgb"):
            models.append(_register_hgb(ws))
        if args.only in (None, "flights"):
            models.append(_register_flights(ws))
        for name, sample in models:
            all_results[name] = bench(ws, name, sample, args.seconds)
            _report(name, all_results[name])
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "serving.json").write_text(json.dumps(all_results, indent=2))


if __name__ == "__main__":
    main()
