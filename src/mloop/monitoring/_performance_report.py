"""A performance window as one self-contained HTML page: the overall metrics with their intervals, every slice
(worst first, flagged ones marked) with an interval chart, and the fairness tables."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any


def _intervals(slices: list[dict[str, Any]], overall: float, width: int = 520) -> str:
    """Each scored slice's accuracy and 95 % interval as a dot and a whisker; the overall accuracy as a line."""
    scored = [s for s in slices if "accuracy" in s]
    if not scored:
        return ""
    row, left = 18, 190
    lo = min(min(s["accuracy_ci"][0] for s in scored), overall) - 0.02
    hi = max(max(s["accuracy_ci"][1] for s in scored), overall) + 0.02
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return left + (v - lo) / span * (width - left - 10)

    height = row * len(scored) + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             f'<line x1="{x(overall):.1f}" y1="0" x2="{x(overall):.1f}" y2="{height - 16}" stroke="#999" stroke-dasharray="3,3"/>',
             f'<text x="{x(overall):.1f}" y="{height - 4}" text-anchor="middle" fill="#555">overall {overall:.3f}</text>']
    for i, s in enumerate(scored):
        y = i * row + 10
        color = "#c0392b" if s.get("worst") else "#2c6fbb"
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape((s["column"] + " = " + s["value"])[:30])}</text>'
                     f'<line x1="{x(s["accuracy_ci"][0]):.1f}" y1="{y}" x2="{x(s["accuracy_ci"][1]):.1f}" y2="{y}" stroke="{color}" stroke-width="2"/>'
                     f'<circle cx="{x(s["accuracy"]):.1f}" cy="{y}" r="3.5" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_performance(body: dict[str, Any], *, title: str) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from mloop import __version__

    env = Environment(loader=PackageLoader("mloop.monitoring", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = lambda v, d=3: "—" if v is None or v != v else f"{v:.{d}f}"
    return env.get_template("performance.html.j2").render(
        title=title, body=body, chart=_intervals(body["slices"], body["overall"]["accuracy"]), version=__version__,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
