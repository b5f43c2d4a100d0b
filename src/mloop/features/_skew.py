"""Training/serving skew: the feature values a server was given online (from its prediction log) beside the values the
training join computes offline for the same keys and times. Rows that disagree mean the model was served something
other than what it would be trained on: a stale materialisation, a source rewritten after the fact, a bug."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from mloop.features._definitions import FeatureRegistry

TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class FeatureSkew:
    """One feature over the compared rows: how many disagree, and how (a value on one side only, or two values
    further apart than the tolerance; ``max_abs_diff`` over the numeric ones)."""

    feature: str
    compared: int
    mismatched: int
    only_online: int
    only_offline: int
    max_abs_diff: float | None

    @property
    def rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class SkewReport:
    """The check of one deployment's logged rows; ``skewed`` lists the features whose mismatch rate passes ``max_rate``."""

    deployment: str
    service: str
    rows: int
    tolerance: float
    max_rate: float
    features: list[FeatureSkew] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def skewed(self) -> list[str]:
        return [f.feature for f in self.features if f.rate > self.max_rate]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": [{**asdict(f), "rate": f.rate} for f in self.features], "skewed": self.skewed}


def _mismatches(online: pd.Series, offline: pd.Series, tolerance: float, is_time: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """(mismatch, online only, offline only) masks and the largest numeric difference."""
    import pandas as pd

    if is_time:
        online, offline = pd.to_datetime(online, utc=True), pd.to_datetime(offline, utc=True)
    on_null, off_null = online.isna().to_numpy(), offline.isna().to_numpy()
    both = ~on_null & ~off_null
    differ = np.zeros(len(online), dtype=bool)
    largest = None
    a, b = pd.to_numeric(online, errors="coerce"), pd.to_numeric(offline, errors="coerce")
    numeric = not is_time and bool((a.notna() | on_null).all() and (b.notna() | off_null).all())
    if numeric:
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        differ[both] = ~np.isclose(x[both], y[both], rtol=tolerance, atol=tolerance)
        if both.any():
            largest = float(np.max(np.abs(x[both] - y[both])))
    else:
        differ[both] = (online[both].astype(str).to_numpy() != offline[both].astype(str).to_numpy())
    only_online, only_offline = ~on_null & off_null, on_null & ~off_null
    return differ | only_online | only_offline, only_online, only_offline, largest


def compare(logged: pd.DataFrame, offline: pd.DataFrame, keys: Sequence[str], features: Sequence[str], *, timestamps: Sequence[str] = (),
            tolerance: float = 1e-6, examples: int = 5) -> tuple[list[FeatureSkew], list[dict[str, Any]]]:
    """Feature by feature, the logged (online) values against the offline ones, row for row (both frames in the same
    order); ``timestamps`` names the features holding times. Numbers agree within ``tolerance`` (absolute or relative)."""
    results: list[FeatureSkew] = []
    shown: list[dict[str, Any]] = []
    for feature in features:
        if feature not in logged.columns:
            raise InvalidInput(f"The prediction log has no column {feature!r}: the deployment was not served this feature.", field=feature)
        differ, only_online, only_offline, largest = _mismatches(logged[feature].reset_index(drop=True), offline[feature].reset_index(drop=True),
                                                                 tolerance, feature in timestamps)
        results.append(FeatureSkew(feature, len(logged), int(differ.sum()), int(only_online.sum()), int(only_offline.sum()), largest))
        for i in np.flatnonzero(differ)[: max(examples - len(shown), 0)]:
            row = logged.iloc[int(i)]
            shown.append({**{k: row[k] for k in keys}, "ts": float(row["ts"]), "feature": feature,
                          "online": _plain(row[feature]), "offline": _plain(offline[feature].iloc[int(i)])})
    return results, shown


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (None for missing)."""
    import pandas as pd

    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def skew_check(registry: FeatureRegistry, deployment: str, service: str, logged: pd.DataFrame, *, tolerance: float = 1e-6,
               max_rate: float = 0.01) -> SkewReport:
    """Recompute offline — as of known time, at each logged request's time — the service's features for the keys of
    ``logged`` (the deployment's prediction log: join keys, the features it was served, ``ts`` in epoch seconds) and
    compare them with what was served."""
    import pandas as pd

    from mloop.features._offline import get_historical_features

    if not 0 <= max_rate <= 1:
        raise InvalidInput(f"max_rate must be within [0, 1], got {max_rate}.", field="max_rate")
    if not tolerance >= 0:
        raise InvalidInput(f"tolerance must be ≥ 0, got {tolerance}.", field="tolerance")
    entities = registry.entities()
    resolved = registry.resolve(service=service)
    keys = list(dict.fromkeys(k for view, _ in resolved for e in view.entities for k in entities[e].join_keys))
    features = [name for _, names in resolved for name in names]
    timestamps = [f.name for view, names in resolved for f in view.features if f.name in names and f.dtype == "timestamp"]
    if logged.empty:
        return SkewReport(deployment, service, 0, tolerance, max_rate)
    missing = [k for k in keys if k not in logged.columns]
    if missing:
        raise InvalidInput(f"The prediction log of {deployment!r} has no join key {missing[0]!r}: its requests were not filled from "
                           f"feature service {service!r}.", field=missing[0])
    logged = logged.reset_index(drop=True)
    rows = logged[keys].copy()
    for key in keys:  # the log keeps numbers as float64: whole numbers go back to the integers a key column holds
        column = rows[key]
        if column.dtype.kind == "f" and column.notna().all() and bool((column == np.floor(column)).all()):
            rows[key] = logged[key] = column.astype("int64")
    rows[TIMESTAMP] = pd.to_datetime(logged["ts"], unit="s", utc=True)
    offline = get_historical_features(registry, rows, service=service, timestamp=TIMESTAMP, as_of="known")
    assert offline is not None
    found, examples = compare(logged, offline, keys, features, timestamps=timestamps, tolerance=tolerance)
    return SkewReport(deployment, service, len(logged), tolerance, max_rate, found, examples)
