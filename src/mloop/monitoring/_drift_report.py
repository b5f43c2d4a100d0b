"""Drift between two tables, as a self-contained HTML report (inline SVG, no JavaScript or CDN) or one JSON object."""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mloop.errors import InvalidInput
from mloop.monitoring._charts import histogram_pair
from mloop.monitoring.drift import PSI, DatasetDrift, DriftReport


def compare(reference: pd.DataFrame, current: pd.DataFrame, *, alpha: float = 0.05, correction: str = "bh",
            effect_floor: float = 0.1, drift_share: float = 0.3) -> DriftReport:
    """Per-feature drift of ``current`` against ``reference`` over the columns the reference has."""
    if reference.empty:
        raise InvalidInput("The reference table has no rows.", field="reference")
    if current.empty:
        raise InvalidInput("The current table has no rows.", field="current")
    missing = [c for c in reference.columns if c not in current.columns]
    if missing:
        raise InvalidInput(f"The current table lacks column(s) {missing} that the reference has.", field=str(missing[0]))
    detector = DatasetDrift(alpha=alpha, correction=correction, effect_floor=effect_floor, drift_share=drift_share)
    return detector.fit(reference).score(current[list(reference.columns)])


def _clean(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summary(report: DriftReport) -> dict[str, Any]:
    """The report as one JSON-ready object: ``{"drift", "share_drifted", ..., "features": [...]}``."""
    return {
        "drift": report.drift,
        "share_drifted": report.share_drifted,
        "correction": report.correction,
        "alpha": report.alpha,
        "effect_floor": report.effect_floor,
        "rows_reference": report.rows_reference,
        "rows_current": report.rows_current,
        "features": [
            {
                "name": f.name,
                "test": f.test,
                "statistic": _clean(f.statistic),
                "p_value": _clean(f.p_value),
                "p_value_adjusted": _clean(f.p_value_adjusted),
                "effect_size": _clean(f.effect_size),
                "drift": f.drift,
            }
            for f in report.features
        ],
    }


def _histogram(name: str, reference: pd.Series, current: pd.Series) -> str:
    binner = PSI(bins=10).fit(reference.to_numpy())
    ref = binner.reference_counts_
    cur = binner.counts(current.to_numpy())
    if binner.numeric_:
        edges = [float(e) for e in binner.bin_edges_]
        labels = [f"≤ {edges[0]:.3g}"] + [f"{a:.3g} – {b:.3g}" for a, b in zip(edges, edges[1:], strict=False)] + [f"> {edges[-1]:.3g}", "missing"]
    else:
        labels = [str(c) for c in binner.categories_] + ["other"]
    keep = (ref + cur) > 0
    ref_share = (ref / max(ref.sum(), 1))[keep].tolist()
    cur_share = (cur / max(cur.sum(), 1))[keep].tolist()
    return histogram_pair(ref_share, cur_share, [label for label, k in zip(labels, keep, strict=True) if k], title=name)


def render(reference: pd.DataFrame, current: pd.DataFrame, report: DriftReport, *, title: str = "Data drift") -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from mloop import __version__

    env = Environment(loader=PackageLoader("mloop.monitoring", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, d=3: "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}g}"
    charts = {f.name: _histogram(f.name, reference[f.name], current[f.name]) for f in report.features}
    return env.get_template("drift.html.j2").render(
        title=title, report=report, summary=summary(report), charts=charts, version=__version__,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_html(path: Path, html: str) -> Path:
    """Write ``html`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(html)
    os.replace(tmp, path)
    return path
