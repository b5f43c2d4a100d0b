"""Rollouts in a real server process under load (issue 11's serving figures).

1. Shadow: client p50/p99 at concurrency 1 and 8, the same load with and without a shadow version scoring a copy
   of every request, and what the shadow found (copies offered, dropped, compared, agreement).
2. Blue-green under load: at concurrency 8, switch to the other version, then roll back; for each, the time from
   the command (a new policy in the store) until answers come from the new version, and the failed requests.
3. The server's rollout driver under load (concurrency 8, default settings: the driver ticks every second and reads
   outcomes 2 × the log flush interval + 1 s old): a canary of a version that fails every live request, and one of
   a healthy version; the time from setting the policy to the driver's decision, and the requests that failed.

    python benchmarks/rollout_serving.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _load import run_load  # noqa: E402
from mloop.demo._server_process import ServerProcess, free_port  # noqa: E402
from mloop.serving import Deployments, Rollouts  # noqa: E402
from mloop.workspace import Workspace  # noqa: E402

console = Console()


def _models(ws: Workspace) -> bytes:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    for seed, alias in ((0, "champion"), (1, "challenger")):
        with ws.tracker.start_run("bench", run_name=f"hgb-{seed}", seed=seed) as run:
            model = HistGradientBoostingClassifier(random_state=seed, max_iter=80 + 40 * seed).fit(frame, y)
            uri = run.log_sklearn_model(model, frame)
        ws.registry.register(uri, "hgb", alias=alias)
    Deployments(ws.registry, ws.store, ws.bus).deploy("hgb", "hgb", "champion")
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.iloc[[7]].to_numpy().tolist()}}).encode()


def _broken(ws: Workspace, columns: list[str]) -> int:
    """A version that fails every live request: trained on positive inputs, it takes their log and refuses the NaN a
    negative input gives (a model that worked offline and breaks on production data)."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = make_classification(n_samples=2000, n_features=len(columns), random_state=3)
    frame = pd.DataFrame(np.abs(X) + 1.0, columns=columns)
    model = make_pipeline(FunctionTransformer(np.log), FunctionTransformer(validate=True), HistGradientBoostingClassifier(max_iter=20)).fit(frame, y)
    with ws.tracker.start_run("bench", run_name="broken-on-live-data") as run:
        uri = run.log_sklearn_model(model, frame)
    return ws.registry.register(uri, "hgb").version


def _driven(server: ServerProcess, ws: Workspace, rollouts: Rollouts, body: bytes, document: dict[str, object], seconds: float) -> dict[str, object]:
    """Set ``document`` under load and wait for the driver's final decision: how long, what, and what failed."""
    outcome: dict[str, object] = {}
    stop = threading.Event()

    def load() -> None:
        outcome["run"] = run_load(server.port, "/models/hgb/invocations", body, concurrency=8, seconds=seconds, headers=server.headers, warmup=0)
        stop.set()

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(1.0)
    started = time.time()
    row = rollouts.set("hgb", document, actor="benchmark", reason="driver benchmark")
    while not stop.is_set() and ws.store.rollouts.live("hgb") is not None:
        time.sleep(0.02)
    decided = time.time() - started
    thread.join()
    decisions = [d for d in ws.store.rollouts.decisions("hgb", last=20) if d.policy_id == row.id and d.actor == "driver"]
    final = decisions[-1].decision if decisions else {"action": "none", "reason": "no decision within the run"}
    return {"seconds": decided, "decisions": [d.action for d in decisions], "reason": final.get("reason", ""), "run": outcome["run"]}


def _until_version(server: ServerProcess, body: bytes, version: str, timeout: float = 10.0) -> float:
    start = time.perf_counter()
    with server.client(timeout=5.0) as client:
        while time.perf_counter() - start < timeout:
            answer = client.post("/models/hgb/invocations", content=body, headers={"content-type": "application/json"})
            if answer.headers.get("x-model-version") == version:
                return time.perf_counter() - start
            time.sleep(0.005)
    raise RuntimeError(f"version {version} never answered within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        body = _models(ws)
        rollouts = Rollouts(ws.registry, ws.store, ws.bus)
        port = free_port()
        with ServerProcess(ws.root, port=port, log_flush_interval=1.0, event_poll_interval=0.05).start(timeout=120) as server:
            path, headers = "/models/hgb/invocations", server.headers
            runs = {}
            for label in ("without a shadow", "with a shadow"):
                if label == "with a shadow":
                    rollouts.start("hgb", 2, "shadow", reason="benchmark")
                    time.sleep(0.5)  # the servers hear the policy within their poll interval
                runs[label] = [run_load(port, path, body, concurrency=c, seconds=args.seconds, headers=headers, warmup=300) for c in (1, 8)]
            shadow = httpx.get(f"{server.url}/v2/models/hgb/stats", headers=headers).json()["rollout"]["shadow"]
            t = Table(title="1. Shadow: client latency, same load, with and without a shadow version")
            for col in ("", "c=1 p50 (ms)", "c=1 p99 (ms)", "c=8 p50 (ms)", "c=8 p99 (ms)", "c=8 requests/s", "failed"):
                t.add_column(col, justify="right")
            for label, (c1, c8) in runs.items():
                t.add_row(label, f"{c1.pct(50):.2f}", f"{c1.pct(99):.2f}", f"{c8.pct(50):.2f}", f"{c8.pct(99):.2f}", f"{c8.rps:,.0f}",
                          str(c1.errors + c8.errors))
            console.print(t)
            base, shadowed = runs["without a shadow"], runs["with a shadow"]
            console.print(f"with a shadow, p99 at c=1 is {shadowed[0].pct(99) / base[0].pct(99):.2f}× and at c=8 "
                          f"{shadowed[1].pct(99) / base[1].pct(99):.2f}× the p99 without (2 cores: the shadow's scoring shares them)")
            console.print(f"the shadow: {shadow['offered']:,} copies offered, {shadow['dropped']:,} dropped, {shadow['compared_rows']:,} rows "
                          f"compared, agreement {shadow['agreement']:.1%}, |difference| p50 {shadow['abs_difference']['p50']:.3f}")

            rollouts.rollback("hgb", actor="benchmark")  # end the shadow; version 1 answers alone
            time.sleep(0.5)
            results: dict[str, tuple[float, int]] = {}
            outcome: dict[str, object] = {}

            def load() -> None:
                outcome["run"] = run_load(port, path, body, concurrency=8, seconds=args.seconds, headers=headers, warmup=0)

            thread = threading.Thread(target=load)
            thread.start()
            time.sleep(args.seconds / 4)
            rollouts.start("hgb", 2, "blue-green", reason="benchmark switch")
            results["switch to version 2"] = (_until_version(server, body, "2"), 0)
            time.sleep(args.seconds / 4)
            rollouts.rollback("hgb", actor="benchmark")
            results["roll back to version 1"] = (_until_version(server, body, "1"), 0)
            thread.join()
            run = outcome["run"]
            t = Table(title=f"2. Blue-green under load (concurrency 8, {args.seconds:.0f} s, {run.requests:,} requests)")  # type: ignore[attr-defined]
            for col in ("step", "command to effect (ms)"):
                t.add_column(col, justify="right")
            for step, (seconds, _) in results.items():
                t.add_row(step, f"{seconds * 1000:.0f}")
            console.print(t)
            console.print(f"failed requests across the switch and the rollback: {run.errors}")  # type: ignore[attr-defined]

            columns = json.loads(body)["dataframe_split"]["columns"]
            broken = _broken(ws, columns)
            time.sleep(0.5)
            cases = {
                "dead candidate (fails every request)": {"policy": "canary", "baseline": "1", "candidate": str(broken)},
                "healthy candidate": {"policy": "canary", "baseline": "1", "candidate": "2", "steps": [5, 50, 100], "min_samples": 300,
                                      "min_seconds": 2},
            }
            t = Table(title="3. The rollout driver in mloop serve, under load (concurrency 8; log flushed every 1 s, so outcomes are read 3 s late)")
            for col in ("canary", "decisions", "policy set → final decision (s)", "requests", "failed", "why"):
                t.add_column(col, justify="right")
            for label, document in cases.items():
                found = _driven(server, ws, rollouts, body, document, seconds=max(args.seconds, 40.0))
                load_run = found["run"]
                t.add_row(label, " → ".join(found["decisions"]) or "none", f"{found['seconds']:.1f}", f"{load_run.requests:,}",  # type: ignore[attr-defined]
                          f"{load_run.errors:,}", str(found["reason"]))  # type: ignore[attr-defined]
                time.sleep(0.5)
            console.print(t)


if __name__ == "__main__":
    main()
