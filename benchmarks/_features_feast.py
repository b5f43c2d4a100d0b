"""Feast 0.67's side of benchmarks/features.py, run by the venv that has Feast (it pins pandas < 3, so it cannot share
mloop's). It never imports mloop: the same view (benchmarks/_features_data.py) goes through Feast's own API and CLI.

    python _features_feast.py setup REPO VIEW file|duckdb  a Feast repo (local provider, SQLite online store, the file
                                                           or DuckDB offline store) over VIEW; `feast apply`
    python _features_feast.py join REPO ENTITIES OUT       get_historical_features → Parquet (the process to be timed;
                                                           the entity rows carry their position as column `row`)
    python _features_feast.py read REPO N DRIVERS.json     N in-process get_online_features of 1 driver × 10 features
    python _features_feast.py serve REPO N                 `feast serve` on a loopback port, N sequential POSTs of
                                                           /get-online-features on one keep-alive connection

``join``, ``read`` and ``serve`` print one JSON line; ``feast materialize`` is timed by the caller as Feast's CLI itself.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

_STARTED = time.perf_counter()

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _features_data import FEATURES  # noqa: E402
from _http_timing import time_posts, wait_ready  # noqa: E402

os.environ.setdefault("FEAST_USAGE", "False")  # no usage reporting from a benchmark (nothing is reachable anyway)
FEAST = str(Path(sys.executable).with_name("feast"))
REFS = [f"driver_stats:{f}" for f in FEATURES]
DRIVERS = 100_000

REPO_PY = '''from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
source = FileSource(name="driver_stats_source", path=VIEW, timestamp_field="event_timestamp", created_timestamp_column="created")
driver_stats = FeatureView(
    name="driver_stats", entities=[driver], ttl=timedelta(hours=24), online=True, source=source,
    schema=[Field(name="driver_id", dtype=Int64), *(Field(name=f, dtype=Float32) for f in FEATURES)],
)
driver_model = FeatureService(name="driver_model", features=[driver_stats])
'''


def setup(repo: Path, view: Path, kind: str) -> dict[str, float]:
    """Write the repo (feature_store.yaml + definitions) and apply it with the CLI."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"project: bench\nprovider: local\nregistry: {repo / 'registry.db'}\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        f"offline_store:\n  type: {kind}\nentity_key_serialization_version: 3\n"
    )
    (repo / "definitions.py").write_text(REPO_PY.replace("VIEW", repr(str(view))).replace("FEATURES", repr(FEATURES)))
    started = time.perf_counter()
    done = subprocess.run([FEAST, "-c", str(repo), "apply"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"feast apply failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return {"apply_s": time.perf_counter() - started}


def join(repo: Path, entities: Path, out: Path) -> dict[str, float]:
    """The training join as a user writes it: entity rows in a DataFrame, the ten feature references, to Parquet.
    Returns the seconds spent importing Feast and opening the store, and the seconds of the join itself."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    opened = time.perf_counter()
    entity_df = pd.read_parquet(entities)
    entity_df["row"] = np.arange(len(entity_df), dtype=np.int64)
    job = store.get_historical_features(entity_df=entity_df, features=REFS)
    pq.write_table(job.to_arrow(), out)
    return {"open_s": opened - _STARTED, "join_s": time.perf_counter() - opened}


def read(repo: Path, n: int, sample: Path) -> dict[str, object]:
    """p50/p99 µs of ``get_online_features(...).to_dict()`` for one random driver × 10 features, after a warm-up;
    also the values Feast returns for the drivers listed in ``sample`` (compared with mloop's by the caller)."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    rng = random.Random(0)
    for _ in range(min(n // 10, 2_000)):
        store.get_online_features(features=REFS, entity_rows=[{"driver_id": rng.randrange(DRIVERS)}]).to_dict()
    times = []
    for _ in range(n):
        key = [{"driver_id": rng.randrange(DRIVERS)}]
        started = time.perf_counter_ns()
        store.get_online_features(features=REFS, entity_rows=key).to_dict()
        times.append((time.perf_counter_ns() - started) / 1000)
    times.sort()
    drivers = json.loads(sample.read_text())
    values = store.get_online_features(features=REFS, entity_rows={"driver_id": drivers}).to_dict()
    return {"reads": n, "p50_us": statistics.median(times), "p99_us": times[int(0.99 * n)],
            "values": {f: values[f] for f in ("driver_id", *FEATURES)}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(repo: Path, n: int) -> dict[str, object]:
    """`feast serve` (one worker, no access log, no worker recycling) timed with benchmarks/_http_timing.py: the
    same client, bodies of one random driver each, as mloop's endpoint gets."""
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([FEAST, "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port), "-w", "1", "--no-access-log",
                             "--max-requests", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(port, "/health", is_alive=lambda: proc.poll() is None)
        startup = time.perf_counter() - started
        rng = random.Random(1)
        bodies = [json.dumps({"features": REFS, "entities": {"driver_id": [rng.randrange(DRIVERS)]}}).encode() for _ in range(n)]
        timing = time_posts(port, "/get-online-features", bodies)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"requests": len(timing.latencies_ms), "status": timing.status, "p50_ms": timing.pct(50), "p99_ms": timing.pct(99),
            "startup_s": startup}


def main() -> None:
    mode, repo = sys.argv[1], Path(sys.argv[2])
    if mode == "setup":
        print(json.dumps(setup(repo, Path(sys.argv[3]), sys.argv[4])))
    elif mode == "join":
        print(json.dumps(join(repo, Path(sys.argv[3]), Path(sys.argv[4]))))
    elif mode == "read":
        print(json.dumps(read(repo, int(sys.argv[3]), Path(sys.argv[4]))))
    elif mode == "serve":
        print(json.dumps(serve(repo, int(sys.argv[3]))))
    else:
        raise SystemExit(f"Unknown mode {mode!r}. Valid: join, read, serve, setup.")


if __name__ == "__main__":
    main()
