"""Inline SVG charts for offline HTML reports: no JavaScript, no CDN, just markup."""

from __future__ import annotations

import math
from html import escape


def _svg_open(width: int, height: int, title: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'


def line_chart(
    x_labels: list[str], series: dict[str, list[float]], *, title: str, y_label: str, colors: list[str] | None = None, width: int = 640,
    height: int = 260,
) -> str:
    """A line chart of several series over shared x labels; NaN points are skipped."""
    colors = colors or ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    pad = (hi - lo) * 0.1
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 56, 16, 32, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [_svg_open(width, height, title)]
    parts.append(f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>')
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.3f}</text>')
    for i, label in enumerate(x_labels):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle">{escape(label)}</text>')
    mid = top + plot_h / 2
    parts.append(f'<text x="14" y="{mid:.1f}" font-size="11" transform="rotate(-90 14 {mid:.1f})" text-anchor="middle">{escape(y_label)}</text>')
    for (_name, vs), color in zip(series.items(), colors, strict=False):
        points = [(x(i), y(v)) for i, v in enumerate(vs) if math.isfinite(v)]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for px, py in points:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>')
    for k, (name, color) in enumerate(zip(series, colors, strict=False)):
        lx = left + 10 + k * 200
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="12" height="4" fill="{color}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 9}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(x_labels: list[str], values: list[float], *, title: str, threshold: float | None = None, width: int = 640, height: int = 220) -> str:
    """Bars in [0, 1] (shares) with an optional dashed threshold line."""
    left, right, top, bottom = 56, 16, 32, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(x_labels), 1)
    bw = plot_w / n * 0.7
    parts = [_svg_open(width, height, title)]
    parts.append(f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>')
    for k in range(5):
        v = k / 4
        yy = top + plot_h * (1 - v)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" text-anchor="end">{v:.0%}</text>')
    for i, (label, v) in enumerate(zip(x_labels, values, strict=True)):
        cx = left + plot_w * (i + 0.5) / n
        h = plot_h * max(0.0, min(1.0, v if math.isfinite(v) else 0.0))
        color = "#d62728" if threshold is not None and v >= threshold else "#7f7f7f"
        parts.append(f'<rect x="{cx - bw / 2:.1f}" y="{top + plot_h - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{color}"/>')
        parts.append(f'<text x="{cx:.1f}" y="{height - 10}" font-size="11" text-anchor="middle">{escape(label)}</text>')
    if threshold is not None:
        yy = top + plot_h * (1 - threshold)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#d62728" stroke-dasharray="4 3"/>')
    parts.append("</svg>")
    return "".join(parts)


def heat_color(value: float, *, scale: float = 0.3) -> str:
    """White → red as ``value`` goes from 0 to ``scale`` (effect sizes)."""
    if not math.isfinite(value):
        return "#ffffff"
    t = max(0.0, min(1.0, value / scale))
    g = int(255 - 170 * t)
    return f"#ff{g:02x}{g:02x}"


def histogram_pair(reference: list[float], current: list[float], labels: list[str], *, title: str, width: int = 360, height: int = 150) -> str:
    """Two distributions over the same bins (shares), reference in grey and current in blue, side by side."""
    left, right, top, bottom = 8, 8, 22, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    peak = max([*reference, *current, 1e-9])
    slot = plot_w / n
    bw = slot * 0.4
    parts = [_svg_open(width, height, title)]
    parts.append(f'<text x="{left}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>')
    for i in range(len(labels)):
        x0 = left + slot * i + slot * 0.1
        for j, (values, color) in enumerate(((reference, "#9e9e9e"), (current, "#1f77b4"))):
            h = plot_h * (values[i] / peak if math.isfinite(values[i]) else 0.0)
            parts.append(
                f'<rect x="{x0 + j * bw:.1f}" y="{top + plot_h - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(labels[i])}: {values[i]:.1%}</title></rect>"
            )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>')
    if labels:
        parts.append(f'<text x="{left}" y="{height - 6}" font-size="10">{escape(labels[0])}</text>')
        parts.append(f'<text x="{width - right}" y="{height - 6}" font-size="10" text-anchor="end">{escape(labels[-1])}</text>')
    parts.append("</svg>")
    return "".join(parts)
