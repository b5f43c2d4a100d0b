"""The demo's HTML report: one self-contained file (inline CSS and SVG) that works offline."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

from mloop import __version__
from mloop.demo._flights import SPEC
from mloop.demo._records import attempt_rows
from mloop.files import write_atomic
from mloop.monitoring._charts import bar_chart, heat_color, line_chart
from mloop.monitoring.drift import DEFAULT_FLOORS

if TYPE_CHECKING:
    from mloop.demo._records import DemoResult


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def render_report(result: DemoResult) -> str:
    env = Environment(loader=PackageLoader("mloop.demo", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["fmt"] = _fmt
    env.filters["heat"] = heat_color
    months = [dt.date(2013, w.month, 1).strftime("%b") for w in result.windows]
    auc_chart = line_chart(
        months,
        {
            "with the loop (served)": [w.auc_served for w in result.windows],
            "without retraining (v1 only)": [w.auc_static for w in result.windows],
        },
        title="AUC by month",
        y_label="ROC AUC",
    )
    drift_chart = bar_chart(months, [w.drift_share for w in result.windows], title="Share of features drifted (BH-corrected, past the effect floors)",
                            threshold=0.3)
    auto, steps = result.steps_without_human
    served = [w.auc_served for w in result.windows if math.isfinite(w.auc_served)]
    static = [w.auc_static for w in result.windows if math.isfinite(w.auc_static)]
    return env.get_template("report.html.j2").render(
        result=result,
        months=months,
        features=SPEC.features,
        floors=DEFAULT_FLOORS,
        auc_chart=auc_chart,
        drift_chart=drift_chart,
        mean_served=sum(served) / len(served) if served else float("nan"),
        mean_static=sum(static) / len(static) if static else float("nan"),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        events=[(dt.datetime.fromtimestamp(t).strftime("%H:%M:%S"), m) for t, m in result.events],
        attempt_rows=attempt_rows(result),
        no_human=f"{auto} / {steps}" if steps else "—",
    )


def write_report(result: DemoResult, folder: Path) -> Path:
    """Write the report atomically to ``folder/demo-<timestamp>.html`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.html"
    write_atomic(path, render_report(result))
    return path
