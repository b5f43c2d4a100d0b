"""The feature-store benchmark's data, in the issue's shape: a driver-stats view of N drivers × 168 hourly rows × 10
float32 features (``f0``..``f9``), its ``created`` equal to the event time except 1 % same-timestamp corrections
created 1–6 h later, written hour by hour to Parquet; and entity rows (``driver_id``, ``event_timestamp``) spread from
12 h before the first feature row to two days after the last, so "no row yet" and "older than the 24 h TTL" both occur."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = datetime(2026, 1, 5, tzinfo=UTC)
HOURS = 168
FEATURES = [f"f{i}" for i in range(10)]
TTL = timedelta(hours=24)
_HOUR_US = 3_600_000_000
_START_US = int(START.timestamp()) * 1_000_000


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), type=pa.timestamp("us", tz="UTC"))


def write_view(path: Path, drivers: int = 100_000, seed: int = 0) -> int:
    """Write the view to ``path`` (one row group per hour) and return its number of rows."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([("driver_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
                        ("created", pa.timestamp("us", tz="UTC")), *((f, pa.float32()) for f in FEATURES)])
    rows = 0
    ids = np.arange(drivers, dtype=np.int64)
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for hour in range(HOURS):
            event = np.full(drivers, _START_US + hour * _HOUR_US, dtype=np.int64)
            fixed = rng.random(drivers) < 0.01  # 1 %: a correction of this hour's row, created 1–6 h later
            n_fix = int(fixed.sum())
            driver = np.concatenate([ids, ids[fixed]])
            ev = np.concatenate([event, event[fixed]])
            created = np.concatenate([event, event[fixed] + rng.integers(1, 7, n_fix) * _HOUR_US])
            values = rng.standard_normal((len(driver), len(FEATURES)), dtype=np.float32)
            columns = [pa.array(driver), _timestamps(ev), _timestamps(created), *(pa.array(values[:, i]) for i in range(len(FEATURES)))]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            rows += len(driver)
    return rows


def entity_rows(m: int, drivers: int = 100_000, seed: int = 1) -> pa.Table:
    """``m`` entity rows: random drivers at random instants from 12 h before the first feature row to 48 h after the
    last (a tenth of them on the exact hour, so ties with event timestamps occur)."""
    rng = np.random.default_rng(seed)
    lo, hi = _START_US - 12 * _HOUR_US, _START_US + (HOURS + 48) * _HOUR_US
    at = rng.integers(lo, hi, m)
    on_hour = rng.random(m) < 0.1
    at[on_hour] = at[on_hour] // _HOUR_US * _HOUR_US
    return pa.table({"driver_id": pa.array(rng.integers(0, drivers, m)), "event_timestamp": _timestamps(at)})


def write_entities(path: Path, m: int, drivers: int = 100_000, seed: int = 1) -> None:
    """Write :func:`entity_rows` to ``path``."""
    pq.write_table(entity_rows(m, drivers, seed), path)
