"""Drift between two tables, as a self-contained HTML report (inline SVG, no JavaScript or CDN) or one JSON object."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.files import write_atomic
from mloop.monitoring._charts import histogram_pair
from mloop.monitoring.drift import DatasetDrift, DriftReport, FeatureDrift


def detector(reference: pd.DataFrame, current: pd.DataFrame, *, alpha: float = 0.05, correction: str = "bh",
             effect_floor: float = 0.1, drift_share: float = 0.3, prediction: str | None = None,
             tests: dict[str, str] | None = None) -> DatasetDrift:
    """A :class:`DatasetDrift` fitted on ``reference``, after checking that ``current`` has its columns."""
    if reference.empty:
        raise InvalidInput("The reference table has no rows.", field="reference")
    if current.empty:
        raise InvalidInput("The current table has no rows.", field="current")
    missing = [c for c in reference.columns if c not in current.columns]
    if missing:
        raise InvalidInput(f"The current table lacks column(s) {missing} that the reference has.", field=str(missing[0]))
    found = DatasetDrift(alpha=alpha, correction=correction, effect_floor=effect_floor, drift_share=drift_share, tests=tests, prediction=prediction)
    return found.fit(reference)


def compare(reference: pd.DataFrame, current: pd.DataFrame, **options: Any) -> DriftReport:
    """Per-feature drift of ``current`` against ``reference`` over the columns the reference has
    (options as :func:`detector`)."""
    return detector(reference, current, **options).score(current)


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
        "drift": f.drift,
    }


def summary(report: DriftReport) -> dict[str, Any]:
    """The report as one JSON-ready object: ``{"drift", "share_drifted", ..., "features": [...], "prediction"}``."""
    return {
        "drift": report.drift,
        "share_drifted": report.share_drifted,
        "correction": report.correction,
        "alpha": report.alpha,
        "effect_floor": report.effect_floor,
        "rows_reference": report.rows_reference,
        "rows_current": report.rows_current,
        "features": [_feature(f) for f in report.features],
        "prediction": _feature(report.prediction) if report.prediction else None,
    }


def _histogram(fitted: DatasetDrift, name: str, current: pd.Series) -> str:
    labels, ref, cur = fitted.histogram(name, current)
    keep = (ref + cur) > 0
    ref_share = (ref / max(ref.sum(), 1))[keep].tolist()
    cur_share = (cur / max(cur.sum(), 1))[keep].tolist()
    return histogram_pair(ref_share, cur_share, [label for label, k in zip(labels, keep, strict=True) if k], title=name)


def render(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    report: DriftReport,
    *,
    title: str = "Data drift",
    fitted: DatasetDrift | None = None,
    timeline: str | None = None,
) -> str:
    """The report as one HTML page. ``fitted`` (the detector that made ``report``) saves refitting the
    reference for the plots; ``timeline`` is an SVG of earlier windows, for monitor reports."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from mloop import __version__

    if fitted is None:
        fitted = DatasetDrift(correction=report.correction, tests={f.name: f.test for f in report.features},
                              prediction=report.prediction.name if report.prediction else None).fit(reference)
    env = Environment(loader=PackageLoader("mloop.monitoring", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, d=3: "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}g}"
    names = [f.name for f in report.features] + ([report.prediction.name] if report.prediction else [])
    charts = {name: _histogram(fitted, name, current[name]) for name in names}
    return env.get_template("drift.html.j2").render(
        title=title, report=report, summary=summary(report), charts=charts, version=__version__, timeline=timeline,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_html(path: Path, html: str) -> Path:
    """Write ``html`` atomically and durably."""
    write_atomic(path, html)
    return path
