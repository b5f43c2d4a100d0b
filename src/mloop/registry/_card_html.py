"""A model card as one self-contained HTML page: the same data as the Markdown card, with the importance bars, the
partial dependence and ICE curves and the surrogate tree drawn inline as SVG (no script, no CDN)."""

from __future__ import annotations

from html import escape
from typing import Any

from mloop.registry._card import USER_FIELDS, CardData, _measured_limits, front_matter


def _bars(values: dict[str, float], width: int = 360) -> str:
    """Horizontal bars, largest first."""
    order = sorted(values, key=lambda c: -values[c])
    top = max((abs(values[c]) for c in order), default=0.0) or 1.0
    row = 18
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 160}" height="{row * len(order) + 6}" font-family="sans-serif" '
             'font-size="11">']
    for i, c in enumerate(order):
        length = abs(values[c]) / top * width
        parts.append(f'<text x="150" y="{i * row + 13}" text-anchor="end">{escape(c[:24])}</text>'
                     f'<rect x="156" y="{i * row + 3}" width="{length:.1f}" height="12" fill="#4a7ebb"/>'
                     f'<text x="{160 + length:.1f}" y="{i * row + 13}">{values[c]:.3g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _dependence(d: dict[str, Any], width: int = 300, height: int = 170) -> str:
    """PD (thick) over ICE (thin) curves; categories as evenly spaced points."""
    curves = [d["average"], *d["individual"]]
    lo = min(min(c) for c in curves)
    hi = max(max(c) for c in curves)
    span = (hi - lo) or 1.0
    n = len(d["grid"])
    pad_l, pad_b = 40, 34

    def xy(i: int, v: float) -> str:
        x = pad_l + (i / max(n - 1, 1)) * (width - pad_l - 10)
        y = 8 + (1 - (v - lo) / span) * (height - pad_b - 8)
        return f"{x:.1f},{y:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="10">',
             f'<text x="{width / 2:.0f}" y="{height - 4}" text-anchor="middle">{escape(d["column"])}</text>',
             f'<text x="2" y="12">{hi:.3g}</text><text x="2" y="{height - pad_b:.0f}">{lo:.3g}</text>']
    for curve in d["individual"]:
        parts.append(f'<polyline fill="none" stroke="#9bb7d9" stroke-width="0.7" points="{" ".join(xy(i, v) for i, v in enumerate(curve))}"/>')
    parts.append(f'<polyline fill="none" stroke="#c0392b" stroke-width="2.2" points="{" ".join(xy(i, v) for i, v in enumerate(d["average"]))}"/>')
    for i in (0, n - 1) if not d["categorical"] else range(n):
        label = str(d["grid"][i]) if d["categorical"] else f"{d['grid'][i]:.3g}"
        x = xy(i, lo).split(",")[0]
        parts.append(f'<text x="{x}" y="{height - pad_b + 14}" text-anchor="middle">{escape(label[:10])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_card_html(card: CardData) -> str:
    """The card as one HTML page that works offline."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    import mloop

    env = Environment(loader=PackageLoader("mloop.registry", "templates"), autoescape=select_autoescape(["html", "j2"]))
    ex = card.explanation
    charts: dict[str, Any] = {}
    order: list[str] = []
    if ex:
        ranking = ex["mean_abs_shap"] or {c: p["value"] for c, p in (ex.get("permutation") or {}).items()}
        order = sorted(ranking, key=lambda c: -ranking[c])
        charts["shap"] = _bars(ranking)
        charts["dependence"] = [_dependence(d) for d in ex.get("dependence", [])]
    sensitive = set((card.user("sensitive_features") or "").split(",")) - {""}
    return env.get_template("card.html.j2").render(
        card=card, meta=front_matter(card), ex=ex, charts=charts, order=order, fields=USER_FIELDS, sensitive=sensitive,
        limits=_measured_limits(card), version=mloop.__version__,
    )
