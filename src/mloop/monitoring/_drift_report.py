"""Drift between two tables, as a self-contained HTML report (inline SVG, no JavaScript or CDN) or one JSON object."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from mloop.data._columns import Column, Columns, as_columns, rows
from mloop.errors import InvalidInput
from mloop.files import write_atomic
from mloop.monitoring._charts import histogram_pair
from mloop.monitoring.drift import DatasetDrift, DriftReport, FeatureDrift

if TYPE_CHECKING:
    import pandas as pd

Table = Union["pd.DataFrame", Mapping[str, Any]]


def detector(reference: Table, current: Table | None = None, *, alpha: float = 0.05, correction: str = "bh",
             floors: Mapping[str, float] | None = None, drift_share: float = 0.3, prediction: str | None = None,
             tests: dict[str, str] | None = None) -> DatasetDrift:
    """A :class:`DatasetDrift` fitted on ``reference``, after checking that ``current`` (when given) has its
    columns. Without ``current`` the caller may drop the reference before reading the current table: the
    detector keeps what it needs (how ``mloop drift report`` holds one table at a time)."""
    ref = as_columns(reference)
    if not ref or rows(ref) == 0:
        raise InvalidInput("The reference table has no rows.", field="reference")
    if current is not None:
        check_current(ref, as_columns(current))
    found = DatasetDrift(alpha=alpha, correction=correction, floors=floors, drift_share=drift_share, tests=tests, prediction=prediction)
    return found.fit(ref)


def check_current(reference: Iterable[str], current: Columns) -> None:
    """``current`` has rows and every column named in ``reference``."""
    if not current or rows(current) == 0:
        raise InvalidInput("The current table has no rows.", field="current")
    missing = [c for c in reference if c not in current]
    if missing:
        raise InvalidInput(f"The current table lacks column(s) {missing} that the reference has.", field=str(missing[0]))


def compare(reference: Table, current: Table, **options: Any) -> DriftReport:
    """Per-feature drift of ``current`` against ``reference`` over the columns the reference has
    (options as :func:`detector`)."""
    return detector(reference, current, **options).score(current)


_MEASURE_LABELS = {"wasserstein_sd": "W1/σ", "total_variation": "TV", "psi": "PSI", "jensen_shannon": "JS distance"}


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _feature(f: FeatureDrift) -> dict[str, Any]:
    return {
        "name": f.name,
        "test": f.test,
        "statistic": _clean(f.statistic),
        "p_value": _clean(f.p_value),
        "p_value_adjusted": _clean(f.p_value_adjusted),
        "effect_size": _clean(f.effect_size),
        "measure": f.measure,
        "floor": f.floor,
        "drift": f.drift,
    }


def summary(report: DriftReport) -> dict[str, Any]:
    """The report as one JSON-ready object: ``{"drift", "share_drifted", ..., "features": [...], "prediction"}``."""
    return {
        "drift": report.drift,
        "share_drifted": report.share_drifted,
        "correction": report.correction,
        "alpha": report.alpha,
        "floors": report.floors,
        "rows_reference": report.rows_reference,
        "rows_current": report.rows_current,
        "features": [_feature(f) for f in report.features],
        "prediction": _feature(report.prediction) if report.prediction else None,
    }


def _histogram(fitted: DatasetDrift, name: str, current: Column) -> str:
    labels, ref, cur = fitted.histogram(name, current)
    keep = (ref + cur) > 0
    ref_share = (ref / max(ref.sum(), 1))[keep].tolist()
    cur_share = (cur / max(cur.sum(), 1))[keep].tolist()
    return histogram_pair(ref_share, cur_share, [label for label, k in zip(labels, keep, strict=True) if k], title=name)


def render(
    reference: Table | None,
    current: Table,
    report: DriftReport,
    *,
    title: str = "Data drift",
    fitted: DatasetDrift | None = None,
    timeline: str | None = None,
    attribution: dict[str, Any] | None = None,
) -> str:
    """The report as one HTML page. ``fitted`` (the detector that made ``report``) saves refitting the
    reference for the plots; ``timeline`` is an SVG of earlier windows, for monitor reports; ``attribution`` (from
    ``AttributionShift.to_dict()``) which columns moved the predictions."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from mloop import __version__

    if fitted is None:
        if reference is None:
            raise InvalidInput("render needs the reference table or the fitted detector.", field="reference")
        fitted = DatasetDrift(correction=report.correction, tests={f.name: f.test for f in report.features},
                              prediction=report.prediction.name if report.prediction else None).fit(reference)
    columns: Columns = as_columns(current)
    env = Environment(loader=PackageLoader("mloop.monitoring", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["measure"] = lambda m: _MEASURE_LABELS.get(m, m)
    env.filters["num"] = lambda v, d=3: "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}g}"
    names = [f.name for f in report.features] + ([report.prediction.name] if report.prediction else [])
    charts = {name: _histogram(fitted, name, columns[name]) for name in names}
    return env.get_template("drift.html.j2").render(
        title=title, report=report, summary=summary(report), charts=charts, version=__version__, timeline=timeline, attribution=attribution,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_html(path: Path, html: str) -> Path:
    """Write ``html`` atomically and durably."""
    write_atomic(path, html)
    return path
