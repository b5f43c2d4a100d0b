"""Explanations (issue 15): mloop's exact TreeSHAP beside ``shap.TreeExplainer`` on the same models, in one run.

1. TreeSHAP on 10,000 rows (rows/s, median of 3 timed calls after a warm-up; shap gets the estimator's own matrix,
   so its time leaves out the pipeline's transform that mloop's includes):
   a. the demo's flights model as the demo trains it (ordinal-encoded carrier, origin and dest into
      HistGradientBoosting's native categorical splits) — shap reads those splits as numeric thresholds, so beside
      the speed it prints how far shap's values are from adding up to the model's output, and mloop's;
   b. the same model with the categories as plain numbers (numeric splits only, which shap reads right): the
      largest difference between the two;
   c. LightGBM on the same data (categories as LightGBM categorical features), where shap calls LightGBM's own
      ``pred_contrib``.
   Target: mloop ≥ 1.5× shap's rows/s, difference ≤ 1e-6.
2. Registration with the card's explanations (the model logged with its training rows and labels: they are computed
   after ``register`` returns and the card rewritten) beside registration of the same model logged without them
   (no explanations), median of 5 each, in one workspace; and the time until the explained card is written.
   Target: registration no more than 20 % slower.
3. ``POST /v2/models/flights/explain`` for one row over HTTP (``mloop serve``, one worker, one keep-alive
   connection, sequential requests): p50 / p99. Target: p50 < 5 ms.

    python benchmarks/explain.py [--rows 10000] [--requests 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _http_timing import KeepAliveClient  # noqa: E402
from mloop.demo._flights import SPEC, load_flights  # noqa: E402
from mloop.explain import explain  # noqa: E402
from mloop.training import fit  # noqa: E402

console = Console(width=200)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _median_seconds(call: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    result = call()  # warm-up: Numba's compiled kernel loads from its cache, libraries import
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _shap_values(estimator: Any, matrix: Any) -> np.ndarray:
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(estimator)
        values = np.asarray(explainer.shap_values(matrix, check_additivity=False))
    return values[..., -1] if values.ndim == 3 else values


def _shap_base(estimator: Any) -> float:
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.ravel(shap.TreeExplainer(estimator).expected_value)[-1])


def _against(result: Any, raw: np.ndarray) -> float:
    """Max |base + Σ attributions − the model's own raw output| (the model computing it, not mloop)."""
    return float(np.abs(result.base_values + result.attributions.sum(axis=1) - raw).max())


def _against_shap(values: np.ndarray, estimator: Any, raw: np.ndarray) -> float:
    return float(np.abs(values.sum(axis=1) + _shap_base(estimator) - raw).max())


def _one_thread(call: Callable[[], Any]) -> float:
    """mloop's time with Numba held to one thread (shap's C++ TreeSHAP uses one)."""
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return _median_seconds(call)[0]
    finally:
        numba.set_num_threads(threads)


def _row(name: str, rows: int, ours_s: float, single_s: float, theirs_s: float, diff: str, ours_err: float, theirs_err: str) -> list[str]:
    return [name, f"{rows / ours_s:,.0f}", f"{rows / single_s:,.0f}", f"{rows / theirs_s:,.0f}", f"{theirs_s / ours_s:.1f}× ({theirs_s / single_s:.1f}×)",
            diff, f"{ours_err:.1e}", theirs_err]


def tree_shap(train: pd.DataFrame, rows: pd.DataFrame) -> list[list[str]]:
    out = []
    # a. the demo's model, categorical splits
    model = fit(train, SPEC, {}, 0)
    hgb = model[-1]
    matrix = model[:-1].transform(rows[SPEC.features])
    ours_s, ours = _median_seconds(lambda: explain(model, rows))
    single_s = _one_thread(lambda: explain(model, rows))
    theirs_s, theirs = _median_seconds(lambda: _shap_values(hgb, matrix))
    raw = hgb._raw_predict(matrix)[:, 0]
    shap_err = float(np.abs(theirs.sum(axis=1) + _shap_base(hgb) - raw).max())
    out.append(_row("flights (demo: categorical splits)", len(rows), ours_s, single_s, theirs_s, "shap misreads the splits", _against(ours, raw),
                    f"{shap_err:.2f}"))

    # b. the same data, categories as numbers: shap reads every split right
    codes = model[:-1].transform(train[SPEC.features])
    from sklearn.ensemble import HistGradientBoostingClassifier

    numeric = HistGradientBoostingClassifier(early_stopping=False, random_state=0, max_iter=200, max_leaf_nodes=31, min_samples_leaf=40)
    numeric.fit(codes, train[SPEC.target].astype(int))
    columns = [f"f{i}" for i in range(codes.shape[1])]
    frame = pd.DataFrame(matrix, columns=columns)
    ours_s, ours = _median_seconds(lambda: explain(numeric, frame, columns=columns))
    single_s = _one_thread(lambda: explain(numeric, frame, columns=columns))
    theirs_s, theirs = _median_seconds(lambda: _shap_values(numeric, matrix))
    diff = float(np.abs(ours.attributions - theirs).max())
    raw = numeric._raw_predict(matrix)[:, 0]
    out.append(_row("flights (categories as numbers)", len(rows), ours_s, single_s, theirs_s, f"{diff:.1e}", _against(ours, raw),
                    f"{float(np.abs(theirs.sum(axis=1) + _shap_base(numeric) - raw).max()):.1e}"))

    # c. LightGBM, categories as LightGBM categoricals
    import lightgbm as lgb

    n_cat = len(SPEC.categorical)
    booster = lgb.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1, n_jobs=1)
    booster.fit(codes, train[SPEC.target].astype(int), categorical_feature=list(range(n_cat)))
    ours_s, ours = _median_seconds(lambda: explain(booster, frame, columns=columns))
    single_s = _one_thread(lambda: explain(booster, frame, columns=columns))
    theirs_s, theirs = _median_seconds(lambda: _shap_values(booster, matrix))
    diff = float(np.abs(ours.attributions - theirs).max())
    raw = booster.predict(matrix, raw_score=True)
    out.append(_row("LightGBM (200 trees, categorical)", len(rows), ours_s, single_s, theirs_s, f"{diff:.1e}", _against(ours, raw),
                    f"{_against_shap(theirs, booster, raw):.1e}"))
    return out


def registration(train: pd.DataFrame, runs: int = 5) -> dict[str, float]:
    from mloop.registry import Registry
    from mloop.workspace import Workspace

    model = fit(train, SPEC, {}, 0)
    with tempfile.TemporaryDirectory(prefix="mloop-bench-register-") as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        uris = []
        for i in range(2 * runs + 1):
            with ws.tracker.start_run("bench", seed=0) as run:
                rows = train[SPEC.features] if i % 2 == 0 else train[SPEC.features].head(5)  # head(5): no rows kept, nothing to explain
                uris.append((i % 2 == 0, run.log_sklearn_model(model, rows, labels=train[SPEC.target] if i % 2 == 0 else None)))
        ws.registry.register(*[uris[0][1], "warm-up"])  # imports and the compiled kernel, outside the timing
        Registry.wait_for_cards()
        timed: dict[str, list[float]] = {"with": [], "without": [], "card": []}
        for explained, uri in uris[1:]:
            start = time.perf_counter()
            ws.registry.register(uri, "flights")
            timed["with" if explained else "without"].append(time.perf_counter() - start)
            Registry.wait_for_cards()
            if explained:
                timed["card"].append(time.perf_counter() - start)
        ws.close()
    return {k: statistics.median(v) for k, v in timed.items()}


def http_explain(train: pd.DataFrame, rows: pd.DataFrame, requests: int) -> dict[str, float]:
    from mloop.demo._server_process import ServerProcess
    from mloop.serving import Deployments
    from mloop.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="mloop-bench-explain-") as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        with ws.tracker.start_run("bench", run_name="flights", seed=0) as run:
            uri = run.log_sklearn_model(fit(train, SPEC, {}, 0), train[SPEC.features])
        ws.registry.register(uri, "flights", alias="champion")
        Deployments(ws.registry, ws.store, ws.bus).deploy("flights", "flights", "champion")
        ws.close()
        with ServerProcess(Path(tmp) / "ws", log_flush_interval=1.0) as server:
            client = KeepAliveClient(server.port, headers=server.headers)
            bodies = []
            for i in range(50):
                row = rows.iloc[[i]][SPEC.features]
                values = [None if isinstance(v, float) and np.isnan(v) else v for v in row.iloc[0].tolist()]
                bodies.append(json.dumps({"dataframe_split": {"columns": SPEC.features, "data": [values]}}).encode())
            status, body = client.post("/v2/models/flights/explain", bodies[0])
            if status != 200:
                raise RuntimeError(f"explain answered {status}: {body[:300]!r}")
            for i in range(50):  # warm-up
                client.post("/v2/models/flights/explain", bodies[i % len(bodies)])
            latencies = []
            for i in range(requests):
                start = time.perf_counter()
                status, _ = client.post("/v2/models/flights/explain", bodies[i % len(bodies)])
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    raise RuntimeError(f"explain answered {status}")
            client.close()
    ordered = sorted(latencies)
    return {"p50": ordered[len(ordered) // 2], "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    data = load_flights()
    train = data[data["month"] < 3]
    rows = data[data["month"] == 3].sample(args.rows, random_state=0).reset_index(drop=True)
    console.print(f"flights: trained on {len(train):,} rows (Jan–Feb), explaining {len(rows):,} March rows; OMP_NUM_THREADS=1 for both")

    table = Table(title=f"TreeSHAP, {len(rows):,} rows: mloop beside shap.TreeExplainer {__import__('shap').__version__}")
    for col in ("model", "mloop rows/s", "mloop 1 thread", "shap rows/s", "mloop ÷ shap (1 thread)", "max |mloop − shap|", "mloop additivity",
                "shap additivity"):
        table.add_column(col)
    for r in tree_shap(train, rows):
        table.add_row(*r)
    console.print(table, width=200)
    console.print("target: mloop ≥ 1.5× shap's rows/s, difference ≤ 1e-6 (where shap reads the model right). "
                  "Additivity: max |base + Σ attributions − the model's raw output|.")

    reg = registration(train)
    console.print(f"registration, median of 5: {reg['with']:.3f} s with the card's explanations (computed after it returns), "
                  f"{reg['without']:.3f} s without ({(reg['with'] / reg['without'] - 1) * 100:+.0f} %; target ≤ +20 %); "
                  f"the explained card written {reg['card']:.2f} s after register was called")

    timing = http_explain(train, rows, args.requests)
    console.print(f"POST /v2/models/flights/explain, one row, concurrency 1, {args.requests} requests: "
                  f"p50 {timing['p50']:.2f} ms, p99 {timing['p99']:.2f} ms (target p50 < 5 ms)")


if __name__ == "__main__":
    main()
